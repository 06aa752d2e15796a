"""Lineage queries and renderings of the Tracker

Mixed into :class:`~consist.core.tracker.Tracker`.
"""

from __future__ import annotations


class TrackerLineage:
    """Lineage queries and renderings of the Tracker."""
