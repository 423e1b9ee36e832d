"""The operations endpoints: ``GET /metrics`` (Prometheus text) and ``GET /health``."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from learnops.serve.dashboard import extra_metric_lines
from learnops.serve.deps import get_state
from learnops.serve.state import ServeState

__all__ = ["router"]

router = APIRouter()

#: The content type of the Prometheus text exposition format.
PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", response_class=PlainTextResponse)
def prometheus(state: ServeState = Depends(get_state)) -> PlainTextResponse:
    """Serving metrics in the Prometheus text format."""
    state.holder.current()
    body = state.metrics.render(
        {"mlp": state.holder.version}, state.retrain.running, state.threshold
    )
    if state.drift is not None:
        body += "\n".join(state.drift.render()) + "\n"
    body += "\n".join(extra_metric_lines(state)) + "\n"
    return PlainTextResponse(body, media_type=PROMETHEUS_MEDIA_TYPE)


@router.get("/health")
def health(state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Liveness, whether the store answers, what is served: model version, fallback, the
    running experiment (as this process sees it: looked up once a second) and epsilon,
    ``modelLoadedAt`` (Unix time this process loaded the served version), and
    the decision journal's backlog (rows answered but not yet in the store) and ``worker``,
    the answering process's id (several with ``learnops serve --workers N``)."""
    try:
        with state.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        db = "ok"
    except Exception as exc:  # reported, not raised: the process itself is alive
        db = f"error: {type(exc).__name__}"
    return {
        "status": "ok" if db == "ok" else "degraded",
        "store": db,
        "modelVersion": state.holder.version,
        "modelLoadedAt": state.holder.loaded_at,
        "fallback": state.teacher_name,
        "experiment": getattr(state.experiments.current(), "name", None),
        "epsilon": state.epsilon,
        "journalBacklog": state.decision_log.backlog(),
        "worker": os.getpid(),
    }
