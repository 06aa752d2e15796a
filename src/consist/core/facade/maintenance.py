"""Store maintenance methods of the Tracker (checking and repairing the store).

Mixed into :class:`~consist.core.tracker.Tracker`; the work is done by
services in :mod:`consist.core.store`.
"""

from __future__ import annotations


class TrackerMaintenance:
    """Store maintenance methods of the Tracker."""
