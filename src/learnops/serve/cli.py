"""The ``learnops serve`` command (mounted by learnops.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["serve_command"]


def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    params: Path = typer.Option(Path("params.yaml"), "--params", help="params.yaml to read."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    access_log: bool = typer.Option(False, help="Log every request."),
) -> None:
    """Serve the HTTP API: /decide, /outcomes, /api/mlops/*, /metrics, /health."""
    from learnops.config import ConfigError, load_params
    from learnops.errors import LearnopsError
    from learnops.serve.app import run

    try:
        cfg = load_params(params)
    except ConfigError as exc:
        raise LearnopsError(str(exc)) from None
    run(cfg, host=host, port=port, log_level=log_level, access_log=access_log)
