"""Facet, config-value and RunSet queries of the Tracker

Mixed into :class:`~consist.core.tracker.Tracker`.
"""

from __future__ import annotations


class TrackerFacets:
    """Facet, config-value and RunSet queries of the Tracker."""
