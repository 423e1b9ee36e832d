"""Learner-model comparison benchmark: fit + evaluation of every model on the default simulated
data (params.yaml's ``simulate`` section and seed), both splits, with the learner bootstrap.

Run ``python benchmarks/learner_models.py [--quick] [--params P]``; writes
benchmarks/results/learner_models.json (``.quick.json`` with --quick: CI-size params). The target
(issue 18) is < 120 s wall-clock for all models together on the default data. Wall and CPU
seconds are both recorded: on a shared machine the wall clock includes waiting for the CPU.
The acceptance table (temporal split, paired log-loss difference with static IRT) is stored too.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from _server import machine_info, results_path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 120.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="CI-size data (params.ci.yaml)")
    ap.add_argument("--params", default=None, help="params file (default: params.yaml)")
    ns = ap.parse_args()

    from learnops.config import load_params
    from learnops.data.simulate import simulate
    from learnops.learner_models import compare

    path = ns.params or str(ROOT / ("params.ci.yaml" if ns.quick else "params.yaml"))
    params = load_params(path)
    sim = simulate(params.simulate, params.seed)
    responses = sim.responses.reset_index(drop=True)
    cfg, seed = params.learner_models, params.seed

    w0, c0 = time.perf_counter(), time.process_time()
    train, mask = compare.split_temporal(responses, cfg.holdout_frac)
    temporal = compare.evaluate_split("temporal", responses, train, mask, cfg, params.irt, seed)
    w1, c1 = time.perf_counter(), time.process_time()
    train, mask = compare.split_learners(responses, cfg.test_split, seed)
    learners = compare.evaluate_split(
        "learners", responses, train, mask, cfg, params.irt, seed, history=mask
    )
    w2, c2 = time.perf_counter(), time.process_time()

    def table(res) -> dict:
        return {
            m: {k: round(float(res.metrics.loc[(m, k), "value"]), 5) for k in compare.METRICS}
            for m in res.metrics.index.get_level_values(0).unique()
        }

    def paired(res) -> dict:
        p = res.paired.xs("log_loss", level="metric")
        return {m: [round(float(v), 5) for v in p.loc[m]] for m in p.index}

    doc = {
        "params": Path(path).name,
        "n_responses": len(responses),
        "n_learners": int(responses["learner_hash"].nunique()),
        "bootstrap": cfg.bootstrap,
        "wall_seconds": {"temporal": w1 - w0, "learners": w2 - w1, "total": w2 - w0},
        "cpu_seconds": {"temporal": c1 - c0, "learners": c2 - c1, "total": c2 - c0},
        "model_seconds": {"temporal": temporal.seconds, "learners": learners.seconds},
        "target_seconds": TARGET_SECONDS,
        "metrics": {"temporal": table(temporal), "learners": table(learners)},
        "log_loss_diff_vs_irt": {"temporal": paired(temporal), "learners": paired(learners)},
        "machine": machine_info(cpu=platform.processor()),
    }
    out = results_path("learner_models", ns.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(json.dumps(doc["wall_seconds"]), json.dumps(doc["cpu_seconds"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
