"""Durability benchmark of the decision log (issue 22 item 2): kill -9 mid-burst, a 65-second
write lock on the SQLite store, and the server-side p99 of /decide at concurrency 2.

    python benchmarks/durability.py [--project DIR] [--baseline-src /tmp/old/src] [--quick]

Every server runs on 127.0.0.1 in a subprocess over the project ``DIR`` (a copy of it: default a
temporary project with a deployed MLP, as in benchmarks/serve.py); all request loops are bounded.

- kill -9: ``--kill-runs`` bursts of ``--burst`` /decide requests (concurrency 2); the server is
  killed with SIGKILL after a random number of answers, while requests are in flight. The server
  is restarted (it replays its journal) and the answered decision ids are looked up in the store.
- lock: another connection holds ``BEGIN EXCLUSIVE`` on the SQLite file for ``--lock-seconds``
  while a paced burst of /decide runs; after the lock is released every answered decision must
  reach the store and take an outcome (200, not 404).
- p99: ``--requests`` /decide at concurrency 2, timed inside the server (an ASGI wrapper around
  the app, from the first byte received to the last byte sent), for this tree and, with
  ``--baseline-src``, for another source tree (e.g. the code before the journal).

Writes benchmarks/results/durability.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import free_port, latency_summary, machine_info  # noqa: E402
from serve import _project  # noqa: E402

from learnops.config import load_params  # noqa: E402
from learnops.io import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "durability.json"

_SERVER = """
import json, sys, time
import uvicorn
from learnops.config import load_params
from learnops.serve.app import create_app

LAT = []
app = create_app(load_params(sys.argv[1]))

async def timed(scope, receive, send):
    if scope["type"] != "http":
        return await app(scope, receive, send)
    if scope["path"] == "/__bench/latency":
        body = json.dumps(LAT).encode()
        LAT.clear()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        return await send({"type": "http.response.body", "body": body})
    if scope["path"] != "/decide":
        return await app(scope, receive, send)
    t0 = time.perf_counter()
    async def send_timed(msg):
        await send(msg)
        if msg["type"] == "http.response.body" and not msg.get("more_body"):
            LAT.append((time.perf_counter() - t0) * 1000.0)
    await app(scope, receive, send_timed)

