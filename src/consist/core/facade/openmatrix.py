"""Tracker methods for OpenMatrix (OMX) files.

Mixed into :class:`~consist.core.tracker.Tracker` through
:class:`~consist.core.facade.formats.TrackerFormats`; reading and describing
the format lives in its driver module under :mod:`consist.core.drivers`.
"""

from __future__ import annotations


class TrackerOpenMatrix:
    """Tracker methods for OpenMatrix (OMX) files."""
