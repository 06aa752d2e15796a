"""Lineage queries and renderings of the Tracker

Mixed into :class:`~consist.core.tracker.Tracker`; the work is done by
:mod:`consist.core.query.lineage` over the store's one-query upstream walk
(:mod:`consist.core.store.lineage_store`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from consist.core.query.lineage import (
    build_run_tree,
    build_tree,
    rich_run_tree,
    rich_tree,
    rich_tree_width,
    run_graph,
    to_dot,
    to_mermaid,
    validate_direction,
    validate_max_depth,
)
from consist.models.artifact import Artifact
from consist.models.html import LineageTree

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.core.store.lineage_store import UpstreamGraph
    from consist.core.store.metadata_store import MetadataStore

ArtifactKeyOrId = str | uuid.UUID | Artifact


class TrackerLineage:
    """Lineage queries and renderings of the Tracker."""

    store: MetadataStore | None

    def get_artifact_lineage(
        self, artifact_key_or_id: ArtifactKeyOrId, *, max_depth: int | None = None
    ) -> dict[str, Any] | None:
        """Recursively builds a lineage tree for a given artifact.

        The artifact, the run that produced it, that run's inputs, the runs
        that produced them, and so on, as nested JSON-friendly dicts. The
        whole upstream graph is fetched in one database query; building the
        tree is iterative, so deep chains and cycles are safe.

        Parameters
        ----------
        artifact_key_or_id:
            Artifact key (the newest artifact with that key), UUID, UUID
            string, or an :class:`~consist.models.artifact.Artifact`. Resolved
            like :meth:`get_artifact`: a string that parses as a UUID is
            tried as an id first, then as a key.
        max_depth:
            Maximum depth to traverse (0 returns only the artifact). The
            artifact is at depth 0; an artifact at depth ``d < max_depth`` is
            expanded (its producing run and that run's inputs, which are at
            depth ``d + 1``). ``None`` (default) traverses everything. Useful
            for large graphs or iterative workflows.

        Returns
        -------
        dict or None
            None when the artifact is unknown or the tracker has no database
            (like :meth:`get_artifact`). Otherwise the root node (a
            :class:`~consist.models.html.LineageTree`, a ``dict`` that also
            renders as HTML in a notebook): the
            artifact's fields (``id`` as a string, ``key``, ``uri``,
            ``driver``, ``hash``, ``run_id`` = the run that first logged it,
            ``created_at``; ``table_path``/``array_path`` when set) and
            ``"producing_run"``: None for a raw input, else the run's fields
            (``id``, ``model_name``, ``description``, ``status``, ``year``,
            ``iteration``, ``stage``, ``phase``, ``tags``, ``created_at``,
            ``ended_at``, ``cache_hit``, ``cache_hits``) with ``"inputs"``:
            one node of the same shape per input of that run, carrying
            ``input_key`` (the key that run used), sorted by it.

            The producing run is the earliest *completed* run that logged the
            artifact as an output (later cache hits also link it;
            ``cache_hits`` counts them); failing that, the earliest run of
            any status. A node that is not expanded has no
            ``"producing_run"`` key and is flagged ``"truncated": True`` (at
            ``max_depth`` with more upstream), ``"cycle": True`` (already on
            the path from the root: the artifact is, transitively, its own
            input) or ``"shared": True`` (an artifact that appears in many
            places of a very large tree, expanded at its first occurrence
            once the tree exceeds 10,000 nodes). Smaller shared upstream
            nodes (diamonds) are expanded wherever they occur.

        Raises
        ------
        TypeError
            If ``max_depth`` is not an int or None, or the artifact reference
            is not a str, UUID or Artifact.
        ValueError
            If ``max_depth`` is negative.
        """
        max_depth = validate_max_depth(max_depth)
        graph = self._lineage_graph(artifact_key_or_id, max_depth)
        return None if graph is None else LineageTree(build_tree(graph, max_depth=max_depth))

    def print_lineage(
        self,
        artifact_key_or_id: ArtifactKeyOrId,
        *,
        max_depth: int | None = None,
        show_run_ids: bool = False,
        console: Console | None = None,
    ) -> None:
        """Print a formatted lineage tree for an artifact.

        One line per artifact: its key (the consuming run's key first when it
        differs), its URI, and ``<- model`` with the producing run's year,
        iteration, stage, phase, a non-completed status or ``cache hit``.
        Raw inputs say ``(raw input)``; cut branches say why (beyond
        ``max_depth``, cycle). An upstream subtree that was already printed
        is not printed again (``(upstream shown above)``).

        Parameters
        ----------
        artifact_key_or_id:
            Artifact key or UUID to print (as in :meth:`get_artifact_lineage`).
        max_depth:
            Maximum depth to traverse (0 prints only the artifact).
        show_run_ids:
            Include run IDs alongside artifact entries (the producing run, or
            for a raw input the run that logged it).
        console:
            A ``rich.console.Console`` to print to. Default: standard output;
            when that is not a terminal (a pipe, a file, a notebook capture)
            the console is made wide enough that no line wraps.

        Raises
        ------
        TypeError, ValueError
            For an invalid ``max_depth`` (see :meth:`get_artifact_lineage`).
        """
        max_depth = validate_max_depth(max_depth)
        graph = self._lineage_graph(artifact_key_or_id, max_depth)
        tree = None
        if graph is not None:
            tree = rich_tree(
                build_tree(graph, max_depth=max_depth, max_nodes=0),
                show_run_ids=bool(show_run_ids),
            )
        if console is None:
            from rich.console import Console

            console = Console()
            if tree is not None and not console.is_terminal:
                # Piped or captured: never wrap a URI across lines.
                console = Console(width=max(console.width, rich_tree_width(tree) + 1))
        if tree is None:
            console.print(self._no_lineage_message(artifact_key_or_id), markup=False)
            return
        console.print(tree)

    def lineage_mermaid(
        self,
        artifact_key_or_id: ArtifactKeyOrId,
        *,
        max_depth: int | None = None,
        direction: str = "LR",
        show_run_ids: bool = False,
    ) -> str | None:
        """The lineage of an artifact as Mermaid flowchart text.

        Each artifact and run appears once (shared upstream nodes are drawn
        once, cycles as edges back). Artifacts are stadium-shaped nodes
        labelled with key and URI, runs rectangles labelled with the model
        name and workflow dimensions; edges run from an input artifact to the
        run that consumed it (labelled with the key that run used, when it
        differs from the artifact's) and from a run to its output. Branches
        cut by ``max_depth`` end in a dashed node. Lines are sorted, so the
        same store gives the same text. Paste it into a ````mermaid`` block
        (Markdown, Jupyter, GitHub) or the Mermaid live editor.

        Parameters
        ----------
        artifact_key_or_id:
            Artifact key or UUID (as in :meth:`get_artifact_lineage`).
        max_depth:
            Maximum depth to traverse (0: the artifact alone).
        direction:
            ``"LR"`` (default, inputs on the left), ``"RL"``, ``"TB"``/``"TD"``
            or ``"BT"``.
        show_run_ids:
            Add each run's id to its label.

        Returns
        -------
        str or None
            The text (starting with a ``%%`` comment naming the artifact,
            then ``flowchart LR``), or None when the artifact is unknown or
            there is no database.

        Raises
        ------
        TypeError, ValueError
            For an invalid ``max_depth`` or ``direction``.
        """
        return self._render(
            self._lineage_graph, artifact_key_or_id, to_mermaid, max_depth, direction, show_run_ids
        )

    def lineage_dot(
        self,
        artifact_key_or_id: ArtifactKeyOrId,
        *,
        max_depth: int | None = None,
        direction: str = "LR",
        show_run_ids: bool = False,
    ) -> str | None:
        """The lineage of an artifact as Graphviz DOT text.

        The same graph as :meth:`lineage_mermaid`: ``digraph lineage { ... }``
        with artifacts as ellipses (node id ``"a:<uuid>"``) and runs as
        rounded boxes (node id ``"r:<run id>"``), every id and label quoted.
        Render it with ``dot -Tsvg lineage.dot -o lineage.svg`` or the
        ``graphviz`` Python package.

        Parameters
        ----------
        artifact_key_or_id:
            Artifact key or UUID (as in :meth:`get_artifact_lineage`).
        max_depth:
            Maximum depth to traverse (0: the artifact alone).
        direction:
            ``rankdir``: ``"LR"`` (default), ``"RL"``, ``"TB"`` (``"TD"`` is
            accepted as ``"TB"``) or ``"BT"``.
        show_run_ids:
            Add each run's id to its label.

        Returns
        -------
        str or None
            The DOT text, or None when the artifact is unknown or there is no
            database.

        Raises
        ------
        TypeError, ValueError
            For an invalid ``max_depth`` or ``direction``.
        """
        return self._render(
            self._lineage_graph, artifact_key_or_id, to_dot, max_depth, direction, show_run_ids
        )

    def _render(
        self,
        graph_of: Callable[[Any, int | None], Any],
        root: Any,
        renderer: Callable[..., str],
        max_depth: int | None,
        direction: str,
        show_run_ids: bool,
    ) -> str | None:
        """Validate the options, fetch the graph and render it as text (None: no graph)."""
        max_depth = validate_max_depth(max_depth)
        direction = validate_direction(direction)
        graph = graph_of(root, max_depth)
        if graph is None:
            return None
        return renderer(
            graph, max_depth=max_depth, direction=direction, show_run_ids=bool(show_run_ids)
        )

    # -- the lineage of a run ------------------------------------------------------------

    def get_run_lineage(
        self, run_id: str, *, max_depth: int | None = None
    ) -> dict[str, Any] | None:
        """The upstream graph of a run: its inputs and where each came from.

        Like :meth:`get_artifact_lineage`, with a run at the root instead of
        an artifact (useful for a run with no outputs, such as a failed run).
        Each input's upstream graph is fetched in one query.

        Parameters
        ----------
        run_id:
            The run's id.
        max_depth:
            Maximum depth to traverse. The run's inputs are at depth 1 (as the
            inputs of an artifact's producing run are): 0 returns the run
            alone, 1 its inputs without their upstream. ``None`` (default)
            traverses everything.

        Returns
        -------
        dict or None
            None when the run is unknown or the tracker has no database.
            Otherwise ``{"run": {...}, "inputs": [...]}`` (a
            :class:`~consist.models.html.LineageTree`, a ``dict`` that also
            renders as HTML in a notebook): the run's fields as
            in :meth:`get_artifact_lineage` (without ``cache_hits``, with
            ``cache_source``: the run a cache hit was served from, else None)
            and one node per input (the artifact's fields and ``input_key``,
            sorted by it), shaped and flagged exactly like the nodes of
            :meth:`get_artifact_lineage`.

        Raises
        ------
        TypeError
            If ``run_id`` is not a string, or ``max_depth`` is not an int or None.
        ValueError
            If ``max_depth`` is negative.
        """
        max_depth = validate_max_depth(max_depth)
        graph = self._run_lineage_graph(run_id, max_depth)
        return None if graph is None else LineageTree(build_run_tree(graph, max_depth=max_depth))

    def print_run_lineage(
        self,
        run_id: str,
        *,
        max_depth: int | None = None,
        show_run_ids: bool = False,
        console: Console | None = None,
    ) -> None:
        """Print a run's lineage as a tree: the run, then its inputs as :meth:`print_lineage` does.

        Parameters
        ----------
        run_id:
            The run's id.
        max_depth:
            As in :meth:`get_run_lineage`.
        show_run_ids:
            Include the ids of the runs that produced the inputs (the root line
            always names the run).
        console:
            A ``rich.console.Console`` (default: standard output, made wide
            enough not to wrap when it is not a terminal).

        Raises
        ------
        TypeError, ValueError
            As :meth:`get_run_lineage`.
        """
        max_depth = validate_max_depth(max_depth)
        graph = self._run_lineage_graph(run_id, max_depth)
        tree = None
        if graph is not None:
            tree = rich_run_tree(
                build_run_tree(graph, max_depth=max_depth, max_nodes=0),
                show_run_ids=bool(show_run_ids),
            )
        if console is None:
            from rich.console import Console

            console = Console()
            if tree is not None and not console.is_terminal:
                console = Console(width=max(console.width, rich_tree_width(tree) + 1))
        if tree is None:
            where = "this tracker has no database" if self.store is None else "no such run"
            console.print(f"No lineage for run {run_id!r}: {where}", markup=False)
            return
        console.print(tree)

    def run_lineage_mermaid(
        self,
        run_id: str,
        *,
        max_depth: int | None = None,
        direction: str = "LR",
        show_run_ids: bool = False,
    ) -> str | None:
        """A run's lineage as Mermaid flowchart text (see :meth:`lineage_mermaid`).

        The run is the root node (class ``root``); depth as in
        :meth:`get_run_lineage`. Returns None for an unknown run or without a
        database.
        """
        return self._render(
            self._run_lineage_graph, run_id, to_mermaid, max_depth, direction, show_run_ids
        )

    def run_lineage_dot(
        self,
        run_id: str,
        *,
        max_depth: int | None = None,
        direction: str = "LR",
        show_run_ids: bool = False,
    ) -> str | None:
        """A run's lineage as Graphviz DOT text (see :meth:`lineage_dot`).

        The run's box is bold; depth as in :meth:`get_run_lineage`. Returns
        None for an unknown run or without a database.
        """
        return self._render(
            self._run_lineage_graph, run_id, to_dot, max_depth, direction, show_run_ids
        )

    # -- helpers ---------------------------------------------------------------------

    def _run_lineage_graph(self, run_id: str, max_depth: int | None) -> UpstreamGraph | None:
        """The run, its inputs and the upstream graph of each input, as one graph."""
        if not isinstance(run_id, str):
            raise TypeError(f"run_id must be a string, got {type(run_id).__name__}")
        if self.store is None:
            return None
        lineage = self.store.lineage_store()
        found = lineage.run_inputs(run_id)
        if found is None:
            return None
        graphs = []
        if max_depth is None or max_depth > 0:
            # The inputs are at depth 1: each one's walk goes one step less deep.
            below = None if max_depth is None else max_depth - 1
            for input_id in dict.fromkeys(i for i, _ in found.inputs):
                graph = lineage.upstream(input_id, max_depth=below)
                if graph is not None:
                    graphs.append(graph)
        return run_graph(found, graphs, max_depth=max_depth)

    def _lineage_graph(
        self, artifact_key_or_id: ArtifactKeyOrId, max_depth: int | None
    ) -> UpstreamGraph | None:
        """Resolve the artifact like ``get_artifact`` and fetch its upstream graph."""
        ref = artifact_key_or_id
        if not isinstance(ref, str | uuid.UUID | Artifact):
            raise TypeError(
                "artifact_key_or_id must be an artifact key, a UUID (or UUID string) or an "
                f"Artifact, got {type(ref).__name__}"
            )
        if self.store is None:
            return None
        lineage = self.store.lineage_store()
        if isinstance(ref, Artifact):
            return lineage.upstream(ref.id, max_depth=max_depth)
        artifact_id = _parse_uuid(ref)
        if artifact_id is not None:
            graph = lineage.upstream(artifact_id, max_depth=max_depth)
            if graph is not None or isinstance(ref, uuid.UUID):
                return graph
        art = self.store.get_artifact_by_key(str(ref))
        return None if art is None else lineage.upstream(art.id, max_depth=max_depth)

    def _no_lineage_message(self, ref: ArtifactKeyOrId) -> str:
        shown = ref.key if isinstance(ref, Artifact) else str(ref)
        if self.store is None:
            return (
                f"No lineage for {shown!r}: this tracker has no database "
                "(construct it with db_path=... to query lineage)"
            )
        return f"No lineage for {shown!r}: no such artifact in {self.store.db_path}"


def _parse_uuid(value: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if len(value) in (32, 36):
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None
