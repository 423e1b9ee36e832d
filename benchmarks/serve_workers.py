"""Multi-worker serving on PostgreSQL: ``learnops serve --workers 4``, /decide load, a deploy in
the middle, and a count of the logged decisions.

    LEARNOPS_BENCH_PG=postgresql+psycopg://user:pw@127.0.0.1:5432/db \\
        python benchmarks/serve_workers.py [--requests 10000 --concurrency 8 --workers 4]

The database named by ``LEARNOPS_BENCH_PG`` (default: ``LEARNOPS_TEST_PG``) is emptied first: give
it a scratch database. Trains a small MLP, registers it twice (v1 deployed, v2 completed) in a
temporary project, starts ``learnops serve --workers N`` on 127.0.0.1 and sends the requests from
``--concurrency`` keep-alive connections. Halfway, v2 is deployed through the registry (what
``learnops models deploy`` does) while a watcher asks ``/health`` on a fresh connection every few
milliseconds; each answer names its worker process, the version it serves and when that process
loaded it (``modelLoadedAt``, the same machine's clock): the propagation time is the last
worker's load time minus the moment the deploy began (the time until the watcher happened to
reach each worker is reported too, an upper bound). After the load the server gets SIGTERM (a
graceful shutdown) and the logged decisions are counted in PostgreSQL: they must equal the 200
answers.
Writes benchmarks/results/serve_workers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from _server import deploy_trained_mlp, free_port, latency_summary, machine_info, stop, wait_healthy

from learnops.contracts import FEATURES
from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "serve_workers.json"
TARGET_PROPAGATION_S = 2.0


def _project(root: Path, url: str, seed: int) -> tuple[Path, list[dict]]:
    """params.yaml, v1 deployed and v2 completed (the same weights), and request bodies."""
    import shutil

    from learnops.config import load_params
    from learnops.data.simulate import simulate_decisions_table
    from learnops.data.store import Base, EventStore
    from learnops.lifecycle.registry import Registry

    store = EventStore(url, create=False)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    store.dispose()
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump({"seed": seed}))
    df = simulate_decisions_table(3000, seed)
    model_dir = deploy_trained_mlp(params_path, df, epochs=5, seed=seed, out=root / "mlp-train")
    copy = root / "mlp-v2"
    shutil.copytree(model_dir, copy)
    params = load_params(params_path)
    store = EventStore(url)
    try:
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        v = reg.start("mlp", data_count=len(df))
        reg.complete("mlp", v.version, copy, {"accuracy": 0.0})
    finally:
        store.dispose()
    bodies = [
        {**{f: float(r[f]) for f in FEATURES}, "learner_id": f"bench-{i % 500}"}
        for i, r in enumerate(df.to_dict("records"))
    ]
    return params_path, bodies


def _children(pid: int) -> set[int]:
    """The worker processes of the uvicorn supervisor ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(x) for x in text.split()}


