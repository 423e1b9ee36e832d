"""The closed experiment loop on one machine, measured: serve → ab start → traffic → ab stop →
export → ope → retrain → models deploy, all through the `learnops` command line.

    python benchmarks/experiment_loop.py [--learners 1500 --decisions 4 --epsilon 0.2]

A scratch project (its own params.yaml, SQLite event store and registry) gets a decision model
trained on simulated logs and deployed; `learnops serve` runs in a subprocess on a free loopback
port. An experiment at ml 40 / gpt4 40 / hybrid 20 runs while `learnops traffic` drives the
simulated learners, every client claiming the ``ml`` arm. Then the checks of issue 12:

- arm shares pass the sample-ratio test (learners per arm vs planned, p > 0.001);
- per arm, the mean of 1/propensity is 5 ± 0.5 (the logged propensities match the sampling);
- every served decision is exported (none lost);
- from the gpt4 arm's logs alone, the DR estimate of the ml arm's policy (the model's argmax,
  ε-mixed) is within 0.02 of that policy's true value on those contexts (computed from the
  simulator's counterfactual outcome of every action) and inside its own 95% CI.

Numbers go to benchmarks/results/experiment_loop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from _server import deploy_trained_mlp, free_port, machine_info, stop, wait_healthy
from scipy import stats

from learnops.config import load_params
from learnops.contracts import ACTIONS, FEATURES
from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "experiment_loop.json"
ARMS = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}
ADMIN = "bench-admin-token"


def _learnops(*args: str, env: dict[str, str], cwd: Path) -> str:
    """Run `learnops ARGS` (this interpreter's), fail loudly, return its stdout."""
    cmd = [sys.executable, "-m", "learnops", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    print(f"$ learnops {' '.join(args)}   ({took:.1f} s, exit {proc.returncode})", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"learnops {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _project(root: Path, epsilon: float, seed: int) -> tuple[Path, Path]:
    """params.yaml of a scratch project with a deployed model; (params path, model dir)."""
    from learnops.data.simulate import simulate_decisions_table

    params_path = root / "params.yaml"
    params_path.write_text(
        yaml.safe_dump(
            {
                "seed": seed,
                "serve": {"epsilon": epsilon, "seed": seed},
                "export": {"min_data_points": 10},
                "mlp": {"epochs": 15},
            }
        )
    )
    df = simulate_decisions_table(20_000, seed)
    model_dir = deploy_trained_mlp(params_path, df, epochs=15, seed=seed, out=root / "mlp-initial")
    return params_path, model_dir


def _true_value(truth: pd.DataFrame, model_dir: Path, epsilon: float) -> float:
    """The ε-greedy model policy's mean next_engagement on the truth rows' contexts, from the
    simulator's counterfactual outcome of every action (the estimand of OPE)."""
    from learnops.mlp import load
    from learnops.mlp.inference import predict_batch
    from learnops.policy import epsilon_greedy

    model = load(model_dir)
    probs = predict_batch(model, truth[list(FEATURES)])
    pi = epsilon_greedy(probs[[f"p_{a}" for a in ACTIONS]].to_numpy(float), epsilon)
    q = truth[[f"q_{a}" for a in ACTIONS]].to_numpy(float)
    return float(np.mean(np.sum(pi * q, axis=1)))


def _wait_for_experiment(url: str, name: str, timeout: float = 10.0) -> None:
    """Until the server's /health shows ``name`` running (it looks experiments up once a
    second): decisions before that are served the default policy, outside the experiment."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(url + "/health").json().get("experiment") == name:
            return
        time.sleep(0.2)
    raise SystemExit(f"the server did not pick up experiment {name} in {timeout} s")


def _newest_completed(params_path: Path) -> str | None:
    """The newest completed (not yet deployed) mlp version of the project's registry."""
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry

    params = load_params(params_path)
    store = EventStore(params.db_url)
    try:
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        done = [v for v in reg.list("mlp") if v.status == "completed"]
    finally:
        store.dispose()
    return max(done, key=lambda v: v.number).version if done else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--learners", type=int, default=1500)
    ap.add_argument("--decisions", type=int, default=4, help="decisions per learner")
    ap.add_argument("--epsilon", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from learnops.serve import hash_token

    root = Path(tempfile.mkdtemp(prefix="learnops-loop-"))
    t_all = time.perf_counter()
    params_path, model_dir = _project(root, args.epsilon, args.seed)
    env = {
        **os.environ,
        "LEARNOPS_ADMIN_TOKENS": hash_token(ADMIN),
        "LEARNOPS_DB_URL": load_params(params_path).db_url,
    }
    env.pop("LEARNOPS_TOKENS", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "learnops", "serve", "--port", str(port), "--params", "params.yaml"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    p = ["--params", "params.yaml"]
    try:
        wait_healthy(url, server)
        arms = ",".join(f"{k}={v}" for k, v in ARMS.items())
        _learnops("ab", "start", "loop", "--arms", arms, *p, env=env, cwd=root)
        _wait_for_experiment(url, "loop")
        t0 = time.perf_counter()
        traffic_out = _learnops(
            "traffic", "--url", url, "--learners", str(args.learners),
            "--decisions-per-learner", str(args.decisions), "--seed", str(args.seed),
            "--concurrency", str(args.concurrency), "--truth", "truth.parquet",
            "--claim-arm", "ml", env=env, cwd=root,
        )  # fmt: skip
        traffic_s = time.perf_counter() - t0
        import httpx

        metrics = httpx.get(url + "/metrics").text
        stop_out = _learnops("ab", "stop", "loop", *p, env=env, cwd=root)
    finally:
        stop(server)
    _learnops("export", "--out", "export", *p, env=env, cwd=root)
    _learnops(
        "ope", "export/decisions.parquet", "--model", str(model_dir), "--epsilon",
        str(args.epsilon), "--where", "ab_group=gpt4", "--where", "ab_test=loop",
        "--json", "ope.json", *p, env=env, cwd=root,
    )  # fmt: skip
    retrain_out = _learnops("retrain", "--model", "mlp", "--no-auto-deploy", *p, env=env, cwd=root)
    newest = _newest_completed(params_path)
    if newest is not None:
        _learnops("models", "deploy", newest, "--model", "mlp", *p, env=env, cwd=root)

    truth = pd.read_parquet(root / "truth.parquet")
    decisions = pd.read_parquet(root / "export" / "decisions.parquet")
    ope = json.loads((root / "ope.json").read_text())
    report = json.loads((root / "reports" / "ab" / "loop.json").read_text())
    exp = decisions[decisions["ab_test"] == "loop"]
    learners = exp.groupby("learner_hash")["ab_group"].agg(["first", "nunique"])
    counts = learners["first"].value_counts().reindex(list(ARMS), fill_value=0)
    srm = stats.chisquare(counts.to_numpy(), np.array(list(ARMS.values())) * counts.sum())
    inv_prop = {arm: float((1.0 / g["propensity"]).mean()) for arm, g in exp.groupby("ab_group")}
    gpt4 = truth[truth["ab_group"] == "gpt4"]
    true_ml = _true_value(gpt4, model_dir, args.epsilon)
    dr = ope["estimates"]["dr"]
    observed_ml = float(exp.loc[exp["ab_group"] == "ml", "next_engagement"].mean())
    mismatch = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("learnops_ab_client_arm_mismatch_total{")
    )
    result = {
        "setup": {
            "learners": args.learners,
            "decisions_per_learner": args.decisions,
            "epsilon": args.epsilon,
            "arms": ARMS,
            "clients_claim": "ml",
            "seed": args.seed,
        },
        "served_decisions": len(truth),
        "exported_decisions": int(decisions["decision_id"].isin(truth["decision_id"]).sum()),
        "in_experiment": int(len(exp)),
        "lost_decisions": int(len(set(truth["decision_id"]) - set(decisions["decision_id"]))),
        "outcomes_missing": int(exp["next_engagement"].isna().sum()),
        "learners_per_arm": counts.to_dict(),
        "learners_in_two_arms": int((learners["nunique"] > 1).sum()),
        "srm_p_value": float(srm.pvalue),
        "client_arm_mismatches": mismatch,
        "mean_inverse_propensity": inv_prop,
        "explored_share": float(exp["explored"].mean()),
        "ope_gpt4_logs_for_ml_policy": {
            "n": ope["n"],
            "n_learners": ope["n_learners"],
            "dr": dr,
            "ips": ope["estimates"]["ips"],
            "snips": ope["estimates"]["snips"],
            "ess": ope["ess"],
            "max_weight": ope["max_weight"],
            "true_value_on_gpt4_contexts": true_ml,
            "abs_error_dr": abs(dr["value"] - true_ml),
            "truth_inside_dr_ci": dr["ci_low"] <= true_ml <= dr["ci_high"],
            "ml_arm_observed_mean": observed_ml,
        },
        "experiment_verdict": {"winner": report.get("winner"), "decision": report.get("decision")},
        "traffic_seconds": round(traffic_s, 1),
        "decisions_per_second": round(len(truth) / traffic_s, 1),
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "deployed_after_retrain": newest,
        "logs": {"traffic": traffic_out[-2000:], "stop": stop_out, "retrain": retrain_out[-2000:]},
        "machine": machine_info(),
        "project": str(root),
    }
    result["checks"] = {
        "srm_p_gt_0.001": result["srm_p_value"] > 0.001,
        "inverse_propensity_5_pm_0.5": all(abs(v - 5) <= 0.5 for v in inv_prop.values()),
        "no_decision_lost": result["lost_decisions"] == 0
        and result["exported_decisions"] == len(truth),
        "dr_within_0.02_and_covers": abs(dr["value"] - true_ml) <= 0.02
        and dr["ci_low"] <= true_ml <= dr["ci_high"],
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "logs"}, indent=2, default=str))


if __name__ == "__main__":
    main()
