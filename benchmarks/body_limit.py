"""Oversized request bodies against a live server: time to the 413 and the server's RSS growth
(issue 22, item 1).

    python benchmarks/body_limit.py --params /path/to/project/params.yaml \
        [--port 8811 --requests 20 --mb 5 --shape keys --out benchmarks/results/body_limit.json]

Starts ``learnops serve`` for the project on 127.0.0.1, sends one normal ``/decide``, then
``--requests`` bodies of ``--mb`` MB with a Content-Length and as many streamed (chunked, no
Content-Length), one after the other, each on a new connection. Records per request the status,
the response size and the client's round trip, and the server's RSS (``ps``) before and after.
The bodies are valid JSON objects (a padding field), so the old code parsed and validated them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from _server import machine_info, scratch_project, stop, wait_healthy

from learnops.contracts import FEATURES
from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "body_limit.json"


def _rss_mb(pid: int) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024.0


def _decide_body(pad_bytes: int = 0, shape: str = "pad") -> bytes:
    """A /decide body; ``pad_bytes`` more as one long string (``pad``) or as many unknown keys
    (``keys``: one validation error each, the shape that made the old 422s 19x the body)."""
    body: dict[str, object] = {f: 0.5 for f in FEATURES}
    body.update(hour_of_day=10.0, learner_id="bench-learner")
    if pad_bytes and shape == "pad":
        body["pad"] = "x" * pad_bytes
    elif pad_bytes:
        size, i = 0, 0
        while size < pad_bytes:
            body[f"k{i}"] = 0
            size += len(f'"k{i}": 0, ')
            i += 1
    return json.dumps(body).encode()


def _send(base: str, content: bytes, chunked: bool) -> tuple[int | str, int, float]:
    """(status or error name, response bytes, round trip ms) on a fresh connection."""
    step = 65536
    payload = (content[i : i + step] for i in range(0, len(content), step)) if chunked else content
    t0 = time.perf_counter()
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            r = c.post("/decide", content=payload, headers={"Content-Type": "application/json"})
            return r.status_code, len(r.content), (time.perf_counter() - t0) * 1000
    except httpx.HTTPError as exc:
        return type(exc).__name__, 0, (time.perf_counter() - t0) * 1000


def _summary(rows: list[tuple[int | str, int, float]]) -> dict[str, object]:
    ms = np.array([r[2] for r in rows])
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[str(r[0])] = statuses.get(str(r[0]), 0) + 1
    return {
        "statuses": statuses,
        "response_bytes_max": max(r[1] for r in rows),
        "ms_median": round(float(np.median(ms)), 2),
        "ms_max": round(float(ms.max()), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--params", type=Path, default=None, help="project to serve (default: a scratch one)"
    )
    ap.add_argument("--port", type=int, default=8811)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--mb", type=float, default=5.0)
    ap.add_argument("--shape", choices=["keys", "pad"], default="keys")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.params = args.params or scratch_project()
    learnops = Path(sys.executable).with_name("learnops")
    server = subprocess.Popen(
        [str(learnops), "serve", "--params", str(args.params), "--port", str(args.port)],
        cwd=args.params.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    big = _decide_body(int(args.mb * 1_000_000), args.shape)
    try:
        wait_healthy(base, server)
        normal = _send(base, _decide_body(), chunked=False)
        rss_before = _rss_mb(server.pid)
        sized = [_send(base, big, chunked=False) for _ in range(args.requests)]
        rss_mid = _rss_mb(server.pid)
        chunked = [_send(base, big, chunked=True) for _ in range(args.requests)]
        rss_after = _rss_mb(server.pid)
        after = _send(base, _decide_body(), chunked=False)
    finally:
        stop(server)
    result = {
        "body_bytes": len(big),
        "body_shape": args.shape,
        "requests": args.requests,
        "normal_decide_before": {"status": normal[0], "ms": round(normal[2], 2)},
        "with_content_length": _summary(sized),
        "chunked": _summary(chunked),
        "normal_decide_after": {"status": after[0], "ms": round(after[2], 2)},
        "rss_mb": {
            "before": round(rss_before, 1),
            "after_content_length": round(rss_mid, 1),
            "after_chunked": round(rss_after, 1),
            "growth": round(rss_after - rss_before, 1),
        },
        "machine": machine_info(),
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
