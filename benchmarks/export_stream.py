"""Streaming export from PostgreSQL: time and peak memory of ``learnops.data.export.export``.

    LEARNOPS_BENCH_PG=postgresql+psycopg://user:pw@127.0.0.1:5432/db \\
        python benchmarks/export_stream.py [--rows 5000000 --chunk-rows 50000] [--keep]
        [--responses N] [--ability-model irt|elo|best_lr]

The database named by ``LEARNOPS_BENCH_PG`` (default: ``LEARNOPS_TEST_PG``) gets ``--rows``
decisions and ``--responses`` responses (emptied first unless ``--keep`` finds exactly that many
of each already): a simulated base of ``--base`` decisions (valid rows, their logging
distributions included) and the same learners' answers, repeated with fresh ids, learner hashes
per copy and timestamps shifted by whole days, loaded with COPY (each copy of the decisions comes
with a copy of an evenly spaced subset of the answers, so every learner keeps answers). The
export then runs in a fresh process, with ``irt.ability_model`` = ``--ability-model`` (elo and
best_lr fit the model on the exported answers and rewrite the decisions' ability/ability_se as
of each decision); its peak RSS is that process's ``VmHWM`` (the peak after the imports, before
the export, is reported too; with elo/best_lr also the peak and the RSS when the model's fit
starts, and the peak when it returns) and the Parquet file is read back to count its rows and
row groups.
Writes benchmarks/results/export_stream.json (irt, no responses: the default) or
export_stream_<model>.json.
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

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_PEAK_RSS_MB = 1024.0

_EXPORT = """
import json, sys, time
from learnops.config import ExportConfig, Params
from learnops.data.export import export
from learnops.data.store import EventStore
from learnops.stages.export import _abilities
import pandas, pyarrow, pandera, sqlalchemy, psycopg  # imported before the baseline
if sys.argv[4] != "irt":
    import scipy.special, sklearn.linear_model  # the models' imports, before the baseline

def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

def hwm_mb():
    # VmHWM: this process's peak RSS (ru_maxrss would count the parent's RSS before exec)
    return status_mb("VmHWM")

base = hwm_mb()
store = EventStore(sys.argv[1], create=False)
t = time.perf_counter()
supply = _abilities(Params(irt={"ability_model": sys.argv[4]}))
fit = {}

def abilities(*args):  # the ability model's fit and trajectory, timed
    t0, hwm0, rss0 = time.perf_counter(), hwm_mb(), status_mb("VmRSS")
    source = supply(*args)
    fit.update(ability_fit_seconds=time.perf_counter() - t0, peak_rss_before_fit_mb=hwm0,
               rss_before_fit_mb=rss0, peak_rss_after_fit_mb=hwm_mb(),
               trajectory_mb=getattr(source, "nbytes", 0) / 2**20)
    return source
res = export(store, ExportConfig(last_days=None, min_data_points=1), sys.argv[2],
             chunk_rows=int(sys.argv[3]), abilities=abilities if supply else None)
seconds = time.perf_counter() - t
peak = hwm_mb()
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_after_imports_mb": base,
                  "counts": res.counts, "n_learners": res.n_learners, **fit}))
