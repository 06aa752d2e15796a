/* The Consist web page: routes on location.pathname and reads the JSON API under /api/.
 * Written for Consist; no third-party code. */
(function () {
  "use strict";
  var main = document.getElementById("main");

  // -- small helpers -------------------------------------------------------------------

  function h(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) { return; }
      if (key === "text") { node.textContent = value; }
      else if (key.slice(0, 2) === "on") { node.addEventListener(key.slice(2), value); }
      else { node.setAttribute(key, value === true ? "" : value); }
    });
    for (var i = 2; i < arguments.length; i++) { append(node, arguments[i]); }
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) { return; }
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }

  function enc(value) { return encodeURIComponent(value); }

  function link(href, text, attrs) {
    var a = h("a", Object.assign({ href: href }, attrs || {}), text);
    return a;
  }

  function when(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return iso; }
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function show(value) {
    if (value === null || value === undefined) { return "—"; }
    if (typeof value === "object") { return JSON.stringify(value); }
    return String(value);
  }

  function statusBadge(run) {
    return h("span", { "class": "badge status-" + run.status }, run.status);
  }

  function cacheCell(run) {
    if (!run.cache_hit) { return h("span", { "class": "muted" }, "executed"); }
    return h("span", { "class": "nowrap" }, h("span", { "class": "badge hit" }, "hit"),
      run.cache_source ? [" ", link("/runs/" + enc(run.cache_source), "source run",
        { title: "outputs reused from " + run.cache_source, "class": "cache-source-link" })] :
        null);
  }

  function api(path) {
    return fetch(path, { headers: { Accept: "application/json" } }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          var err = new Error(body.error ? body.error.message : response.statusText);
          err.status = response.status;
          throw err;
        }
        return body;
      });
    });
  }

  function fail(where) {
    return function (err) {
      append(where, h("p", { "class": "error", role: "alert" }, err.message));
    };
  }

  function render() {
    main.textContent = "";
    for (var i = 0; i < arguments.length; i++) { append(main, arguments[i]); }
  }

  function go(href) {
    history.pushState(null, "", href);
    route();
  }

  function table(headers, rows, attrs) {
    return h("table", attrs || {},
      h("thead", {}, h("tr", {}, headers.map(function (x) { return h("th", {}, x); }))),
      h("tbody", {}, rows));
  }

  function facts(pairs) {
    return h("dl", { "class": "facts" }, pairs.filter(function (p) {
      return p[1] !== null && p[1] !== undefined && p[1] !== "";
    }).map(function (p) { return [h("dt", {}, p[0]), h("dd", {}, p[1])]; }));
  }

  function dims(run) {
    return ["year", "iteration", "stage", "phase"].filter(function (k) {
      return run[k] !== null && run[k] !== undefined;
    }).map(function (k) { return k + " " + run[k]; }).join(", ");
  }

  function setNav(name) {
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      a.classList.toggle("active", a.getAttribute("data-nav") === name);
    });
  }

  // -- runs list -----------------------------------------------------------------------

  var FILTERS = ["model", "status", "tag", "year", "scenario", "since", "until", "page_size"];

  function runsPage() {
    setNav("runs");
    document.title = "Runs · Consist";
    var query = new URLSearchParams(location.search);
    var form = h("form", { id: "filters", "class": "filters" });
    function field(name, label, control) {
      control.name = name;
      control.id = "filter-" + name;
      control.value = query.get(name) || "";
      return h("label", { "for": control.id }, label, control);
    }
    function select(options) {
      return h("select", {}, h("option", { value: "" }, "any"), options.map(function (o) {
        return h("option", { value: o.value }, o.value + " (" + o.runs + ")");
      }));
    }
    var status = h("select", {}, ["", "completed", "failed", "running"].map(function (s) {
      return h("option", { value: s }, s || "any");
    }));
    var sizes = h("select", {}, ["25", "50", "100", "200"].map(function (s) {
      return h("option", { value: s }, s + " per page");
    }));
    var fields = h("div", { "class": "filter-row" });
    var scenarios = h("datalist", { id: "scenario-ids" });
    form.appendChild(fields);
    form.appendChild(scenarios);
    var results = h("section", { id: "results" });
    render(h("h1", {}, "Runs"), form, results);

    api("/api/filters").then(function (values) {
      append(fields, [
        field("model", "Model", select(values.model)),
        field("status", "Status", status),
        field("tag", "Tag", select(values.tag)),
        field("year", "Year", select(values.year)),
        field("scenario", "Scenario", h("input", { type: "text", list: "scenario-ids",
          placeholder: "header run id", size: "14" })),
        field("since", "From", h("input", { type: "date" })),
        field("until", "To", h("input", { type: "date" })),
        field("page_size", "Rows", sizes),
        h("button", { type: "submit", id: "apply" }, "Apply"),
        h("button", { type: "button", "class": "secondary", onclick: function () { go("/"); } },
          "Reset")
      ]);
      if (!query.get("page_size")) { sizes.value = "50"; }
    }).catch(fail(form));
    api("/api/scenarios?page_size=200").then(function (found) {
      found.runs.forEach(function (r) { scenarios.appendChild(h("option", { value: r.id })); });
    }).catch(function () { /* the list stays empty */ });

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var next = new URLSearchParams();
      FILTERS.forEach(function (name) {
        var control = form.elements[name];
        if (control && control.value) { next.set(name, control.value); }
      });
      if (next.get("page_size") === "50") { next.delete("page_size"); }
      go("/" + (next.toString() ? "?" + next.toString() : ""));
    });

    var apiQuery = new URLSearchParams();
    FILTERS.concat(["page"]).forEach(function (name) {
      if (query.get(name)) { apiQuery.set(name, query.get(name)); }
    });
    results.appendChild(h("p", { "class": "muted" }, "Loading runs…"));
    api("/api/runs?" + apiQuery.toString()).then(function (page) {
      results.textContent = "";
      showRuns(results, page, query);
    }).catch(function (err) {
      results.textContent = "";
      fail(results)(err);
    });
  }

  function showRuns(where, page, query) {
    var chosen = [];
    var compare = h("button", { type: "button", id: "compare", disabled: true,
      onclick: function () { go("/diff?a=" + enc(chosen[0]) + "&b=" + enc(chosen[1])); } },
      "Compare 2 selected");
    var summary = h("p", { id: "runs-summary", "class": "summary" },
      page.total + " run" + (page.total === 1 ? "" : "s") + " · page " + page.page + " of " +
      page.pages);
    var rows = page.runs.map(function (r) {
      var box = h("input", { type: "checkbox", "aria-label": "select " + r.id,
        onchange: function (ev) {
          if (ev.target.checked) { chosen.push(r.id); }
          else { chosen = chosen.filter(function (x) { return x !== r.id; }); }
          compare.disabled = chosen.length !== 2;
        } });
      return h("tr", { "data-run-id": r.id },
        h("td", {}, box),
        h("td", { "class": "mono" }, link("/runs/" + enc(r.id), r.id, { "class": "run-link" })),
        h("td", {}, r.model),
        h("td", {}, statusBadge(r)),
        h("td", {}, cacheCell(r)),
        h("td", { "class": "nowrap" }, when(r.created_at)),
        h("td", { "class": "num" }, r.duration_s === null ? "" : r.duration_s.toFixed(1) + " s"),
        h("td", {}, dims(r)),
        h("td", {}, r.tags.join(", ")),
        h("td", {}, r.parent_run_id ? link("/scenarios/" + enc(r.parent_run_id),
          r.parent_run_id) : ""));
    });
    var pager = h("div", { "class": "pager" });
    function pageLink(n, label, id) {
      var next = new URLSearchParams(query);
      next.set("page", String(n));
      return h("a", { href: "/?" + next.toString(), id: id, "class": "button" }, label);
    }
    if (page.page > 1) { pager.appendChild(pageLink(page.page - 1, "← Newer", "prev-page")); }
    if (page.page < page.pages) { pager.appendChild(pageLink(page.page + 1, "Older →", "next-page")); }
    append(where, [
      h("div", { "class": "toolbar" }, summary, compare),
      page.runs.length ? table(["", "Run", "Model", "Status", "Cache", "Started", "Took",
        "Dimensions", "Tags", "Scenario"], rows, { id: "runs-table", "class": "grid" }) :
        h("p", { "class": "muted", id: "no-runs" }, "No runs match these filters."),
      pager
    ]);
  }

  // -- one run ---------------------------------------------------------------------------

  function runPage(runId) {
    setNav("runs");
    document.title = runId + " · Consist";
    render(h("p", { "class": "muted" }, "Loading run…"));
    api("/api/runs/" + enc(runId)).then(function (data) {
      var run = data.run;
      var graphBox = h("div", { "class": "graph-box", id: "run-graph" });
      render(
        h("h1", { "class": "mono" }, run.id),
        h("p", { "class": "subtitle" }, run.model, " ", statusBadge(run), " ", cacheCell(run)),
        facts([
          ["Started", when(run.created_at)],
          ["Ended", when(run.ended_at)],
          ["Took", run.duration_s === null ? "" : run.duration_s + " s"],
          ["Dimensions", dims(run)],
          ["Tags", run.tags.join(", ")],
          ["Description", run.description],
          ["Scenario", data.parent ? link("/scenarios/" + enc(data.parent.id), data.parent.id) :
            ""],
          ["Steps", data.steps ? link("/scenarios/" + enc(run.id), data.steps + " step run(s)") :
            ""],
          ["Signature", data.signature],
          ["Error", data.error ? h("span", { "class": "error" }, data.error) : ""]
        ]),
        h("section", { id: "explanation" }, h("h2", {}, "Why it ran"),
          explanationView(data.explanation, run)),
        h("section", { id: "inputs" }, h("h2", {}, "Inputs (" + data.inputs.length + ")"),
          filesTable(data.inputs)),
        h("section", { id: "outputs" }, h("h2", {}, "Outputs (" + data.outputs.length + ")"),
          filesTable(data.outputs)),
        h("section", { id: "config" }, h("h2", {}, "Config"),
          data.config === null ? h("p", { "class": "muted" }, data.config_note) :
            h("pre", { "class": "json" }, JSON.stringify(data.config, null, 2))),
        h("section", {}, h("h2", {}, "Lineage of this run"), graphBox)
      );
      drawGraph(graphBox, "/api/runs/" + enc(run.id) + "/lineage", null);
    }).catch(fail(main));
  }

  function explanationView(ex, run) {
    var box = h("div", { "class": "verdict verdict-" + ex.verdict, id: "verdict" });
    if (ex.verdict === "hit") {
      append(box, [h("strong", {}, "Cache hit: "), "outputs reused from run ",
        ex.cache_source ? link("/runs/" + enc(ex.cache_source), ex.cache_source,
          { id: "cache-source" }) : "?",
        ex.source_run ? "" : " (no longer in this store)"]);
      return box;
    }
    if (ex.verdict === "uncached") {
      append(box, [h("strong", {}, "Not looked up in the cache: "), ex.summary]);
      return box;
    }
    append(box, [h("strong", {}, "Executed: "), ex.summary || "",
      ex.nearest_run_id ? [" — compared with the nearest earlier run ",
        link("/runs/" + enc(ex.nearest_run_id), ex.nearest_run_id, { id: "nearest-run" }),
        " (", link("/diff?a=" + enc(ex.nearest_run_id) + "&b=" + enc(run.id), "diff"), ")"] :
        ""]);
    var parts = [box];
    if (ex.cache_mode) {
      parts.push(h("p", { "class": "muted" }, "cache mode: " + ex.cache_mode));
    }
    if (ex.cached_outputs) {
      parts.push(h("p", { "class": "muted" }, "an identical run existed but its outputs " +
        "were unusable: " + ex.cached_outputs));
    }
    if (ex.differences.length) {
      parts.push(table(["What", "Field", "Before (nearest run)", "This run", "Change"],
        ex.differences.map(function (d) {
          return h("tr", { "data-section": d.section, "data-key": d.key },
            h("td", {}, d.section), h("td", { "class": "mono" }, d.key),
            h("td", { "class": "mono old" }, show(d.old)), h("td", { "class": "mono new" },
              show(d.new)), h("td", {}, h("span", { "class": "change-" + d.change }, d.change)));
        }), { id: "differences", "class": "grid" }));
    }
    return parts;
  }

  function filesTable(files) {
    if (!files.length) { return h("p", { "class": "muted" }, "none"); }
    return table(["Key", "Driver", "On disk", "Path or URI", ""], files.map(function (f) {
      return h("tr", { "data-key": f.key },
        h("td", {}, link("/artifacts/" + enc(f.id), f.key)),
        h("td", {}, f.driver || ""),
        h("td", {}, f.reachable ? h("span", { "class": "badge ok" }, "yes") :
          h("span", { "class": "badge missing", title: f.missing_since ?
            "missing since " + f.missing_since : "file not found" }, "missing")),
        h("td", { "class": "mono path" }, f.path || f.uri),
        h("td", { "class": "nowrap" }, link("/artifacts/" + enc(f.id), "lineage"), " · ",
          link("/artifacts/" + enc(f.id) + "#preview", "preview")));
    }), { "class": "grid files" });
  }

  // -- lineage graph -----------------------------------------------------------------------

  function drawGraph(box, url, depth) {
    box.textContent = "";
    box.appendChild(h("p", { "class": "muted" }, "Loading lineage…"));
    var full = url + (depth === null || depth === "" ? "" : "?depth=" + enc(depth));
    return api(full).then(function (graph) {
      box.textContent = "";
      var legend = h("p", { "class": "legend muted" }, graph.nodes.length + " nodes, " +
        graph.edges.length + " edges. Click a run to open it, an artifact to see its lineage; " +
        "drag to pan, wheel to zoom, double-click to fit.",
        graph.truncated ? h("span", { "class": "warn" }, " Dashed: more upstream beyond depth " +
          graph.depth + ".") : "");
      box.appendChild(legend);
      var svg = window.ConsistGraph.draw(box, graph, {
        onSelect: function (node) {
          go(node.kind === "run" ? "/runs/" + enc(node.ref) : "/artifacts/" + enc(node.ref));
        }
      });
      if (svg.classList.contains("partial")) {
        legend.appendChild(h("span", { "class": "warn" }, " Showing the newest end of a " +
          "long graph: drag or zoom out to see the rest, double-click to fit it all."));
      }
      box.insertBefore(legend, box.firstChild);
      return graph;
    }).catch(function (err) { box.textContent = ""; fail(box)(err); });
  }

  function artifactPage(key) {
    setNav("runs");
    render(h("p", { "class": "muted" }, "Loading artifact…"));
    api("/api/artifacts/" + enc(key)).then(function (data) {
      var a = data.artifact;
      document.title = a.key + " · Consist";
      var graphBox = h("div", { "class": "graph-box", id: "lineage" });
      var depth = h("select", { id: "depth" }, ["", "1", "2", "4", "8"].map(function (d) {
        return h("option", { value: d }, d ? "depth " + d : "all upstream");
      }));
      depth.addEventListener("change", function () {
        drawGraph(graphBox, "/api/artifacts/" + enc(a.id) + "/lineage", depth.value);
      });
      var previewBox = h("div", { id: "preview-box" });
      render(
        h("h1", {}, a.key, " ", h("span", { "class": "muted small" }, a.driver || "")),
        facts([
          ["Id", a.id],
          ["URI", a.uri],
          ["Local path", a.path],
          ["On disk", a.reachable ? "yes" : h("span", { "class": "badge missing" }, "missing")],
          ["Digest", a.hash],
          ["Size", a.size_bytes === null ? "" : a.size_bytes + " bytes"],
          ["First logged by", a.run_id ? link("/runs/" + enc(a.run_id), a.run_id) : ""]
        ]),
        h("section", {}, h("h2", {}, "Lineage ", depth), graphBox),
        h("section", { id: "preview" }, h("h2", {}, "First rows"), previewBox)
      );
      drawGraph(graphBox, "/api/artifacts/" + enc(a.id) + "/lineage", "");
      previewBox.appendChild(h("button", { type: "button", id: "load-preview",
        onclick: function () { loadPreview(previewBox, a.id); } }, "Show the first 20 rows"));
      if (location.hash === "#preview") { loadPreview(previewBox, a.id); }
    }).catch(fail(main));
  }

  function loadPreview(box, id) {
    box.textContent = "";
    api("/api/artifacts/" + enc(id) + "/preview?rows=20").then(function (p) {
      append(box, [
        h("p", { "class": "muted" }, "From the " + (p.source === "file" ? "file" :
          "rows ingested into the store") + "; " + p.rows.length + " row(s)."),
        h("div", { "class": "scroll" }, table(p.columns.map(function (c, i) {
          return [c, h("br"), h("span", { "class": "muted small" }, p.types[i])];
        }), p.rows.map(function (row) {
          return h("tr", {}, row.map(function (v) { return h("td", {}, show(v)); }));
        }), { id: "preview-table", "class": "grid" }))
      ]);
    }).catch(fail(box));
  }

  // -- scenarios -------------------------------------------------------------------------

  function scenariosPage() {
    setNav("scenarios");
    document.title = "Scenarios · Consist";
    var query = new URLSearchParams(location.search);
    render(h("h1", {}, "Scenarios"), h("p", { "class": "muted" }, "Loading…"));
    api("/api/scenarios?page=" + enc(query.get("page") || "1")).then(function (page) {
      var pager = h("div", { "class": "pager" });
      if (page.page > 1) {
        pager.appendChild(link("/scenarios?page=" + (page.page - 1), "← Newer", { "class": "button" }));
      }
      if (page.page < page.pages) {
        pager.appendChild(link("/scenarios?page=" + (page.page + 1), "Older →", { "class": "button" }));
      }
      render(h("h1", {}, "Scenarios"),
        h("p", { "class": "summary" }, page.total + " scenario(s)"),
        page.runs.length ? table(["Scenario", "Status", "Started", "Steps", "Cache hits",
          "Failed steps", "Executions"], page.runs.map(function (r) {
          return h("tr", { "data-run-id": r.id },
            h("td", {}, link("/scenarios/" + enc(r.id), r.id)), h("td", {}, statusBadge(r)),
            h("td", {}, when(r.created_at)), h("td", { "class": "num" }, show(r.steps)),
            h("td", { "class": "num" }, show(r.cache_hits)),
            h("td", { "class": "num" }, show(r.failed_steps)),
            h("td", { "class": "num" }, show(r.executions)));
        }), { "class": "grid", id: "scenarios-table" }) :
          h("p", { "class": "muted" }, "No scenarios recorded."),
        pager);
    }).catch(fail(main));
  }

  function scenarioPage(id) {
    setNav("scenarios");
    document.title = id + " · Consist";
    var query = new URLSearchParams(location.search);
    render(h("p", { "class": "muted" }, "Loading scenario…"));
    api("/api/scenarios/" + enc(id) + "?page=" + enc(query.get("page") || "1"))
      .then(function (data) {
        var s = data.scenario;
        var names = {};
        var first = (data.page - 1) * data.page_size + 1;
        data.steps.forEach(function (step, i) {
          names[step.id] = "#" + (first + i) + " " + step.model;
        });
        var tree = h("ul", { "class": "tree", id: "scenario-tree" },
          h("li", { "class": "header" }, link("/runs/" + enc(s.id), s.id), " ", statusBadge(s),
            h("ul", {}, data.steps.map(function (step, i) {
              var reads = data.flows.filter(function (f) { return f.to === step.id; });
              return h("li", { "data-run-id": step.id },
                h("span", { "class": "step-no" }, "#" + (first + i)),
                " ", link("/runs/" + enc(step.id), step.model), " ", statusBadge(step), " ",
                cacheCell(step), " ", h("span", { "class": "muted" }, dims(step)),
                h("div", { "class": "io" },
                  step.inputs.length ? ["in: ", step.inputs.map(function (x, j) {
                    var flow = reads.filter(function (f) { return f.key === x.key; })[0];
                    return [j ? ", " : "", link("/artifacts/" + enc(x.id), x.key),
                      flow ? h("span", { "class": "muted" }, " ← " + names[flow.from]) : ""];
                  })] : "",
                  step.outputs.length ? [" · out: ", step.outputs.map(function (x, j) {
                    return [j ? ", " : "", link("/artifacts/" + enc(x.id), x.key)];
                  })] : ""));
            }))));
        var pager = h("div", { "class": "pager" });
        if (data.page < data.pages) {
          pager.appendChild(link("/scenarios/" + enc(id) + "?page=" + (data.page + 1),
            "More steps →", { "class": "button" }));
        }
        render(h("h1", {}, "Scenario ", h("span", { "class": "mono" }, s.id)),
          data.is_scenario ? "" : h("p", { "class": "muted" },
            "This run is not a scenario header; these are its child runs."),
          facts([["Started", when(s.created_at)], ["Ended", when(s.ended_at)],
            ["Steps", data.total], ["Tags", s.tags.join(", ")]]),
          h("h2", {}, "Steps"), tree, pager,
          h("h2", {}, "Config"),
          h("pre", { "class": "json" }, JSON.stringify(data.config, null, 2)));
      }).catch(fail(main));
  }

  // -- diff ------------------------------------------------------------------------------

  function diffPage() {
    setNav("diff");
    document.title = "Compare runs · Consist";
    var query = new URLSearchParams(location.search);
    var a = h("input", { type: "text", name: "a", id: "diff-a", size: "40", value: query.get("a") || "" });
    var b = h("input", { type: "text", name: "b", id: "diff-b", size: "40", value: query.get("b") || "" });
    var all = h("input", { type: "checkbox", name: "all", id: "diff-all" });
    all.checked = query.get("all") === "true";
    var form = h("form", { "class": "filters", id: "diff-form" },
      h("label", { "for": "diff-a" }, "Baseline run", a),
      h("label", { "for": "diff-b" }, "Compared run", b),
      h("label", { "for": "diff-all", "class": "inline" }, all, " also equal keys"),
      h("button", { type: "submit" }, "Compare"));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      go("/diff?a=" + enc(a.value.trim()) + "&b=" + enc(b.value.trim()) +
        (all.checked ? "&all=true" : ""));
    });
    var out = h("section", { id: "diff-result" });
    render(h("h1", {}, "Compare two runs"), form, out);
    if (!query.get("a") || !query.get("b")) {
      out.appendChild(h("p", { "class": "muted" }, "Give two run ids, or tick two runs in " +
        "the runs list and press Compare."));
      return;
    }
    api("/api/diff?" + query.toString()).then(function (d) {
      function changes(map, render1) {
        var keys = Object.keys(map);
        if (!keys.length) { return h("p", { "class": "muted" }, "no differences"); }
        return table(["Key", "Baseline", "Compared", "Change"], keys.map(function (k) {
          var c = map[k];
          return h("tr", { "data-key": k }, h("td", { "class": "mono" }, k),
            h("td", { "class": "mono old" }, render1(c.a)), h("td", { "class": "mono new" },
              render1(c.b)), h("td", {}, h("span", { "class": "change-" + c.status }, c.status)));
        }), { "class": "grid" });
      }
      append(out, [
        h("p", {}, link("/runs/" + enc(d.run_a.id), d.run_a.id), " (" + d.run_a.model + ") → ",
          link("/runs/" + enc(d.run_b.id), d.run_b.id), " (" + d.run_b.model + ")"),
        d.note ? h("p", { "class": "muted" }, d.note) : "",
        h("h2", {}, "Config (" + d.config_source + ")"), h("div", { id: "diff-config" },
          changes(d.config, show)),
        h("h2", {}, "Inputs"), h("div", { id: "diff-inputs" }, changes(d.inputs, function (x) {
          return x === null ? "—" : (x.hash || "") + "\n" + x.uri;
        }))
      ]);
    }).catch(fail(out));
  }

  // -- routing ---------------------------------------------------------------------------

  function route() {
    var path = location.pathname;
    var m;
    window.scrollTo(0, 0);
    if (path === "/" || path === "") { return runsPage(); }
    if ((m = path.match(/^\/runs\/([^/]+)$/))) { return runPage(decodeURIComponent(m[1])); }
    if (path === "/scenarios") { return scenariosPage(); }
    if ((m = path.match(/^\/scenarios\/([^/]+)$/))) {
      return scenarioPage(decodeURIComponent(m[1]));
    }
    if ((m = path.match(/^\/artifacts\/([^/]+)$/))) {
      return artifactPage(decodeURIComponent(m[1]));
    }
    if (path === "/diff") { return diffPage(); }
    render(h("p", { "class": "error" }, "No such page: " + path));
  }

  // Same-origin links are handled here (no full reload); others behave normally.
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a") : null;
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey ||
        ev.shiftKey || a.target) { return; }
    var url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.indexOf("/api/") === 0) { return; }
    ev.preventDefault();
    history.pushState(null, "", url.pathname + url.search + url.hash);
    route();
  });
  window.addEventListener("popstate", route);
  route();
})();
