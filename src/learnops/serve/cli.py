"""The ``learnops serve`` command (mounted by learnops.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["serve_command"]


def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="TCP port (1-65535)."),
    params: Path = typer.Option(Path("params.yaml"), "--params", help="params.yaml to read."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    access_log: bool = typer.Option(False, help="Log every request."),
    workers: int = typer.Option(
        1, help="uvicorn worker processes sharing the port, the store and the registry."
    ),
) -> None:
    """Serve the HTTP API: /decide, /outcomes, /api/mlops/*, /metrics, /health."""
    from learnops.config import ConfigError, load_params
    from learnops.errors import LearnopsError
    from learnops.serve.app import run
    from learnops.serve.auth import Tokens

    if not 1 <= port <= 65535:
        raise LearnopsError(f"--port must be between 1 and 65535, got {port}")
    if workers < 1:
        raise LearnopsError(f"--workers must be at least 1, got {workers}")
    try:
        cfg = load_params(params)
    except ConfigError as exc:
        raise LearnopsError(str(exc)) from None
    Tokens.from_env()  # a clear-text token in the environment: one error line, before binding
    from sqlalchemy.exc import OperationalError

    from learnops.data.store import EventStore

    try:  # the tables exist before several workers open the store
        store = EventStore(cfg.db_url)
    except OperationalError as exc:  # an unreachable database: one line, no URL (password)
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise LearnopsError(f"cannot open the event store: {reason}") from None
    try:
        store.claim_salt()  # another salt than the store's: one error line, before binding
    finally:
        store.dispose()
    run(
        cfg,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        workers=workers,
        params_path=str(params),
    )
