"""Tracker methods for NetCDF files, Zarr stores and load_matrix.

Mixed into :class:`~consist.core.tracker.Tracker` through
:class:`~consist.core.facade.formats.TrackerFormats`; reading and describing
the format lives in its driver module under :mod:`consist.core.drivers`.
"""

from __future__ import annotations


class TrackerArrays:
    """Tracker methods for NetCDF files, Zarr stores and load_matrix."""
