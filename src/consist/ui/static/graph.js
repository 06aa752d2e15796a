/* Draws a lineage graph laid out by the server (consist/ui/graph.py) as SVG.
 * Nodes are clickable (onSelect(node)); drag to pan, wheel to zoom, double-click to fit.
 * Written for Consist; no third-party code. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, attrs[key]);
    });
    return node;
  }

  function clip(text, max) {
    text = String(text == null ? "" : text);
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function clipTail(text, max) { // keep the end of a path: the file name matters most
    text = String(text == null ? "" : text);
    return text.length > max ? "…" + text.slice(text.length - max + 1) : text;
  }

  function edgePath(a, b, back) {
    var x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
    if (back) { // closes a cycle: loop under both nodes
      var low = Math.max(a.y + a.h, b.y + b.h) + 30;
      return "M" + x1 + "," + y1 + " C" + (x1 + 40) + "," + low + " " + (x2 - 40) + "," + low +
        " " + x2 + "," + y2;
    }
    var mid = (x1 + x2) / 2;
    return "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2;
  }

  function draw(container, graph, options) {
    options = options || {};
    container.textContent = "";
    var byId = {};
    graph.nodes.forEach(function (n) { byId[n.id] = n; });
    var loops = graph.edges.some(function (e) { return e.back; });
    var width = Math.max(graph.width, 200), height = graph.height + (loops ? 40 : 0);
    var svg = el("svg", {
      "class": "lineage-graph", role: "img", viewBox: "0 0 " + width + " " + height,
      width: width, height: height,
      "aria-label": "lineage graph with " + graph.nodes.length + " nodes"
    });
    var defs = el("defs");
    var marker = el("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
      markerHeight: "7", orient: "auto-start-reverse"
    });
    marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", "class": "arrowhead" }));
    defs.appendChild(marker);
    svg.appendChild(defs);
    var world = el("g", { "class": "world" });
    svg.appendChild(world);

    graph.edges.forEach(function (e) {
      var a = byId[e.source], b = byId[e.target];
      if (!a || !b) { return; }
      var g = el("g", { "class": "edge" + (e.back ? " back" : ""), "data-source": e.source,
        "data-target": e.target });
      g.appendChild(el("path", { d: edgePath(a, b, e.back), "marker-end": "url(#arrow)" }));
      if (e.label) {
        var t = el("text", { x: (a.x + a.w + b.x) / 2, y: (a.y + b.y + a.h) / 2 - 4,
          "text-anchor": "middle", "class": "edge-label" });
        t.textContent = clip(e.label, 24);
        g.appendChild(t);
      }
      world.appendChild(g);
    });

    graph.nodes.forEach(function (n) {
      var classes = ["node", n.kind];
      if (n.id === graph.root) { classes.push("root"); }
      if (n.truncated) { classes.push("truncated"); }
      if (n.cycle) { classes.push("cycle"); }
      if (n.kind === "run") {
        classes.push("status-" + n.status);
        if (n.cache_hit) { classes.push("hit"); }
      }
      var g = el("g", { "class": classes.join(" "), "data-id": n.id, "data-kind": n.kind,
        "data-ref": n.ref, tabindex: "0", role: "link",
        transform: "translate(" + n.x + "," + n.y + ")" });
      var title = el("title");
      title.textContent = (n.kind === "run" ? "run " + n.ref + " (" + n.status +
        (n.cache_hit ? ", cache hit" : "") + ")" : n.label + "\n" + n.detail) +
        (n.truncated ? "\nmore upstream beyond this depth" : "") +
        (n.raw_input ? "\nraw input (no producing run)" : "");
      g.appendChild(title);
      g.appendChild(el("rect", { width: n.w, height: n.h, rx: n.kind === "run" ? 4 : n.h / 2 }));
      var label = el("text", { x: n.w / 2, y: 19, "text-anchor": "middle", "class": "label" });
      label.textContent = clip((n.kind === "run" ? "⚙ " : "") + n.label, 28);
      var detail = el("text", { x: n.w / 2, y: 35, "text-anchor": "middle", "class": "detail" });
      detail.textContent = n.kind === "run" ?
        clip(n.cache_hit ? "cache hit · " + n.detail : n.detail, 28) : clipTail(n.detail, 30);
      g.appendChild(label);
      g.appendChild(detail);
      function select() { if (options.onSelect) { options.onSelect(n); } }
      g.addEventListener("click", select);
      g.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(); }
      });
      world.appendChild(g);
    });

    container.appendChild(svg);
    // A graph much wider than the box starts at full size on its root end (the right);
    // double-click shows all of it.
    var room = container.clientWidth || width;
    var start = { x: 0, y: 0, w: width, h: height };
    if (width > room * 1.5) {
      svg.setAttribute("width", room);
      svg.setAttribute("height", height);
      start = { x: width - room, y: 0, w: room, h: height };
      svg.setAttribute("viewBox", start.x + " 0 " + room + " " + height);
      svg.classList.add("partial");
    }
    enablePanZoom(svg, width, height, start);
    return svg;
  }

  function enablePanZoom(svg, width, height, start) {
    var view = { x: start.x, y: start.y, w: start.w, h: start.h };
    function apply() {
      svg.setAttribute("viewBox", view.x + " " + view.y + " " + view.w + " " + view.h);
    }
    svg.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var box = svg.getBoundingClientRect();
      var fx = (ev.clientX - box.left) / box.width, fy = (ev.clientY - box.top) / box.height;
      var scale = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
      var w = Math.min(Math.max(view.w * scale, 80), width * 8);
      var h = w * view.h / view.w;
      view.x += (view.w - w) * fx;
      view.y += (view.h - h) * fy;
      view.w = w;
      view.h = h;
      apply();
    }, { passive: false });
    var drag = null;
    svg.addEventListener("pointerdown", function (ev) {
      if (ev.target.closest && ev.target.closest(".node")) { return; }
      drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
      svg.classList.add("dragging");
    });
    window.addEventListener("pointermove", function (ev) {
      if (!drag) { return; }
      var box = svg.getBoundingClientRect();
      view.x = drag.vx - (ev.clientX - drag.x) * view.w / box.width;
      view.y = drag.vy - (ev.clientY - drag.y) * view.h / box.height;
      apply();
    });
    window.addEventListener("pointerup", function () {
      drag = null;
      svg.classList.remove("dragging");
    });
    svg.addEventListener("dblclick", function () {
      view = { x: 0, y: 0, w: width, h: height };
      apply();
    });
  }

  window.ConsistGraph = { draw: draw };
})();
