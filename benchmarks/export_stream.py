"""Streaming export from PostgreSQL: time and peak memory of ``learnops.data.export.export``.

    LEARNOPS_BENCH_PG=postgresql+psycopg://user:pw@127.0.0.1:5432/db \\
        python benchmarks/export_stream.py [--rows 5000000 --chunk-rows 50000] [--keep]

The database named by ``LEARNOPS_BENCH_PG`` (default: ``LEARNOPS_TEST_PG``) gets ``--rows``
decisions (emptied first unless ``--keep`` finds exactly that many already): a simulated base of
``--base`` decisions (valid rows, their logging distributions included) repeated with fresh ids,
learner hashes per copy and timestamps shifted by whole days, loaded with COPY. The export then
runs in a fresh process (its peak RSS is that process's ``VmHWM``; the peak after the imports,
before the export, is reported too) and the Parquet file is read back to count its rows and row
groups. Writes benchmarks/results/export_stream.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _server import machine_info

from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "export_stream.json"
TARGET_PEAK_RSS_MB = 1024.0

_EXPORT = """
import json, sys, time
from learnops.config import ExportConfig
from learnops.data.export import export
from learnops.data.store import EventStore
import pandas, pyarrow, pandera, sqlalchemy, psycopg  # imported before the baseline

def hwm_mb():
    # VmHWM: this process's peak RSS (ru_maxrss would count the parent's RSS before exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

base = hwm_mb()
store = EventStore(sys.argv[1], create=False)
t = time.perf_counter()
res = export(store, ExportConfig(last_days=None, min_data_points=1), sys.argv[2],
             chunk_rows=int(sys.argv[3]))
seconds = time.perf_counter() - t
peak = hwm_mb()
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_after_imports_mb": base,
                  "counts": res.counts, "n_learners": res.n_learners}))
"""


def _fill(url: str, rows: int, base_n: int, seed: int) -> float:
    """Empty the tables and COPY ``rows`` decisions in; the seconds it took."""
    import numpy as np
    import pandas as pd

    from learnops.contracts import DECISION_COLUMNS
    from learnops.data.simulate import simulate_decisions_table
    from learnops.data.store import Base, EventStore

    store = EventStore(url, create=False)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    t0 = time.perf_counter()
    base = simulate_decisions_table(base_n, seed)[list(DECISION_COLUMNS)]
    base["timestamp"] = pd.to_datetime(base["timestamp"], utc=True).dt.tz_localize(None)
    span_days = int((base["timestamp"].max() - base["timestamp"].min()).days) + 1
    cols = ", ".join(f'"{c}"' for c in DECISION_COLUMNS)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        copies = -(-rows // len(base))
        for k in range(copies):
            part = base.iloc[: min(len(base), rows - k * len(base))].copy()
            part["decision_id"] = [f"b{k:05d}-{i:07d}" for i in range(len(part))]
            part["learner_hash"] = f"{k:05x}" + part["learner_hash"].str.slice(5)
            part["timestamp"] = part["timestamp"] + pd.Timedelta(days=(k % 12) * span_days)
            buf = io.StringIO()
            part.to_csv(buf, index=False, header=False, na_rep="",
                        date_format="%Y-%m-%d %H:%M:%S.%f")  # fmt: skip
            with cur.copy(f"COPY ml_training_data ({cols}) FROM STDIN (FORMAT csv)") as cp:
                cp.write(buf.getvalue())
            raw.commit()
        cur.execute("ANALYZE ml_training_data")
        raw.commit()
    finally:
        raw.close()
        store.dispose()
    del np
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--base", type=int, default=20_000, help="simulated decisions repeated")
    ap.add_argument("--chunk-rows", type=int, default=20_000)
    ap.add_argument("--keep", action="store_true", help="reuse the rows if the count matches")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    url = os.environ.get("LEARNOPS_BENCH_PG") or os.environ.get("LEARNOPS_TEST_PG")
    if not url:
        # `make bench` runs every benchmark: without PostgreSQL this one says so and passes
        print("skipped: set LEARNOPS_BENCH_PG to a scratch PostgreSQL database (it is emptied)")
        return

    from learnops.data.store import Decision, EventStore

    have = 0
    if args.keep:
        try:
            store = EventStore(url, create=False)
            have = store.count(Decision)
            store.dispose()
        except Exception:
            have = 0
    fill_s = None
    if have != args.rows:
        fill_s = _fill(url, args.rows, args.base, args.seed)
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="learnops-export-") as tmp:
        load_before = os.getloadavg()[0]
        proc = subprocess.run(
            [sys.executable, "-c", _EXPORT, url, tmp, str(args.chunk_rows)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        meta = pq.ParquetFile(Path(tmp) / "decisions.parquet").metadata
        size = (Path(tmp) / "decisions.parquet").stat().st_size
    result.update(
        rows=args.rows,
        chunk_rows=args.chunk_rows,
        rows_per_second=args.rows / result["seconds"],
        parquet_rows=meta.num_rows,
        parquet_row_groups=meta.num_row_groups,
        parquet_mb=size / 2**20,
        fill_seconds=fill_s,
        target_peak_rss_mb=TARGET_PEAK_RSS_MB,
        meets_target=result["peak_rss_mb"] < TARGET_PEAK_RSS_MB and meta.num_rows == args.rows,
        load_average_before=load_before,
        machine=machine_info(),
    )
    write_json(args.out, result)
    print(
        f"export of {args.rows} decisions from PostgreSQL in chunks of {args.chunk_rows}: "
        f"{result['seconds']:.1f} s ({result['rows_per_second']:.0f} rows/s), peak RSS "
        f"{result['peak_rss_mb']:.0f} MB (after imports {result['rss_after_imports_mb']:.0f} MB); "
        f"{meta.num_row_groups} row groups, {result['parquet_mb']:.0f} MB"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
