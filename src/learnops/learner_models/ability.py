"""The learner's current ability from a chosen learner model (``irt.ability_model``), as of given
times: what the decision features ``ability``/``ability_se`` should hold when a decision is made.

The ability as of time *t* uses only the learner's answers strictly before *t*: it is the model's
pre-answer estimate of the learner's first answer at or after *t*, or, past the last answer, of a
probe appended after it (a probe at the end is read by nothing, so it changes no estimate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError

if TYPE_CHECKING:
    from learnops.config import Params

ABILITY_MODELS = ("irt", "elo", "best_lr")


def fit_ability_model(name: str, responses: pd.DataFrame, params: Params) -> Any:
    """The learner model ``name`` (irt | elo | best_lr) fitted on ``responses``; Elo's step is
    tuned on ``learner_models.val_split`` of the learners."""
    from learnops.data.splits import learner_column, learner_split_mask
    from learnops.learner_models.best_lr import BestLr
    from learnops.learner_models.elo import tune
    from learnops.learner_models.irt_static import StaticIrt

    cfg = params.learner_models
    if name not in ABILITY_MODELS:
        known = ", ".join(ABILITY_MODELS)
        raise LearnopsError(f"ability model must be one of {known}, not {name!r}")
    if name == "elo":
        val = learner_split_mask(
            responses[learner_column(responses)], cfg.val_split, params.seed, "elo"
        )
        model, _ = tune(responses.loc[~val], responses.loc[val], cfg.elo_alpha, cfg.elo_beta)
        return model
    irt = StaticIrt(params.irt, params.seed).fit(responses)
    return irt if name == "irt" else BestLr(irt, C=cfg.C, fit_irt=False).fit(responses)


def ability_asof(model: Any, responses: pd.DataFrame, queries: pd.DataFrame) -> pd.DataFrame:
    """``ability`` and ``ability_se`` for every query row (learner column as in ``responses``,
    ``timestamp``), from the learner's answers strictly before the query's timestamp; a learner
    with no earlier answer gets the model's starting estimate. Rows in ``queries`` order."""
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    if responses.empty:
        raise LearnopsError("no responses to estimate abilities from")
    if lcol not in queries.columns or "timestamp" not in queries.columns:
        raise LearnopsError(f"queries: need columns {lcol} and timestamp")
    r = responses[[lcol, "item_id", "correct", "timestamp", *(
        ["module"] if "module" in responses.columns else [])]].copy()  # fmt: skip
    r["timestamp"] = pd.to_datetime(r["timestamp"], utc=True)
    q = queries[[lcol, "timestamp"]].copy()
    q["timestamp"] = pd.to_datetime(q["timestamp"], utc=True)
    q[lcol] = q[lcol].astype(str)
    r[lcol] = r[lcol].astype(str)
    end = max(r["timestamp"].max(), q["timestamp"].max()) + pd.Timedelta(seconds=1)
    learners = pd.unique(pd.concat([r[lcol], q[lcol]]))
    probe = r.iloc[[0] * len(learners)].copy()
    probe[lcol] = learners
    probe["timestamp"] = end
    probe["correct"] = 0
    table = pd.concat([r, probe], ignore_index=True)
    pred = model.predict(table)
    table["ability"] = pred.ability
    table["ability_se"] = pred.ability_se
    table = table.sort_values("timestamp", kind="stable")
    # the first answer at or after t: its pre-answer estimate (earlier answers only)
    first = table.groupby([lcol, "timestamp"], sort=False).head(1)
    q["_row"] = np.arange(len(q))
    out = pd.merge_asof(
        q.sort_values("timestamp", kind="stable"),
        first[[lcol, "timestamp", "ability", "ability_se"]],
        on="timestamp",
        by=lcol,
        direction="forward",
        allow_exact_matches=True,
    )
    return out.sort_values("_row")[["ability", "ability_se"]].reset_index(drop=True)
