"""Hot-data methods of the Tracker (ingest, log_dataframe).

Mixed into :class:`~consist.core.tracker.Tracker`.
"""

from __future__ import annotations


class TrackerHotData:
    """Hot-data methods of the Tracker (ingest, log_dataframe)."""
