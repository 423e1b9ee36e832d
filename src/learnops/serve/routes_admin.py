"""The admin MLOps API under ``/api/mlops``: retrain, status, versions, production, deploy."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from learnops.data.store import utcnow
from learnops.errors import LearnopsError, NoTrainingData, TrainingInProgress
from learnops.io import jsonable
from learnops.lifecycle.registry import MODEL_TYPES
from learnops.serve.deps import get_state, require_admin
from learnops.serve.schemas import RetrainRequest
from learnops.serve.state import ServeState

__all__ = ["router"]

log = logging.getLogger("learnops.serve")

router = APIRouter(prefix="/api/mlops", dependencies=[Depends(require_admin)])


def _model_type(model: str) -> str:
    """``model`` when it is a known model type; otherwise a 422 in FastAPI's validation format
    (the documented error schema) that names the parameter, not the value sent."""
    if model not in MODEL_TYPES:
        raise RequestValidationError(
            [
                {
                    "type": "enum",
                    "loc": ("query", "model"),
                    "msg": f"unknown model type: use {' or '.join(MODEL_TYPES)}",
                }
            ]
        )
    return model


def run_retrain(state: ServeState, req: RetrainRequest) -> None:
    """Run one retrain (in the background thread) and record how it ended in ``last_run``."""
    run: dict[str, Any] = state.retrain.last_run or {}
    try:
        result = state.run_retrain(
            state.params, since=req.since, limit=req.limit, auto_deploy=req.auto_deploy,
            progress=False,
        )  # fmt: skip
        run.update(status="completed", result=jsonable(result))
    except TrainingInProgress as exc:
        run.update(status="refused", error=str(exc))
    except NoTrainingData as exc:
        run.update(status="failed", error=str(exc))
    except Exception as exc:
        log.exception("retrain failed")
        run.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        run["finishedAt"] = utcnow().isoformat()
        with state.retrain.lock:
            state.retrain.running = False
        state.models.refresh()


def start_retrain(state: ServeState, req: RetrainRequest) -> dict[str, Any]:
    """Record a new run and start its thread; 409 while a retrain runs anywhere."""
    job = state.retrain
    with job.lock:
        if state.is_training():
            raise HTTPException(409, str(TrainingInProgress()))
        job.running = True
        job.last_run = {
            "status": "running",
            "startedAt": utcnow().isoformat(),
            "finishedAt": None,
            "options": {
                "limit": req.limit,
                "autoDeploy": req.auto_deploy,
                "since": req.since.isoformat() if req.since else None,
            },
        }
        job.thread = threading.Thread(
            target=run_retrain, args=(state, req), name="retrain", daemon=True
        )
        job.thread.start()
    return job.last_run


@router.post("/retrain", status_code=202)
def retrain(
    body: RetrainRequest | None = Body(None), state: ServeState = Depends(get_state)
) -> dict[str, Any]:
    """Start a retrain in the background (409 while one runs)."""
    return {"status": "started", "run": start_retrain(state, body or RetrainRequest())}


@router.get("/status")
def status(state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Whether a retrain runs, the production and served versions, the last API run."""
    prod = {t: state.registry.production(t) for t in MODEL_TYPES}
    return {
        "isTraining": state.is_training(),
        "currentVersion": prod["mlp"].version if prod["mlp"] else None,
        "servingVersion": state.holder.version,
        "production": {t: v.version if v else None for t, v in prod.items()},
        "lastRun": jsonable(state.retrain.last_run),
    }


@router.get("/versions")
def versions(
    model: str | None = Query(None), state: ServeState = Depends(get_state)
) -> dict[str, Any]:
    """Every registered version (of one model type), oldest first."""
    items = state.registry.list(_model_type(model) if model else None)
    return {"versions": [v.as_dict() for v in items]}


@router.get("/versions/{version}")
def version_detail(
    version: str, model: str = Query("mlp"), state: ServeState = Depends(get_state)
) -> dict[str, Any]:
    """One version (404 when unknown)."""
    try:
        return state.registry.get(_model_type(model), version).as_dict()
    except LearnopsError:
        # the path value is not echoed: versions look like v1, v2, …
        raise HTTPException(404, f"unknown {model} version") from None


@router.get("/production")
def production(state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """The production version of each model type (null when none)."""
    out = {}
    for t in MODEL_TYPES:
        v = state.registry.production(t)
        out[t] = v.as_dict() if v else None
    return out


@router.post("/deploy/{version}")
def deploy(
    version: str, model: str = Query("mlp"), state: ServeState = Depends(get_state)
) -> dict[str, Any]:
    """Make a version production (and serve it at once)."""
    model_type = _model_type(model)
    try:
        state.registry.get(model_type, version)
    except LearnopsError:
        raise HTTPException(404, f"unknown {model_type} version") from None  # value not echoed
    try:
        info = state.registry.deploy(model_type, version)
    except LearnopsError as exc:
        raise HTTPException(409, str(exc)) from None
    state.models.refresh()  # served at once, whichever type (one registry read for all)
    return {"deployed": info.as_dict(), "servingVersion": state.holder.version}
