"""Server-side latency of ``POST /decide`` with and without ``?explain=true``.

    python benchmarks/explain.py [--requests 1000 --concurrency 1]

Same set-up as benchmarks/serve.py (a temporary project with a deployed MLP of the default
architecture, a real uvicorn on 127.0.0.1): the same request bodies are sent without and then
with ``explain=true``, alternating blocks so both see the same machine load. The figure is the
server's own decision latency (``latency_ms`` of each answer: model, exploration and, with
explain, the integrated gradients). Writes benchmarks/results/explain.json. Targets: p99 < 5 ms
without explain, < 20 ms with it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
from _server import latency_summary, machine_info, start_server, stop, wait_healthy
from serve import _project

from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "explain.json"
TARGETS_P99_MS = {"plain": 5.0, "explain": 20.0}


def _run(url: str, bodies: list[dict], n: int, block: int = 50) -> dict:
    server: dict[str, list[float]] = {"plain": [], "explain": []}
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for body in bodies[:50]:  # warm-up, not measured
            client.post("/decide", json=body)
            client.post("/decide?explain=true", json=body)
        i = 0
        while i < n:
            for kind, path in (("plain", "/decide"), ("explain", "/decide?explain=true")):
                for j in range(i, min(i + block, n)):
                    r = client.post(path, json=bodies[j % len(bodies)])
                    r.raise_for_status()
                    out = r.json()
                    server[kind].append(out["latency_ms"])
                    if kind == "explain":
                        assert out["explanation"], out  # nosec B101 (a benchmark's sanity check)
            i += block
    return {kind: latency_summary(v) for kind, v in server.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000, help="per variant")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="learnops-bench-") as tmp:
        params_path, bodies = _project(Path(tmp), True, args.seed)
        proc, url = start_server(params_path)
        try:
            wait_healthy(url, proc, timeout=60.0)
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            res = _run(url, bodies, args.requests)
            seconds = time.perf_counter() - t0
        finally:
            stop(proc)
    result = {
        "requests_per_variant": args.requests,
        "concurrency": 1,
        "seconds": seconds,
        "server_decision": res,
        "targets_p99_ms": TARGETS_P99_MS,
        "meets_targets": {k: res[k]["p99_ms"] < t for k, t in TARGETS_P99_MS.items()},
        "load_average_before": load_before,
        "machine": machine_info(),
    }
    write_json(args.out, result)
    p, e = res["plain"], res["explain"]
    print(
        f"server decision latency, {args.requests} requests each: without explain p50 "
        f"{p['p50_ms']:.3f} p99 {p['p99_ms']:.3f} ms; with explain p50 {e['p50_ms']:.3f} "
        f"p99 {e['p99_ms']:.3f} ms (load average {load_before:.1f})"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
