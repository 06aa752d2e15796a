"""The Tracker's scientific-format methods, one mixin per format family.

Mixed into :class:`~consist.core.tracker.Tracker`: HDF5
(:mod:`.hdf5`), NetCDF/Zarr arrays (:mod:`.arrays`), OpenMatrix
(:mod:`.openmatrix`) and spatial layers (:mod:`.spatial`). Each format's
reading, hashing and describing lives in its driver module.
"""

from __future__ import annotations

from consist.core.facade.arrays import TrackerArrays
from consist.core.facade.hdf5 import TrackerHdf5
from consist.core.facade.openmatrix import TrackerOpenMatrix
from consist.core.facade.spatial import TrackerSpatial


class TrackerFormats(TrackerHdf5, TrackerArrays, TrackerOpenMatrix, TrackerSpatial):
    """Scientific-format methods of the Tracker."""
