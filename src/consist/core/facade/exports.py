"""Standard provenance exports of the Tracker (W3C PROV, RO-Crate, OpenLineage).

Mixed into :class:`~consist.core.tracker.Tracker`; the documents are built by
:mod:`consist.core.exports`.
"""

from __future__ import annotations


class TrackerExports:
    """Standard provenance exports of the Tracker."""
