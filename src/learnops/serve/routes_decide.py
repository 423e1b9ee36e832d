"""The client endpoints: ``POST /decide`` (model or fallback teacher) and ``POST /outcomes``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.exc import OperationalError

from learnops.contracts import ACTIONS, DEFAULT_ARM, LOGGING_PROB_COLUMNS
from learnops.data.store import OUTCOME_FIELDS, OutcomeConflict
from learnops.errors import LearnopsError
from learnops.hashing import learner_hash
from learnops.serve.decision_log import decision_row
from learnops.serve.deps import get_state, require_client
from learnops.serve.schemas import DecideRequest, DecideResponse, OutcomeRequest
from learnops.serve.state import ServeState

__all__ = ["router"]

log = logging.getLogger("learnops.serve")

router = APIRouter(dependencies=[Depends(require_client)])


def _ml(pred: Any, version: str | None) -> dict[str, Any]:
    """The model's decision in the response format; ``_base`` None: a deterministic choice."""
    return {
        "action": pred.action,
        "confidence": pred.confidence,
        "decided_by": "ml",
        "model_version": version,
        "probabilities": dict(pred.probabilities),
        "difficulty_delta": pred.difficulty_delta,
        "_base": None,
        "_pred": pred,
    }


def _fallback(state: ServeState, features: Mapping[str, float]) -> dict[str, Any]:
    """The fallback teacher's decision; raises when it fails or answers an unknown action."""
    action, probs = state.teacher.decide(features)
    if action not in ACTIONS:
        raise LearnopsError(f"fallback returned unknown action {action!r}")
    probs = {a: float(probs[a]) for a in ACTIONS if a in probs}
    samples = bool(getattr(state.teacher, "samples", False))
    return {
        "action": action,
        "confidence": float(probs.get(action, max(probs.values(), default=1.0))),
        "decided_by": "llm",
        "model_version": state.teacher_name,
        "probabilities": probs,
        "difficulty_delta": None,
        # a sampling teacher's action was drawn from its distribution: log that distribution
        "_base": probs if samples and len(probs) == len(ACTIONS) else None,
    }


def decide_once(
    state: ServeState, features: Mapping[str, float], arm: str = DEFAULT_ARM
) -> tuple[dict[str, Any], bool]:
    """(decision, low confidence) of the ``arm``'s policy before exploration: ``ml`` the model
    always, ``gpt4`` the fallback teacher always, ``hybrid`` the model when sure enough, else
    the teacher. A missing model or failing teacher degrades to the other (503 when neither)."""
    model, version = state.holder.current()
    pred = None
    if model is not None:
        from learnops.mlp import predict

        pred = predict(model, features)
    # low: the hybrid policy hands this decision to the teacher because the model is unsure
    low = arm == "hybrid" and pred is not None and pred.confidence < state.threshold
    if pred is not None and (arm == "ml" or (arm == "hybrid" and not low)):
        return _ml(pred, version), low
    try:
        return _fallback(state, features), low
    except Exception as exc:
        state.metrics.observe_error("fallback")
        log.error("fallback teacher failed: %s", exc)
        if pred is None:
            raise HTTPException(503, "no model and the fallback teacher failed") from None
        return _ml(pred, version), low  # degrade to the model rather than fail


def _explore(state: ServeState, out: dict[str, Any]) -> dict[str, Any]:
    """Apply epsilon exploration to the policy's decision: the served action, its propensity,
    the logging distribution and ``explored``; the decider's view of a served action it did
    not choose (its probability, the model's difficulty change) replaces its own."""
    from learnops.policy import serve_action

    choice = out["action"]
    served = serve_action(state.rng, choice, state.epsilon, out.pop("_base"))
    pred = out.pop("_pred", None)
    if served.action != choice:
        out["action"] = served.action
        out["confidence"] = float(out["probabilities"].get(served.action, 0.0))
        adjust = pred.adjust_delta if pred is not None else None
        out["difficulty_delta"] = adjust if served.action == "adjust_difficulty" else None
    out.update(served.columns())
    return out


