"""RunResult: what ``Tracker.run`` hands back."""

from __future__ import annotations

from dataclasses import dataclass, field

from consist.models.artifact import Artifact
from consist.models.html import run_result_html
from consist.models.run import Run


@dataclass
class RunResult:
    """Outcome of a function-shaped run.

    Attributes
    ----------
    outputs:
        Output artifacts by key (on a hit: the cached ones, with ``.path``
        where they can be read).
    cache_hit:
        True when the function was not executed because an identical
        completed run existed.
    run:
        The run record (on a hit, the new run linked to the cached outputs;
        with ``cache_mode="readonly"`` it is not persisted).
    """

    outputs: dict[str, Artifact] = field(default_factory=dict)
    cache_hit: bool = False
    run: Run | None = None

    @property
    def run_id(self) -> str | None:
        """The run's id."""
        return self.run.id if self.run is not None else None

    def output(self, key: str) -> Artifact:
        """The output artifact ``key`` (KeyError listing the keys if absent)."""
        try:
            return self.outputs[key]
        except KeyError:
            raise KeyError(f"no output {key!r}; outputs are {sorted(self.outputs)}") from None

    def _repr_html_(self) -> str:
        """The result as HTML in a notebook (see :mod:`consist.models.html`)."""
        return run_result_html(self)
