"""The experiment API under ``/api/mlops/experiments`` (admin): list, start, show, stop.

Errors: 404 unknown experiment, 409 one is already running / the name is used / it is not
running, 422 (FastAPI's validation shape) for a bad body, bad shares or arms. Details never
quote the request. After a start or stop the server's cached running experiment
(``state.experiments``) is refreshed, so new decisions follow at once.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from learnops.ab.experiments import (
    NAME_PATTERN,
    ExperimentConflict,
    ExperimentError,
    ExperimentNotFound,
    InvalidExperiment,
    arm_counts,
    get_experiment,
    list_experiments,
    start_experiment,
    stop_experiment,
)
from learnops.serve.deps import get_state, require_admin
from learnops.serve.schemas import Text
from learnops.serve.state import ServeState

__all__ = ["ExperimentArms", "StartExperimentRequest", "router"]

log = logging.getLogger("learnops.serve")

router = APIRouter(prefix="/api/mlops", dependencies=[Depends(require_admin)])

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class ExperimentArms(BaseModel):
    """Arm → share of learners; at least two arms, shares > 0 summing to 1."""

    model_config = _STRICT

    ml: float | None = Field(None, gt=0, le=1)
    gpt4: float | None = Field(None, gt=0, le=1)
    hybrid: float | None = Field(None, gt=0, le=1)

    def shares(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class StartExperimentRequest(BaseModel):
    """A new experiment (camelCase like the rest of the admin API)."""

    model_config = ConfigDict(**_STRICT, populate_by_name=True)

    name: str = Field(min_length=1, max_length=64, pattern=f"^{NAME_PATTERN.pattern}$")
    arms: ExperimentArms
    min_sample_size: int | None = Field(None, ge=1, le=10_000_000, alias="minSampleSize")
    description: Text | None = Field(None, max_length=2000)
    control: Literal["ml", "gpt4", "hybrid"] | None = None


def _invalid(exc: InvalidExperiment) -> RequestValidationError:
    """An ``InvalidExperiment`` as a 422 in FastAPI's validation shape."""
    loc = ("body", exc.field) if exc.field else ("body",)
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": exc.detail}])


def _http(exc: ExperimentError) -> Exception:
    if isinstance(exc, InvalidExperiment):
        return _invalid(exc)
    if isinstance(exc, ExperimentNotFound):
        return HTTPException(404, exc.detail)
    if isinstance(exc, ExperimentConflict):
        return HTTPException(409, exc.detail)
    return HTTPException(400, exc.detail)


def _refresh(state: ServeState) -> None:
    """Make the server look up the running experiment again (after a start or a stop)."""
    cache = getattr(state, "experiments", None)
    refresh = getattr(cache, "refresh", None)
    if callable(refresh):
        try:
            refresh()
        except Exception:  # the change is stored; the cache catches up on its own
            log.warning("could not refresh the running experiment", exc_info=True)


def _with_counts(exps: list[Any], state: ServeState) -> list[dict[str, Any]]:
    counts = arm_counts(state.store, [e.name for e in exps])
    out = []
    for e in exps:
        d = e.to_dict()
        d["logged"] = counts.get(e.name, {})
        out.append(d)
    return out


@router.get("/experiments")
def experiments(state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Every experiment (most recent first) with what each arm has logged so far: decisions,
    learners and decisions with an outcome."""
    return {"experiments": _with_counts(list_experiments(state.store), state)}


@router.post("/experiments", status_code=201)
def start(body: StartExperimentRequest, state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Start an experiment: from now on the server assigns learners to its arms. 409 while
    another runs or when the name was used before."""
    ab = state.params.ab
    try:
        exp = start_experiment(
            state.store,
            body.name,
            body.arms.shares(),
            min_sample_size=body.min_sample_size or ab.min_sample_size,
            description=body.description or "",
            control=body.control or ab.control,
            created_by="api",
            metrics=list(ab.metrics),
        )
    except ExperimentError as exc:
        raise _http(exc) from None
    _refresh(state)
    log.info("experiment %s started", exp.name)
    return exp.to_dict()


@router.get("/experiments/{name}")
def experiment(name: str, state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """One experiment with its logged counts and, once stopped, its results."""
    try:
        exp = get_experiment(state.store, name)
    except ExperimentError as exc:
        raise _http(exc) from None
    d = _with_counts([exp], state)[0]
    d["results"] = exp.results
    return d


@router.post("/experiments/{name}/stop")
def stop(name: str, state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Stop the running experiment: store what the server answered so far, analyse it, record
    the result and write its reports. 404 unknown, 409 not running."""
    try:
        exp = get_experiment(state.store, name)
    except ExperimentError as exc:
        raise _http(exc) from None
    if not exp.running:
        raise HTTPException(409, f"the experiment is not running (it is {exp.status})")
    if not state.decision_log.flush():
        raise HTTPException(503, "the decision log is not stored yet; try again")
    try:
        result = stop_experiment(state.store, state.params, name)
    except ExperimentError as exc:
        raise _http(exc) from None
    finally:
        _refresh(state)
    if result.report_error:
        log.error("experiment %s stopped; reports failed: %s", name, result.report_error)
    log.info("experiment %s stopped: %s", name, result.results.get("reason"))
    return result.to_dict()