def _arm(state: ServeState, body: DecideRequest, lhash: str) -> tuple[str | None, str]:
    """(experiment, arm) the server assigns; a client's differing claim is counted, not used."""
    exp = state.experiments.current()
    name, arm = (exp.name, exp.arm_of(lhash)) if exp is not None else (None, DEFAULT_ARM)
    reported = arm if name is not None else None
    if (body.ab_group is not None and body.ab_group != reported) or (
        body.ab_test is not None and body.ab_test != name
    ):
        state.metrics.observe_arm_mismatch(name)
    return name, arm


def _explanation(state: ServeState, features: Mapping[str, float], action: str) -> Any:
    """Integrated gradients of the production model's logit for ``action`` (the top features,
    :mod:`learnops.mlp.explain`), or None without a model."""
    model, _ = state.holder.current()
    if model is None:
        return None
    if hasattr(model, "explain"):  # a model set (ensemble, cohort models) explains itself
        return model.explain(features, action).top()
    from learnops.mlp.explain import explain

    return explain(model, features, action).top()


@router.post("/decide", response_model=DecideResponse, response_model_exclude_unset=True)
async def decide(
    body: DecideRequest,
    state: ServeState = Depends(get_state),
    explain: bool = Query(False, description="Add the model's attributions (`explanation`)."),
) -> dict[str, Any]:
    """Decide the next teaching action under the learner's experiment arm and log it."""
    t0 = time.perf_counter()
    features = body.features()
    lhash = learner_hash(body.learner_id)
    experiment, arm = _arm(state, body, lhash)
    out, low = decide_once(state, features, arm)
    out = _explore(state, out)
    if explain:
        out["explanation"] = _explanation(state, features, out["action"])
    out["latency_ms"] = (time.perf_counter() - t0) * 1000.0
    out["decision_id"] = uuid.uuid4().hex
    out["ab_test"] = experiment
    out["ab_group"] = arm if experiment is not None else None
    row = decision_row(lhash, features, out, hashed=True)
    try:  # durable (journal fsync'd) before the answer
        await state.decision_log.submit_async(row)
    except Exception as exc:
        state.metrics.observe_error("decision_log")
        log.error("decision %s could not be logged: %s", out["decision_id"], type(exc).__name__)
        raise HTTPException(503, "the decision could not be logged; retry") from None
    # the metric is the server-side time of the whole decision, journaling included
    total_ms = (time.perf_counter() - t0) * 1000.0
    state.metrics.observe_decision(out["decided_by"], out["action"], total_ms, low)
    state.metrics.observe_arm(experiment, arm, out["explored"])
    if state.drift is not None:
        state.drift.observe(lhash, features)
    for col in LOGGING_PROB_COLUMNS:
        out.pop(col)
    return out


def _record(state: ServeState, decision_id: str, outcome: Mapping[str, Any]) -> bool:
    """Record the outcome; a decision not in the store yet (still on its way from the journal)
    is waited for once, so the common case never waits for the decision log."""
    try:
        return state.store.record_outcome(decision_id, outcome)
    except OutcomeConflict:
        raise
    except LearnopsError as exc:
        if "unknown decision id" not in str(exc):
            raise
    state.decision_log.flush()
    return state.store.record_outcome(decision_id, outcome)


@router.post("/outcomes")
def outcomes(body: OutcomeRequest, state: ServeState = Depends(get_state)) -> dict[str, Any]:
    """Attach the observed outcome to a logged decision."""
    outcome = {k: v for k, v in body.outcome().items() if v is not None}
    if not outcome:  # null never erases, so an outcome without values records nothing
        raise HTTPException(422, f"an outcome needs at least one of {', '.join(OUTCOME_FIELDS)}")
    try:
        new = _record(state, body.decision_id, outcome)
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
