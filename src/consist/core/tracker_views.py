"""Views and schema methods of the Tracker.

(view, create_view, create_grouped_view, export_schema_sqlmodel.) Mixed into
:class:`~consist.core.tracker.Tracker`.
"""

from __future__ import annotations


class TrackerViews:
    """Views and schema methods of the Tracker."""
