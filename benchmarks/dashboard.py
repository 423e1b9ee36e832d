"""Dashboard benchmark: seconds to compute GET /api/mlops/dashboard's document with the
simulator's decisions (about 15 per learner) all inside the 30-minute window and a running
experiment over them (target ≤ 1 s at 2000 learners: the page refreshes every 5 s and open pages
share one computation per second), and seconds of the experiment's background analysis.

    python benchmarks/dashboard.py [--quick]

Writes benchmarks/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from _server import machine_info, results_path

from learnops.ab.experiments import analyze_experiment, start_experiment
from learnops.config import Params, SimulateConfig
from learnops.data.simulate import simulate
from learnops.data.store import EventStore, utcnow
from learnops.io import write_json
from learnops.serve import RuleTeacher, Tokens, create_app
from learnops.serve.dashboard import DashboardCache, dashboard_payload

TARGET_S = 1.0


def run(n_learners: int, repeats: int) -> dict:
    """Median payload and analysis seconds with ``n_learners`` simulated learners."""
    sim = simulate(SimulateConfig(n_learners=n_learners), seed=2)
    decisions = sim.decisions.copy()
    now = utcnow()
    rng = np.random.default_rng(0)
    offsets = rng.uniform(0, 29 * 60, len(decisions))
    decisions["timestamp"] = [now - timedelta(seconds=float(s)) for s in offsets]
    name = str(decisions["ab_test"].dropna().iloc[0])
    with tempfile.TemporaryDirectory() as tmp:
        params = Params(root=Path(tmp))
        store = EventStore(params.db_url)
        store.insert_decisions(decisions)
        exp = start_experiment(store, name, {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2})
        app = create_app(params, tokens=Tokens(), fallback=RuleTeacher(), store=store)
        state = app.state.serve
        state.experiments.refresh()
        cache = DashboardCache()
        dashboard_payload(state, cache, 30.0)  # starts the experiment's analysis: wait for it
        while not cache.analysis:
            time.sleep(0.05)
        payload_s = []
        for _ in range(repeats):
            cache.payloads.clear()  # computed, not served from the one-second cache
            t = time.perf_counter()
            d = dashboard_payload(state, cache, 30.0)
            payload_s.append(time.perf_counter() - t)
        assert d["experiment"]["analysis"]["comparisons"]
        assert d["decisions"]["total"] == len(decisions), d["decisions"]["total"]
        t = time.perf_counter()
        analyze_experiment(exp, store.read_decisions(ab_test=name), params)
        analysis_s = time.perf_counter() - t
        state.close()
        store.dispose()
    return {
        "learners": n_learners,
        "decisions_in_window": len(decisions),
        "payload_seconds_median": statistics.median(payload_s),
        "payload_seconds": payload_s,
        "analysis_seconds": analysis_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 learners instead of 2000")
    args = ap.parse_args()
    results = results_path("dashboard", args.quick)
    res = run(500 if args.quick else 2000, repeats=3 if args.quick else 5)
    out = {
        "machine": machine_info(load_average_1m=os.getloadavg()[0]),
        "quick": args.quick,
        "target_payload_seconds": TARGET_S,
        **res,
        "meets_target": res["payload_seconds_median"] <= TARGET_S,
    }
    write_json(results, out)
    print(
        f"dashboard payload: {res['payload_seconds_median']:.3f} s median with "
        f"{res['decisions_in_window']:,} decisions in the window (target ≤ {TARGET_S:g} s); "
        f"experiment analysis {res['analysis_seconds']:.2f} s"
    )


if __name__ == "__main__":
    main()
