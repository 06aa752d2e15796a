"""Logging a ~1 GiB HDF5 container with 20 tables under ``hash_tables="if_unchanged"``.

Usage::

    python benchmarks/h5_container.py [--size-mib 1024] [--tables 20] [--keep]

Writes one HDF5 file of about ``--size-mib`` MiB in a temporary directory:
``--tables`` pandas DataFrames of 8 float64 columns, alternately
``to_hdf(format="table")`` and ``format="fixed"``. It then waits out the
racy window (a digest recorded within 2 s of the file's last change is not
trusted, see :mod:`consist.core.drivers.hdf5`) and times
``log_h5_container`` twice in two runs of one tracker: the first time (every
table read and hashed, and the file hashed as a whole) and again with the
file unchanged (recorded digests reused). The file is in the page cache for
both timings (it was just written).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from consist import Tracker
from consist.core.drivers import hdf5 as h5


def write_file(path: Path, size_mib: int, tables: int) -> None:
    """``tables`` DataFrames of 8 float64 columns adding up to about ``size_mib`` MiB."""
    rows = (size_mib << 20) // (tables * 9 * 8)  # 8 values + the int64 row index
    rng = np.random.default_rng(0)
    for i in range(tables):
        frame = pd.DataFrame(rng.random((rows, 8)), columns=[f"c{j}" for j in range(8)])
        fmt = "table" if i % 2 == 0 else "fixed"
        frame.to_hdf(path, key=f"table_{i:02d}", format=fmt, mode="w" if i == 0 else "a")


def timed_log(tracker: Tracker, path: Path, run_id: str) -> tuple[float, list]:
    with tracker.start_run(run_id, "h5_benchmark"):
        t0 = time.perf_counter()
        _, children = tracker.log_h5_container(path, key="pipeline")
        elapsed = time.perf_counter() - t0
    return elapsed, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="consist-h5-bench-"))
    try:
        path = root / "pipeline.h5"
        t0 = time.perf_counter()
        write_file(path, args.size_mib, args.tables)
        written = time.perf_counter() - t0
        size = os.path.getsize(path)
        print(f"wrote {path.name}: {size / 2**30:.3f} GiB, {args.tables} tables in {written:.1f} s")
        wait = h5.RACY_WINDOW_NS / 1e9 + 0.2
        print(f"waiting {wait:.1f} s (racy window) before logging")
        time.sleep(wait)

        tracker = Tracker(root / "runs", db_path=root / "prov.duckdb", project_root=root)
        try:
            first, children = timed_log(tracker, path, "first")
            hashed = sum(not c.meta["table_digest_reused"] for c in children)
            print(
                f"first log_h5_container (if_unchanged): {first:.3f} s "
                f"({len(children)} tables, {hashed} hashed)"
            )
            again, children = timed_log(tracker, path, "again")
            reused = sum(bool(c.meta["table_digest_reused"]) for c in children)
            print(
                f"again, file unchanged (if_unchanged):  {again:.3f} s "
                f"({len(children)} tables, {reused} digests reused)"
            )
        finally:
            tracker.close()
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