"""


def _simulated(base_n: int, seed: int):
    """(at least ``base_n`` simulated decisions, first ``base_n``, with their logging
    distributions; the same learners' responses): :func:`simulate_decisions_table`'s population
    with its answers kept."""
    from learnops.config import SimulateConfig
    from learnops.data.simulate import simulate

    cfg = SimulateConfig(n_learners=max(20, int(base_n / 12) + 20))
    while True:
        sim = simulate(cfg, seed)
        if len(sim.decisions) >= base_n:
            break
        cfg = cfg.model_copy(update={"n_learners": cfg.n_learners * 2})
    decisions = sim.decisions.merge(sim.decision_truth, on="decision_id", how="left")
    return decisions.iloc[:base_n].reset_index(drop=True), sim.responses


def _copy_in(cur, raw, table: str, base, columns, rows: int, copies: int, id_col: str, tag: str,
             span_days: int) -> None:  # fmt: skip
    """COPY ``rows`` rows in ``copies`` copies of ``base`` (each copy the same evenly spaced
    subset of its rows, or all of them, repeated as needed): fresh ids, learner hashes per copy,
    timestamps shifted by whole spans of days (copy k by ``k % 12`` spans)."""
    import numpy as np
    import pandas as pd

    cols = ", ".join(f'"{c}"' for c in columns)
    per_copy = -(-rows // copies)
    take = np.floor(np.arange(per_copy) * len(base) / per_copy).astype(int) % len(base)
    for k in range(copies):
        n = min(per_copy, rows - k * per_copy)
        if n <= 0:
            break
        part = base.iloc[take[:n]].copy()
        part[id_col] = [f"{tag}{k:05d}-{i:07d}" for i in range(len(part))]
        part["learner_hash"] = f"{k:05x}" + part["learner_hash"].str.slice(5)
        part["timestamp"] = part["timestamp"] + pd.Timedelta(days=(k % 12) * span_days)
        buf = io.StringIO()
        part.to_csv(buf, index=False, header=False, na_rep="",
                    date_format="%Y-%m-%d %H:%M:%S.%f")  # fmt: skip
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as cp:
            cp.write(buf.getvalue())
        raw.commit()
    cur.execute(f"ANALYZE {table}")
    raw.commit()


def _fill(url: str, rows: int, responses: int, base_n: int, seed: int) -> float:
    """Empty the tables and COPY ``rows`` decisions and ``responses`` responses (of the same
    learners: copy k of the base decisions and copy k of the base responses share their learner
    hashes and time shift) in; the seconds it took."""
    import pandas as pd

    from learnops.contracts import DECISION_COLUMNS, RESPONSE_COLUMNS
    from learnops.data.store import Base, EventStore

    store = EventStore(url, create=False)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    t0 = time.perf_counter()
    base, base_resp = _simulated(base_n, seed)
    base = base[list(DECISION_COLUMNS)]
    base_resp = base_resp[list(RESPONSE_COLUMNS)].copy()
    for df in (base, base_resp):
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).dt.tz_localize(None)
    first = min(base["timestamp"].min(), base_resp["timestamp"].min())
    last = max(base["timestamp"].max(), base_resp["timestamp"].max())
    span_days = int((last - first).days) + 1
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        copies = -(-rows // len(base))
        _copy_in(cur, raw, "ml_training_data", base, DECISION_COLUMNS, rows, copies,
                 "decision_id", "b", span_days)  # fmt: skip
        if responses:
            _copy_in(cur, raw, "training_data", base_resp, RESPONSE_COLUMNS, responses, copies,
                     "response_id", "r", span_days)  # fmt: skip
    finally:
        raw.close()
        store.dispose()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--base", type=int, default=20_000, help="simulated decisions repeated")
    ap.add_argument(
        "--responses",
        type=int,
        default=None,
        help="responses (default: none with irt, as many as --rows otherwise)",
    )
    ap.add_argument("--ability-model", choices=("irt", "elo", "best_lr"), default="irt")
    ap.add_argument("--chunk-rows", type=int, default=20_000)
    ap.add_argument("--keep", action="store_true", help="reuse the rows if the count matches")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.responses is None:
        args.responses = 0 if args.ability_model == "irt" else args.rows
    if args.out is None:
        suffix = "" if args.ability_model == "irt" else f"_{args.ability_model}"
        args.out = RESULTS / f"export_stream{suffix}.json"
    url = os.environ.get("LEARNOPS_BENCH_PG") or os.environ.get("LEARNOPS_TEST_PG")
    if not url:
        # `make bench` runs every benchmark: without PostgreSQL this one says so and passes
        print("skipped: set LEARNOPS_BENCH_PG to a scratch PostgreSQL database (it is emptied)")
        return

    from learnops.data.store import Decision, EventStore, Response

    have = (0, 0)
    if args.keep:
        try:
            store = EventStore(url, create=False)
            have = (store.count(Decision), store.count(Response))
            store.dispose()
        except Exception:
            have = (0, 0)
    fill_s = None
    if have != (args.rows, args.responses):
        fill_s = _fill(url, args.rows, args.responses, args.base, args.seed)
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="learnops-export-") as tmp:
        load_before = os.getloadavg()[0]
        proc = subprocess.run(
            [sys.executable, "-c", _EXPORT, url, tmp, str(args.chunk_rows), args.ability_model],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        meta = pq.ParquetFile(Path(tmp) / "decisions.parquet").metadata
        size = (Path(tmp) / "decisions.parquet").stat().st_size
    result.update(
        rows=args.rows,
        responses=args.responses,
        ability_model=args.ability_model,
        chunk_rows=args.chunk_rows,
        rows_per_second=args.rows / result["seconds"],
        parquet_rows=meta.num_rows,
        parquet_row_groups=meta.num_row_groups,
        parquet_mb=size / 2**20,
        fill_seconds=fill_s,
        target_peak_rss_mb=TARGET_PEAK_RSS_MB,
        meets_target=result["peak_rss_mb"] < TARGET_PEAK_RSS_MB
        and meta.num_rows == args.rows
        and result["counts"]["responses"] == args.responses,
        load_average_before=load_before,
        machine=machine_info(),
    )
    write_json(args.out, result)
    print(
        f"export of {args.rows} decisions and {args.responses} responses from PostgreSQL "
        f"(ability_model={args.ability_model}) in chunks of {args.chunk_rows}: "
        f"{result['seconds']:.1f} s ({result['rows_per_second']:.0f} rows/s), peak RSS "
        f"{result['peak_rss_mb']:.0f} MB (after imports {result['rss_after_imports_mb']:.0f} MB); "
        f"{meta.num_row_groups} row groups, {result['parquet_mb']:.0f} MB"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