uvicorn.run(timed, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


class Server:
    """A server subprocess over ``params_path`` (optionally another source tree)."""

    def __init__(
        self, params_path: Path, port: int, src: str | None = None, env: dict | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if k != "LEARNOPS_DB_URL"} | (env or {})
        if src:
            env["PYTHONPATH"] = src
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(params_path), str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started = time.monotonic()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    self.ready_s = time.monotonic() - self.started
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError("server did not become healthy")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def _db_file(params_path: Path) -> Path:
    url = load_params(params_path).db_url
    assert url.startswith("sqlite:///"), "the benchmark needs a SQLite event store"
    return Path(url[len("sqlite:///") :])


def _present(db: Path, ids: list[str]) -> int:
    """How many of ``ids`` the store holds (a fresh read-only connection)."""
    if not ids:
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        found = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = ",".join("?" * len(chunk))
            found += con.execute(
                f"SELECT count(*) FROM ml_training_data WHERE decision_id IN ({q})", chunk
            ).fetchone()[0]
        return found
    finally:
        con.close()


def _wait_present(db: Path, ids: list[str], timeout: float) -> tuple[int, float]:
    t0 = time.monotonic()
    while True:
        n = _present(db, ids)
        if n == len(ids) or time.monotonic() - t0 > timeout:
            return n, time.monotonic() - t0
        time.sleep(0.25)


async def _burst(
    url: str,
    bodies: list[dict],
    n: int,
    concurrency: int = 2,
    on_answer=None,
    pace: float = 0.0,
) -> dict:
    """``n`` /decide requests; the answered ids, the failures and the round trips."""
    answered: list[str] = []
    failed = 0
    rtt: list[float] = []
    todo = list(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while todo:
            i = todo.pop(0)
            t = time.perf_counter()
            try:
                r = await client.post("/decide", json=bodies[i % len(bodies)])
            except httpx.HTTPError:
                failed += 1
                continue
            rtt.append((time.perf_counter() - t) * 1e3)
            if r.status_code == 200:
                answered.append(r.json()["decision_id"])
                if on_answer is not None:
                    on_answer(len(answered))
            else:
                failed += 1
            if pace:
                await asyncio.sleep(pace)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return {"answered": answered, "failed": failed, "rtt": rtt}


def kill_runs(
    params_path: Path, bodies: list[dict], runs: int, burst: int, seed: int, src: str | None = None
) -> dict:
    rng = random.Random(seed)
    db = _db_file(params_path)
    out = []
    for run in range(runs):
        srv = Server(params_path, free_port(), src=src)
        kill_at = rng.randint(burst // 3, burst - 10)

        def on_answer(k: int, srv: Server = srv, kill_at: int = kill_at) -> None:
            if k == kill_at:
                srv.proc.send_signal(signal.SIGKILL)

        res = asyncio.run(_burst(srv.url, bodies, burst, on_answer=on_answer))
        srv.kill()
        ids = res["answered"]
        before = _present(db, ids)  # stored before the crash by the background writer
        srv2 = Server(params_path, free_port(), src=src)  # the restart replays the journal
        found, waited = _wait_present(db, ids, timeout=60)
        srv2.stop()
        out.append(
            {
                "run": run + 1,
                "requests": burst,
                "killed_after_answers": kill_at,
                "answered_200": len(ids),
                "failed_or_refused": res["failed"],
                "in_store_before_restart": before,
                "in_store_after_restart": found,
                "lost": len(ids) - found,
                "restart_ready_s": round(srv2.ready_s, 3),
                "replay_wait_s": round(waited, 3),
            }
        )
        print(f"kill run {run + 1}: answered {len(ids)}, stored {found}, lost {len(ids) - found}")
    return {
        "runs": out,
        "answered_200": sum(r["answered_200"] for r in out),
        "lost": sum(r["lost"] for r in out),
    }


def lock_run(params_path: Path, bodies: list[dict], seconds: float, requests: int) -> dict:
    db = _db_file(params_path)
    srv = Server(params_path, free_port())
    locked = threading.Event()
    release = threading.Event()
    held: dict[str, float] = {}

    def hold() -> None:
        con = sqlite3.connect(str(db), timeout=60, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        t0 = time.monotonic()
        locked.set()
        release.wait(timeout=seconds)
        con.execute("ROLLBACK")
        con.close()
        held["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    locked.wait(timeout=60)

    def stop_at_lock_end() -> None:
        time.sleep(seconds)
        release.set()

    pace = max(0.0, 2 * seconds / requests * 0.9)  # two workers spread over the lock
    threading.Thread(target=stop_at_lock_end, daemon=True).start()
    t_burst = time.monotonic()
    res = asyncio.run(_burst(srv.url, bodies, requests, pace=pace))
    burst_s = time.monotonic() - t_burst
    t.join(timeout=seconds + 30)
    ids = res["answered"]
    found, waited = _wait_present(db, ids, timeout=120)
    outcomes = {}
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        for did in ids[:20]:
            r = c.post("/outcomes", json={"decision_id": did, "next_accuracy": 0.5})
            outcomes[str(r.status_code)] = outcomes.get(str(r.status_code), 0) + 1
        metrics = c.get("/metrics").text
    srv.stop()
    errors = [ln for ln in metrics.splitlines() if ln.startswith("learnops_errors_total{")]
    result = {
        "lock_held_s": round(held.get("seconds", float("nan")), 2),
        "burst_s": round(burst_s, 2),
        "requests": requests,
        "answered_200": len(ids),
        "failed": res["failed"],
        "round_trip_during_lock": latency_summary(res["rtt"]),
        "in_store_after_release": found,
        "lost": len(ids) - found,
        "seconds_to_store_after_release": round(waited, 2),
        "outcomes_for_20_of_them": outcomes,
        "errors_metric": errors,
    }
    print(f"lock: answered {len(ids)}, stored {found}, outcomes {outcomes}")
    return result


def latency_run(
    params_path: Path, bodies: list[dict], n: int, src: str | None, env: dict | None = None
) -> dict:
    srv = Server(params_path, free_port(), src=src, env=env)
    try:
        asyncio.run(_burst(srv.url, bodies, 100))  # warm-up
        httpx.get(srv.url + "/__bench/latency", timeout=10)
        res = asyncio.run(_burst(srv.url, bodies, n))
        server = httpx.get(srv.url + "/__bench/latency", timeout=10).json()
    finally:
        srv.stop()
    return {
        "source": src or "this tree",
        "env": env or {},
        "requests": n,
        "concurrency": 2,
        "errors": res["failed"],
        "server_side": latency_summary(server),
        "round_trip": latency_summary(res["rtt"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, help="a project dir with params.yaml (copied)")
    ap.add_argument("--baseline-src", help="another source tree for the p99 comparison")
    ap.add_argument("--kill-runs", type=int, default=3)
    ap.add_argument("--burst", type=int, default=250)
    ap.add_argument("--lock-seconds", type=float, default=65.0)
    ap.add_argument("--lock-requests", type=int, default=400)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="1 kill run, a 5 s lock, 300 requests")
    ap.add_argument("--src", help="run the kill phase on another source tree (a baseline)")
    ap.add_argument("--phases", default="kill,lock,p99", help="comma-separated subset to run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    if args.quick:
        args.kill_runs, args.lock_seconds, args.lock_requests, args.requests = 1, 5.0, 40, 300

    with tempfile.TemporaryDirectory(prefix="learnops-durability-") as tmp:
        root = Path(tmp) / "project"
        _, bodies = _project(Path(tmp), False, args.seed)  # request bodies
        if args.project is not None:
            shutil.copytree(args.project, root)
        else:
            root.mkdir()
            _project(root, True, args.seed)
        params_path = root / "params.yaml"
        result: dict = {"project": str(args.project or "temporary, deployed MLP")}
        if "kill" in phases:
            result["kill_9"] = kill_runs(
                params_path, bodies, args.kill_runs, args.burst, args.seed, args.src
            )
            result["kill_9"]["source"] = args.src or "this tree"
        if "lock" in phases:
            result["write_lock"] = lock_run(
                params_path, bodies, args.lock_seconds, args.lock_requests
            )
        if "p99" in phases:
            p99 = {"with_journal": latency_run(params_path, bodies, args.requests, None)}
            result["p99_concurrency_2"] = p99
            if args.baseline_src:
                p99["baseline"] = latency_run(params_path, bodies, args.requests, args.baseline_src)
                p99["with_journal_again"] = latency_run(params_path, bodies, args.requests, None)
            p99["journal_without_fsync"] = latency_run(
                params_path, bodies, args.requests, None, {"LEARNOPS_DECISION_JOURNAL_FSYNC": "0"}
            )
    result["lost_total"] = sum(result[k]["lost"] for k in ("kill_9", "write_lock") if k in result)
    result["machine"] = machine_info(load_average=os.getloadavg()[0])
    write_json(args.out, result)
    print(f"wrote {args.out}: lost {result['lost_total']}")


if __name__ == "__main__":
    main()
