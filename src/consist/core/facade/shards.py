"""Moving runs between stores, and purging them: methods of the Tracker.

Mixed into :class:`~consist.core.tracker.Tracker`; the work is done by
services in :mod:`consist.core.store`.
"""

from __future__ import annotations


class TrackerShards:
    """Export, merge and purge methods of the Tracker."""
