"""``GET /learners/{learner_id}/ability``: the learner's current ability from the production
``learner`` model (the ``ability``/``ability_se`` a ``/decide`` client sends).

The model is the registry's production ``learner`` version, loaded off the request path like the
MLP (:class:`learnops.serve.state.ModelHolder`); the learner's answers come from the event store
(one query on the learner hash) and are replayed through the model as
:func:`learnops.learner_models.ability.ability_asof` does.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError

from learnops.data.store import utcnow
from learnops.errors import LearnopsError
from learnops.hashing import learner_hash
from learnops.serve.deps import get_state, require_client
from learnops.serve.schemas import AbilityResponse, _clean_text
from learnops.serve.state import ServeState

__all__ = ["router"]

log = logging.getLogger("learnops.serve")

router = APIRouter(dependencies=[Depends(require_client)])

#: The ability and SE without a deployed learner model: the N(0, 1) prior of IRT's θ.
PRIOR = (0.0, 1.0)

#: (model, its known item ids, its prior) of the last model served: computed once per model.
_cache: tuple[Any, set[str], tuple[float, float]] | None = None


def _model_facts(model: Any) -> tuple[set[str], tuple[float, float]]:
    """The item ids ``model`` knows and its prior (ability, SE), remembered for the model."""
    global _cache
    cached = _cache
    if cached is not None and cached[0] is model:
        return cached[1], cached[2]
    from learnops.learner_models.ability import known_items, prior_ability

    known, prior = known_items(model), prior_ability(model)
    _cache = (model, known, prior)
    return known, prior


def _invalid(where: str, name: str, msg: str) -> RequestValidationError:
    """A 422 in FastAPI's validation format (the documented error schema) that names the
    parameter, not the value sent."""
    return RequestValidationError([{"type": "value_error", "loc": (where, name), "msg": msg}])


def _as_of(value: str | None) -> datetime:
    """``asOf`` as an aware UTC datetime (now when absent); 422 when it is not an ISO time."""
    if value is None:
        return utcnow()
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        ts = pd.NaT
    if pd.isna(ts):
        raise _invalid("query", "asOf", "not an ISO 8601 time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


@router.get(
    "/learners/{learner_id}/ability",
    response_model=AbilityResponse,
    response_model_by_alias=True,
    response_model_exclude_unset=True,
)
def ability(
    learner_id: str,
    state: ServeState = Depends(get_state),
    as_of: str | None = Query(
        None, alias="asOf", description="ISO time (default now): answers strictly before count."
    ),
) -> dict[str, Any]:
    """The learner's ability and its SE from the production learner model and the learner's
    answers in the store before ``asOf``; a learner with no answer gets the model's prior, and
    without a deployed learner model every learner gets the prior (``version`` null)."""
    try:
        _clean_text(learner_id)
    except ValueError as exc:
        raise _invalid("path", "learner_id", str(exc)) from None
    if len(learner_id) > 256:
        raise _invalid("path", "learner_id", "at most 256 characters")
    at = _as_of(as_of)
    holder = state.learners
    model, version = holder.current() if holder is not None else (None, None)
    out: dict[str, Any] = {"asOf": at.isoformat().replace("+00:00", "Z"), "version": version}
    if model is None:
        out.update(
            ability=PRIOR[0],
            ability_se=PRIOR[1],
            model=state.params.irt.ability_model,
            nResponses=0,
            note="no production learner model: the prior (deploy one with learnops register)",
        )
        return out
    from learnops.learner_models.ability import learner_ability

    try:
        history = state.store.read_learner_responses(learner_hash(learner_id), until=at)
    except OperationalError:
        state.metrics.observe_error("store")
        raise HTTPException(503, "the event store is unavailable; retry") from None
    try:
        known, prior = _model_facts(model)
        theta, se, used, left_out = learner_ability(model, history, at, known=known, prior=prior)
    except LearnopsError as exc:
        log.error("ability of a learner failed: %s", exc)
        raise HTTPException(500, "the learner model could not estimate the ability") from None
    out.update(ability=theta, ability_se=se, model=model.name, nResponses=used)
    if used == 0 and left_out == 0:
        out["note"] = "no answers before asOf: the model's prior"
    elif left_out:
        out["note"] = f"{left_out} answer(s) to items the learner model does not know left out"
    return out