async def _health(url: str) -> dict | None:
    """``/health`` on a fresh connection (so that any worker may accept it)."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2.0) as c:
            r = await c.get("/health", headers={"Connection": "close"})
        return r.json() if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


async def _workers_seen(url: str, n: int, timeout: float = 60.0) -> dict[int, str]:
    """Ask /health until ``n`` distinct workers have answered; their served versions."""
    seen: dict[int, str] = {}
    end = time.monotonic() + timeout
    while len(seen) < n and time.monotonic() < end:
        h = await _health(url)
        if h is not None:
            seen[h["worker"]] = h["modelVersion"]
    return seen


async def _run(url: str, args, bodies: list[dict], deploy) -> dict:
    rtt: list[float] = []
    statuses: dict[int, int] = {}
    versions: dict[str, int] = {}
    queue = list(range(args.requests))
    half = asyncio.Event()
    done = asyncio.Event()
    sent = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while queue:
            i = queue.pop()
            sent += 1
            if sent >= args.requests // 2:
                half.set()
            t = time.perf_counter()
            r = await client.post("/decide", json=bodies[i % len(bodies)])
            rtt.append((time.perf_counter() - t) * 1e3)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                v = r.json().get("model_version") or "?"
                versions[v] = versions.get(v, 0) + 1

    async def watcher(workers: set[int]) -> dict:
        await half.wait()
        wall0, t0 = time.time(), time.perf_counter()
        await asyncio.to_thread(deploy)
        deployed_s = time.perf_counter() - t0
        seen: dict[int, float] = {}  # worker -> seconds after the deploy began until observed
        loaded: dict[int, float] = {}  # worker -> seconds after the deploy began until it loaded
        polls = 0
        while len(seen) < len(workers) and time.perf_counter() - t0 < 30:
            h = await _health(url)
            polls += 1
            if h is not None and h["modelVersion"] == "v2":
                seen.setdefault(h["worker"], time.perf_counter() - t0)
                loaded.setdefault(h["worker"], h["modelLoadedAt"] - wall0)
            await asyncio.sleep(0.002)
        during = not done.is_set()
        return {
            "deploy_call_s": deployed_s,
            "workers_serving_new_version": len(seen),
            "seconds_until_each_worker_loaded_new_version": sorted(loaded.values()),
            "seconds_until_each_worker_observed_serving_it": sorted(seen.values()),
            "all_workers_s": max(loaded.values()) if len(loaded) == len(workers) else None,
            "health_polls": polls,
            "all_observed_during_load": during,
        }

    workers = set((await _workers_seen(url, args.workers)).keys())
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        for body in bodies[:50]:  # warm-up, not measured, but logged
            r = await client.post("/decide", json=body)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        t0 = time.perf_counter()
        watch = asyncio.create_task(watcher(workers))
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
        seconds = time.perf_counter() - t0
        done.set()
        propagation = await watch
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "worker_pids_seen": len(workers),
        "seconds": seconds,
        "requests_per_second": args.requests / seconds,
        "round_trip": latency_summary(rtt),
        "statuses": {str(k): v for k, v in statuses.items()},
        "answered_by_version": versions,
        "deploy": propagation,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    url_db = os.environ.get("LEARNOPS_BENCH_PG") or os.environ.get("LEARNOPS_TEST_PG")
    if not url_db:
        # `make bench` runs every benchmark: without PostgreSQL this one says so and passes
        print("skipped: set LEARNOPS_BENCH_PG to a scratch PostgreSQL database (it is emptied)")
        return
    os.environ["LEARNOPS_DB_URL"] = url_db  # the project's store, registry included

    from learnops.config import load_params
    from learnops.data.store import Decision, EventStore
    from learnops.lifecycle.registry import Registry

    with tempfile.TemporaryDirectory(prefix="learnops-bench-") as tmp:
        root = Path(tmp)
        params_path, bodies = _project(root, url_db, args.seed)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        cmd = [sys.executable, "-m", "learnops", "serve", "--params", str(params_path), "--port",
               str(port), "--workers", str(args.workers), "--log-level", "warning"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        params = load_params(params_path)
        store = EventStore(url_db)
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        try:
            wait_healthy(url, proc, timeout=120.0)
            load_before = os.getloadavg()[0]
            children = _children(proc.pid)
            result = asyncio.run(_run(url, args, bodies, lambda: reg.deploy("mlp", "v2")))
            result["worker_processes"] = len(children)
        finally:
            t = time.perf_counter()
            stop(proc, timeout=60)
            result["shutdown_s"] = time.perf_counter() - t
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        answered = int(result["statuses"].get("200", 0))
        logged = store.count(Decision)
        journal = root / "data" / "decision-journal"
        left = sorted(p.name for p in journal.glob("*.jsonl")) if journal.is_dir() else []
        store.dispose()
    result.update(
        answered_200=answered,
        logged_rows=logged,
        decisions_lost=answered - logged,
        journal_segments_left=len(left),
        server_exit_code=proc.returncode,
        target_propagation_s=TARGET_PROPAGATION_S,
        meets_targets=(
            answered == logged
            and result["deploy"]["all_workers_s"] is not None
            and result["deploy"]["all_workers_s"] < TARGET_PROPAGATION_S
        ),
        machine=machine_info(),
        load_average_before=load_before,
        server_stderr_tail=stderr[-1500:],
    )
    write_json(args.out, result)
    rt, d = result["round_trip"], result["deploy"]
    print(
        f"{args.requests} /decide, concurrency {args.concurrency}, {args.workers} workers on "
        f"PostgreSQL: {result['requests_per_second']:.0f} req/s, p50 {rt['p50_ms']:.2f} ms, "
        f"p99 {rt['p99_ms']:.2f} ms; deploy seen on all {d['workers_serving_new_version']} "
        f"workers after {d['all_workers_s']} s; answered {answered}, logged {logged}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
