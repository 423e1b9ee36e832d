"""Latency of ``GET /learners/{learner_id}/ability`` on the default-size store.

    python benchmarks/ability.py [--calls 200 --models irt,elo,best_lr]

A temporary project holds the default simulated responses (``simulate`` defaults: 2,000 learners,
about 200,000 answers) in its SQLite event store. For each learner model, the model is fitted on
those answers, registered and deployed as type ``learner``; a real uvicorn on 127.0.0.1 serves it
and ``--calls`` GETs for random learners (seeded) are timed from the client (round trip on
loopback: HTTP, the one indexed store query, the replay of the learner's history). The same
learners are also timed in-process (store query + replay, no HTTP). Writes
benchmarks/results/ability.json. Target: round-trip p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml
from _server import latency_summary, machine_info, start_server, stop, wait_healthy

from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "ability.json"
TARGET_P99_MS = 20.0


def _deploy(params, model, name: str) -> str:
    from learnops.data.store import EventStore
    from learnops.learner_models.artifact import save
    from learnops.lifecycle.registry import Registry

    art = save(model, params.path(params.paths.models_dir) / f"learner-{name}")
    store = EventStore(params.db_url)
    try:
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        v = reg.start("learner", data_count=1)
        reg.complete("learner", v.version, art, {"log_loss": 0.5})
        reg.deploy("learner", v.version)
        return v.version
    finally:
        store.dispose()


def _in_process(params, model, ids: list[str]) -> list[float]:
    """Store query + replay per learner, as the route does, without HTTP."""
    from learnops.data.store import EventStore, utcnow
    from learnops.hashing import learner_hash
    from learnops.learner_models.ability import learner_ability

    store = EventStore(params.db_url)
    out = []
    try:
        for lid in ids:
            t = time.perf_counter()
            at = utcnow()
            hist = store.read_learner_responses(learner_hash(lid), until=at)
            learner_ability(model, hist, at)
            out.append((time.perf_counter() - t) * 1e3)
    finally:
        store.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200, help="timed GETs per model")
    ap.add_argument("--models", default="irt,elo,best_lr")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from learnops.config import SimulateConfig, load_params
    from learnops.data.simulate import simulate
    from learnops.data.store import EventStore
    from learnops.learner_models.ability import fit_ability_model

    cfg = SimulateConfig()
    result: dict = {
        "calls": args.calls,
        "target_p99_ms": TARGET_P99_MS,
        "machine": machine_info(),
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="learnops-bench-") as tmp:
        root = Path(tmp)
        params_path = root / "params.yaml"
        params_path.write_text(yaml.safe_dump({"seed": args.seed}))
        params = load_params(params_path)
        t0 = time.perf_counter()
        responses = simulate(cfg, seed=args.seed).responses
        store = EventStore(params.db_url)
        store.claim_salt()
        store.insert_responses(responses)
        store.dispose()
        per_learner = responses.groupby("learner_hash").size()
        result["store"] = {
            "n_learners": int(cfg.n_learners),
            "n_responses": len(responses),
            "responses_per_learner": {
                "median": float(per_learner.median()),
                "max": int(per_learner.max()),
            },
            "setup_seconds": round(time.perf_counter() - t0, 1),
        }
        rng = np.random.default_rng(args.seed)
        ids = [f"sim-learner-{j:06d}" for j in rng.integers(0, cfg.n_learners, args.calls)]
        warm = [f"sim-learner-{j:06d}" for j in rng.integers(0, cfg.n_learners, 20)]
        for name in args.models.split(","):
            t = time.perf_counter()
            model = fit_ability_model(name, responses, params)
            fit_s = time.perf_counter() - t
            version = _deploy(params, model, name)
            proc, url = start_server(params_path)
            try:
                wait_healthy(url, proc)
                rtt, n_resp = [], []
                with httpx.Client(base_url=url, timeout=10.0) as client:
                    for lid in warm:  # warm-up, not measured
                        client.get(f"/learners/{lid}/ability").raise_for_status()
                    for lid in ids:
                        t = time.perf_counter()
                        r = client.get(f"/learners/{lid}/ability")
                        rtt.append((time.perf_counter() - t) * 1e3)
                        r.raise_for_status()
                        body = r.json()
                        assert body["version"] == version and body["model"] == name, body  # nosec B101
                        n_resp.append(body["nResponses"])
            finally:
                stop(proc)
            local = _in_process(params, model, ids)
            round_trip, in_process = latency_summary(rtt), latency_summary(local)
            result["models"][name] = {
                "fit_seconds": round(fit_s, 2),
                "round_trip": round_trip,
                "in_process": in_process,
                "n_responses_mean": float(np.mean(n_resp)),
                "meets_target": round_trip["p99_ms"] < TARGET_P99_MS,
            }
            print(
                f"{name}: round-trip p99 {round_trip['p99_ms']:.2f} ms, "
                f"in-process p99 {in_process['p99_ms']:.2f} ms"
            )
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
