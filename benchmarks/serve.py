"""HTTP serving benchmark: a real uvicorn on 127.0.0.1 and a bounded number of /decide calls.

    python benchmarks/serve.py [--requests 2000 --concurrency 4 --no-model]

Trains a small MLP, registers and deploys it in a temporary project (its own params.yaml,
event store and registry), starts ``learnops.serve.run`` in a subprocess on a free port and
reports throughput and latency (client round trip and the server's decision latency) to
benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from _server import (
    deploy_trained_mlp,
    latency_summary,
    machine_info,
    start_server,
    stop,
    wait_healthy,
)

from learnops.contracts import FEATURES
from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
TARGET_P99_MS = 10.0


def _project(root: Path, with_model: bool, seed: int) -> tuple[Path, list[dict]]:
    """A temporary project: params.yaml, (a deployed model) and request bodies."""
    from learnops.data.simulate import simulate_decisions_table

    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump({"seed": seed}))
    df = simulate_decisions_table(3000, seed)
    if with_model:
        deploy_trained_mlp(params_path, df, epochs=5, seed=seed, out=root / "mlp-train")
    bodies = [
        {**{f: float(r[f]) for f in FEATURES}, "learner_id": f"bench-{i % 500}"}
        for i, r in enumerate(df.to_dict("records"))
    ]
    return params_path, bodies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def _load(url: str, bodies: list[dict], n: int, concurrency: int) -> dict:
    rtt: list[float] = []
    server: list[float] = []
    deciders: dict[str, int] = {}
    errors = 0
    queue = list(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            i = queue.pop()
            t = time.perf_counter()
            r = await client.post("/decide", json=bodies[i % len(bodies)])
            rtt.append((time.perf_counter() - t) * 1e3)
            if r.status_code != 200:
                errors += 1
                continue
            out = r.json()
            server.append(out["latency_ms"])
            deciders[out["decided_by"]] = deciders.get(out["decided_by"], 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as client:
        for body in bodies[:50]:  # warm-up, not measured
            await client.post("/decide", json=body)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - t0

    return {
        "requests": n,
        "concurrency": concurrency,
        "errors": errors,
        "seconds": seconds,
        "requests_per_second": n / seconds,
        "round_trip": latency_summary(rtt),
        "server_decision": latency_summary(server),
        "decided_by": deciders,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--no-model", action="store_true", help="fallback only (no deployed model)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="learnops-bench-") as tmp:
        root = Path(tmp)
        params_path, bodies = _project(root, not args.no_model, args.seed)
        proc, url = start_server(params_path)
        try:
            health = wait_healthy(url, proc, timeout=60.0)
            load_before = os.getloadavg()[0]
            cpu0 = _cpu_seconds(proc.pid)
            result = asyncio.run(_load(url, bodies, args.requests, args.concurrency))
            cpu1 = _cpu_seconds(proc.pid)
            metrics_text = httpx.get(url + "/metrics", timeout=5.0).text
        finally:
            stop(proc)
    result.update(
        server_cpu_ms_per_request=(cpu1 - cpu0) * 1e3 / (args.requests + 50),
        load_average_before=load_before,
        model_version=health.get("modelVersion"),
        target_p99_ms=TARGET_P99_MS,
        meets_target=result["round_trip"]["p99_ms"] < TARGET_P99_MS,
        metrics_lines=sum(1 for line in metrics_text.splitlines() if not line.startswith("#")),
        machine=machine_info(),
    )
    write_json(args.out, result)
    rt, sv = result["round_trip"], result["server_decision"]
    print(
        f"{args.requests} /decide at concurrency {args.concurrency}: "
        f"{result['requests_per_second']:.0f} req/s; round trip p50 {rt['p50_ms']:.2f} "
        f"p95 {rt['p95_ms']:.2f} p99 {rt['p99_ms']:.2f} ms; server decision p99 "
        f"{sv['p99_ms']:.3f} ms; server CPU {result['server_cpu_ms_per_request']:.2f} ms/request "
        f"(load average {load_before:.1f}); decided_by {result['decided_by']}; "
        f"errors {result['errors']}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
