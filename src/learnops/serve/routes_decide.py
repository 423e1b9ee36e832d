"""The client endpoints: ``POST /decide`` (model or fallback teacher) and ``POST /outcomes``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.exc import OperationalError

from learnops.contracts import ACTIONS
from learnops.data.store import OUTCOME_FIELDS, OutcomeConflict
from learnops.errors import LearnopsError
from learnops.serve.decision_log import decision_row
from learnops.serve.deps import get_state, require_client
from learnops.serve.schemas import DecideRequest, DecideResponse, OutcomeRequest
from learnops.serve.state import ServeState

__all__ = ["router"]

log = logging.getLogger("learnops.serve")

router = APIRouter(dependencies=[Depends(require_client)])


def _ml(pred: Any, version: str | None) -> dict[str, Any]:
    """The model's decision in the response format (plus its propensity, for the log)."""
    return {
        "action": pred.action,
        "confidence": pred.confidence,
        "decided_by": "ml",
        "model_version": version,
        "probabilities": dict(pred.probabilities),
        "difficulty_delta": pred.difficulty_delta,
        "propensity": 1.0,  # the served policy is the deterministic argmax
    }


def _fallback(state: ServeState, features: Mapping[str, float]) -> dict[str, Any]:
    """The fallback teacher's decision; raises when it fails or answers an unknown action."""
    action, probs = state.teacher.decide(features)
    if action not in ACTIONS:
        raise LearnopsError(f"fallback returned unknown action {action!r}")
    probs = {a: float(probs[a]) for a in ACTIONS if a in probs}
    return {
        "action": action,
        "confidence": float(probs.get(action, max(probs.values(), default=1.0))),
        "decided_by": "llm",
        "model_version": state.teacher_name,
        "probabilities": probs,
        "difficulty_delta": None,
        "propensity": None,
    }


def decide_once(state: ServeState, features: Mapping[str, float]) -> tuple[dict[str, Any], bool]:
    """(decision, low confidence): the model when it is loaded and sure enough, else the
    fallback; an unsure model answers when the fallback fails (503 when there is no model)."""
    model, version = state.holder.current()
    pred = None
    if model is not None:
        from learnops.mlp import predict

        pred = predict(model, features)
    low = pred is not None and pred.confidence < state.threshold
    if pred is not None and not low:
        return _ml(pred, version), low
    try:
        return _fallback(state, features), low
    except Exception as exc:
        state.metrics.observe_error("fallback")
        log.error("fallback teacher failed: %s", exc)
        if pred is None:
            raise HTTPException(503, "no model and the fallback teacher failed") from None
        return _ml(pred, version), low  # degrade to the unsure model rather than fail


@router.post("/decide", response_model=DecideResponse)
async def decide(body: DecideRequest, state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Decide the next teaching action and log the decision."""
    t0 = time.perf_counter()
    features = body.features()
    out, low = decide_once(state, features)
    out["latency_ms"] = (time.perf_counter() - t0) * 1000.0
    out["decision_id"] = uuid.uuid4().hex
    row = decision_row(
        body.learner_id, features, {**out, "ab_test": body.ab_test, "ab_group": body.ab_group}
    )
    try:  # durable (journal fsync'd) before the answer
        await state.decision_log.submit_async(row)
    except Exception as exc:
        state.metrics.observe_error("decision_log")
        log.error("decision %s could not be logged: %s", out["decision_id"], type(exc).__name__)
        raise HTTPException(503, "the decision could not be logged; retry") from None
    # the metric is the server-side time of the whole decision, journaling included
    total_ms = (time.perf_counter() - t0) * 1000.0
    state.metrics.observe_decision(out["decided_by"], out["action"], total_ms, low)
    out.pop("propensity")
    return out


@router.post("/outcomes")
def outcomes(body: OutcomeRequest, state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Attach the observed outcome to a logged decision."""
    outcome = {k: v for k, v in body.outcome().items() if v is not None}
    if not outcome:  # null never erases, so an outcome without values records nothing
        raise HTTPException(422, f"an outcome needs at least one of {', '.join(OUTCOME_FIELDS)}")
    state.decision_log.flush()
    try:
        new = state.store.record_outcome(body.decision_id, outcome)
    except OutcomeConflict as exc:
        raise HTTPException(
            409, f"outcome already recorded with other values: {', '.join(exc.fields)}"
        ) from None
    except LearnopsError as exc:
        if "unknown decision id" in str(exc):
            raise HTTPException(404, "unknown decision id") from None
        raise HTTPException(422, str(exc)) from None
    except OperationalError:
        state.metrics.observe_error("store")
        raise HTTPException(503, "the event store is unavailable; retry") from None
    if new:
        state.metrics.observe_outcome()
    return {"decision_id": body.decision_id, "status": "recorded"}  # a repeat is idempotent
