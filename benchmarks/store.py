"""Event-store and simulator benchmark: simulation time at default size, bulk insert rows/s
into SQLite (target ≥ 50k rows/s), export time.

    python benchmarks/store.py [--quick]

Writes benchmarks/results/store.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _server import machine_info, results_path

from learnops.config import ExportConfig, SimulateConfig
from learnops.data.export import export
from learnops.data.simulate import simulate
from learnops.data.store import Decision, EventStore, Response
from learnops.io import write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 learners instead of 2000")
    args = ap.parse_args()
    results = results_path("store", args.quick)
    cfg = SimulateConfig(n_learners=500 if args.quick else 2000)

    t = time.perf_counter()
    sim = simulate(cfg, seed=1)
    sim_s = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(f"sqlite:///{tmp}/events.db")
        t = time.perf_counter()
        store.insert_responses(sim.responses)
        resp_s = time.perf_counter() - t
        t = time.perf_counter()
        store.insert_decisions(sim.decisions)
        dec_s = time.perf_counter() - t
        assert store.count(Response) == len(sim.responses)
        assert store.count(Decision) == len(sim.decisions)
        t = time.perf_counter()
        res = export(store, ExportConfig(last_days=None, min_data_points=1), Path(tmp) / "out")
        export_s = time.perf_counter() - t
        # the exported tables are read from tmp: count them before it is removed
        export_rows = len(res.responses) + len(res.decisions)
        store.dispose()

    out = {
        "machine": machine_info(load_average_1m=os.getloadavg()[0]),
        "quick": args.quick,
        "simulate": {
            "learners": cfg.n_learners,
            "responses": len(sim.responses),
            "decisions": len(sim.decisions),
            "seconds": sim_s,
            "target_seconds": 30,
        },
        "sqlite_insert": {
            "responses_per_second": len(sim.responses) / resp_s,
            "decisions_per_second": len(sim.decisions) / dec_s,
            "target_rows_per_second": 50_000,
        },
        "export": {"rows": export_rows, "seconds": export_s},
    }
    write_json(results, out)
    print(
        f"simulate: {len(sim.responses):,} responses, {len(sim.decisions):,} decisions "
        f"in {sim_s:.1f} s"
    )
    print(
        f"sqlite insert: {out['sqlite_insert']['responses_per_second']:,.0f} responses/s, "
        f"{out['sqlite_insert']['decisions_per_second']:,.0f} decisions/s"
    )
    print(f"export: {out['export']['rows']:,} rows in {export_s:.1f} s -> {results}")


if __name__ == "__main__":
    main()
