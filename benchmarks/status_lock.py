"""Status polling vs. the retrain lock: do `GET /api/mlops/status` pollers make a cron retrain
refuse with "Training already in progress" while nothing trains? (issue 22, item 9)

    python benchmarks/status_lock.py --params /path/to/project/params.yaml \
        [--attempts 3000 --pollers 4 --port 0 --out benchmarks/results/status_lock.json]

Starts ``learnops serve`` for the project on 127.0.0.1 (an admin token set in its environment),
runs ``--pollers`` threads that poll the status endpoint over HTTP, and meanwhile a separate
process takes and releases the registry's retrain lock ``--attempts`` times, as a cron retrain
would. Every refused attempt is spurious: nothing else trains. Writes the counts to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from _server import free_port, machine_info, scratch_project, wait_healthy
from _server import stop as stop_server

from learnops.config import load_params
from learnops.io import write_json
from learnops.serve.auth import hash_token

RESULTS = Path(__file__).resolve().parent / "results" / "status_lock.json"
TOKEN = "bench-admin-token-status-lock"

_LOCKER = """
import sys, json
from learnops.data.store import EventStore
from learnops.errors import TrainingInProgress
from learnops.lifecycle.registry import Registry
reg = Registry(EventStore("sqlite://"), sys.argv[1])
refused = 0
for _ in range(int(sys.argv[2])):
    try:
        with reg.training_lock():
            pass
    except TrainingInProgress:
        refused += 1
print(json.dumps({"refused": refused}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--params", type=Path, default=None, help="project to serve (default: a scratch one)"
    )
    ap.add_argument("--attempts", type=int, default=3000)
    ap.add_argument("--pollers", type=int, default=4)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.params = args.params or scratch_project()
    params = load_params(args.params)
    root = params.path(params.paths.models_dir) / "registry"
    port = args.port or free_port()
    env = {**os.environ, "LEARNOPS_ADMIN_TOKENS": hash_token(TOKEN)}
    learnops = Path(sys.executable).with_name("learnops")
    server = subprocess.Popen(
        [str(learnops), "serve", "--params", str(args.params), "--port", str(port)],
        cwd=args.params.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    polls = [0] * args.pollers
    training_seen = [0] * args.pollers
    stop = threading.Event()
    try:
        wait_healthy(base, server)

        def poll(i: int) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=10) as c:
                while not stop.is_set():
                    r = c.get("/api/mlops/status")
                    r.raise_for_status()
                    polls[i] += 1
                    training_seen[i] += bool(r.json()["isTraining"])

        threads = [threading.Thread(target=poll, args=(i,)) for i in range(args.pollers)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _LOCKER, str(root), str(args.attempts)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        seconds = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        stop_server(server)
    refused = int(__import__("json").loads(out.stdout)["refused"])
    result = {
        "attempts": args.attempts,
        "pollers": args.pollers,
        "spurious_refusals": refused,
        "status_polls": sum(polls),
        "polls_reporting_training": sum(training_seen),
        "seconds": round(seconds, 3),
        "machine": machine_info(),
    }
    write_json(args.out, result)
    print(
        f"{args.attempts} lock attempts with {args.pollers} status pollers "
        f"({sum(polls)} polls, {sum(training_seen)} said training): "
        f"{refused} spurious refusals"
    )


if __name__ == "__main__":
    main()
