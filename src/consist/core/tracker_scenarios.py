"""Scenario workflows of the Tracker

Mixed into :class:`~consist.core.tracker.Tracker`.
"""

from __future__ import annotations


class TrackerScenarios:
    """Scenario workflows of the Tracker."""
