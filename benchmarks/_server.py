"""Starting and stopping a benchmark's `learnops serve` process (loopback only)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import httpx


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
