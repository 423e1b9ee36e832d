"""What the benchmarks share: starting and stopping a `learnops serve` process (loopback
only), a scratch project, where results go, the latency summary and the machine record."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

#: A `learnops serve` of a params.yaml (argv 1) on 127.0.0.1 and a port (argv 2).
SERVER_SCRIPT = """
import sys
from learnops.config import load_params
from learnops.serve import run
run(load_params(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(params_path: Path) -> tuple[subprocess.Popen, str]:
    """The server of ``params_path`` in a subprocess on a free loopback port, on the project's
    own store (``LEARNOPS_DB_URL`` is dropped): its process and base URL (not yet healthy)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LEARNOPS_DB_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(params_path), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    """``GET /health`` of the server at ``url`` once it answers 200; raise if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            r = httpx.get(url + "/health", timeout=1.0)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not become healthy")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the server (a clean shutdown), SIGKILL it if it does not exit in ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def scratch_project() -> Path:
    """A throw-away project (default params, empty SQLite store) for a benchmark's server, so
    that a benchmark never writes into the repository's event store; returns its params.yaml."""
    root = Path(tempfile.mkdtemp(prefix="learnops-bench-"))
    (root / "params.yaml").write_text("seed: 1\n")
    return root / "params.yaml"


def deploy_trained_mlp(params_path: Path, decisions, epochs: int, seed: int, out: Path) -> Path:
    """Train an MLP on ``decisions``, save it to ``out``, register and deploy it in the
    project of ``params_path``; returns the model directory."""
    from learnops.config import MlpConfig, load_params
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry
    from learnops.mlp import save, train

    params = load_params(params_path)
    result = train(decisions, MlpConfig(epochs=epochs), seed=seed)
    model_dir = Path(save(result, out))
    store = EventStore(params.db_url)
    try:
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        v = reg.start("mlp", data_count=len(decisions))
        reg.complete("mlp", v.version, model_dir, result.metrics)
        reg.deploy("mlp", v.version)
    finally:
        store.dispose()
    return model_dir


def results_path(name: str, quick: bool) -> Path:
    """``benchmarks/results/<name>.json``, or ``<name>.quick.json`` (git-ignored) for a quick run,
    so that a quick run never overwrites the committed full results."""
    return Path(__file__).resolve().parent / "results" / f"{name}{'.quick' if quick else ''}.json"


def latency_summary(ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of latencies in milliseconds, and their count ({} when empty)."""
    import numpy as np

    if not ms:
        return {}
    x = np.asarray(ms, dtype=float)
    return {
        "p50_ms": float(np.percentile(x, 50)),
        "p95_ms": float(np.percentile(x, 95)),
        "p99_ms": float(np.percentile(x, 99)),
        "max_ms": float(x.max()),
        "mean_ms": float(x.mean()),
        "n": int(x.size),
    }


def machine_info(**extra: Any) -> dict[str, Any]:
    """The machine a result was measured on (CPU count and model, Python version, OS platform,
    processor architecture), with ``extra`` entries (e.g. the load average) added."""
    from learnops.hostinfo import cpu_model

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        **extra,
    }
