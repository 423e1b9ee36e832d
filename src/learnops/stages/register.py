"""The ``register`` stage: register the trained models, gate them against production, deploy.

Registers ``models/mlp``, ``models/irt`` and, when the ``learner_models`` stage saved it, the
ability model ``models/learner`` (``lifecycle.retrain.register_pipeline``) or, for the
report of ``learnops retrain``, reads the outcomes that command wrote. Returns the verdicts, the
gate checks, candidate vs production on the same held-out set, the candidate policy's off-policy
value next to the logged policy's observed one, and the version history that notebook 07 shows.

No data (issue 22, item 14): a model whose training stage had no data in the export window (its
table is empty: the stage skipped and kept the previous model), or which has no held-out rows to
be measured on, or no model at all, is not registered: registering the kept model again would
claim it was retrained. :attr:`RegisterResult.skips` says which and why (the notebook shows it,
the report runner prints it); when both are skipped nothing is registered and the report shows
the version history only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from learnops.config import Params
    from learnops.stages import Skipped

#: held-out metrics shown when present, in display order (higher is better for the first
#: three, lower for the rest)
METRICS: tuple[str, ...] = ("accuracy", "auc", "macro_f1", "ece", "brier", "log_loss", "nll")
HISTORY_COLUMNS: tuple[str, ...] = (
    "model_type",
    "version",
    "status",
    "data_count",
    "accuracy",
    "data_fingerprint",
    "code_fingerprint",
    "created_at",
    "deployed_at",
)


@dataclass
class RegisterResult:
    """What notebook 07 shows."""

    outcomes: list[dict[str, Any]]
    decisions: pd.DataFrame
    checks: pd.DataFrame
    comparison: pd.DataFrame
    history: pd.DataFrame
    version_metrics: pd.DataFrame
    decision_markdown: str
    ope: pd.DataFrame
    skips: list[Skipped] = field(default_factory=list)
    """The models not registered because their training stage had nothing new (one each)."""


def _numeric(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {
        k: v
        for k, v in (metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def decisions_table(outcomes: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per outcome: version, verdict, status, reuse, production before, samples (the
    reasons are in :func:`decision_markdown`)."""
    import pandas as pd

    cols = ["model_type", "version", "deployed", "status", "reused", "production_before", "samples"]
    rows = [
        {
            "model_type": o["model_type"],
            "version": o["version"],
            "deployed": bool(o["deployed"]),
            "status": o["status"],
            "reused": bool(o["reused"]),
            "production_before": o["production_version"] or "none",
            "samples": o["samples"],
        }
        for o in outcomes
    ]
    return pd.DataFrame(rows, columns=cols)


def checks_table(outcomes: list[dict[str, Any]]) -> pd.DataFrame:
    """Every gate check of every outcome: model_type, version, then the check's own fields
    (name, value, comparison, target, passed, … as the gates record them; its reason sentence
    and direction are left out: the reasons are in :func:`decision_markdown`)."""
    import pandas as pd

    rows = [
        {"model_type": o["model_type"], "version": o["version"], **check}
        for o in outcomes
        for check in o["decision"]["checks"]
    ]
    first = ["model_type", "version", "name", "value", "comparison", "op", "target", "passed"]
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["model_type", "version", "name", "value", "target", "passed"])
    ordered = [c for c in first if c in table.columns]
    rest = [c for c in table.columns if c not in ordered and c not in ("reason", "direction")]
    return table[ordered + rest]


def comparison_table(outcomes: list[dict[str, Any]]) -> pd.DataFrame:
    """Candidate and production held-out metrics, one row per model × who (production only when
    it could be evaluated), numeric metrics as columns."""
    import pandas as pd

    rows = []
    for o in outcomes:
        for who, m in (("candidate", o["metrics"]), ("production", o["production_metrics"])):
            if m:
                version = o["version"] if who == "candidate" else o["production_version"]
                rows.append(
                    {"model": o["model_type"], "who": who, "version": version, **_numeric(m)}
                )
    return pd.DataFrame(rows)


OPE_COLUMNS: tuple[str, ...] = (
    "model_type",
    "version",
    "policy",
    "estimator",
    "value",
    "se",
    "ci_low",
    "ci_high",
    "n",
    "n_learners",
    "ess",
    "max_weight",
    "note",
)


def ope_table(outcomes: list[dict[str, Any]]) -> pd.DataFrame:
    """The off-policy value of every decision-model candidate's policy (argmax, mixed
    ε-uniform with serve.epsilon) on its held-out decisions, DR first then IPS and SNIPS, next
    to the logged (production) policy's observed mean on the same rows; one row with the reason
    when OPE was skipped. Columns :data:`OPE_COLUMNS`."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for o in outcomes:
        ope = (o.get("metrics") or {}).get("ope")
        if not isinstance(ope, dict):
            continue
        who = {"model_type": o["model_type"], "version": o["version"]}
        if ope.get("skipped"):
            rows.append({**who, "policy": "candidate", "note": f"skipped: {ope['skipped']}"})
            continue
        size = {k: ope.get(k) for k in ("n", "n_learners")}
        policy = f"candidate (argmax, epsilon={ope['epsilon']:g})"
        weights = {"ess": ope.get("ess"), "max_weight": ope.get("max_weight")}
        for name in ("dr", "ips", "snips"):
            if name in ope["estimates"]:
                est = ope["estimates"][name]
                rows.append({**who, "policy": policy, "estimator": name, **est, **size, **weights})
        rows.append(
            {
                **who,
                "policy": "logged (production)",
                "estimator": "observed mean",
                **ope["observed_mean"],
                **size,
                "note": f"reward {ope['reward']}",
            }
        )
    return pd.DataFrame(rows, columns=list(OPE_COLUMNS))


def decision_markdown(outcomes: list[dict[str, Any]]) -> str:
    """The verdict for every model type, with its reasons, as Markdown."""
    if not outcomes:
        return "Nothing was registered."
    parts = []
    for o in outcomes:
        verdict = "**deployed**" if o["deployed"] else "**not deployed**"
        reused = (
            " (identical to an existing version: nothing new registered)" if o["reused"] else ""
        )
        parts.append(
            f"### {o['model_type'].upper()} {o['version']}: {verdict}{reused}\n\n"
            f"Production before: {o['production_version'] or 'none'}. "
            f"Samples: {o['samples']}.\n\n" + "\n".join(f"* {r}" for r in o["decision"]["reasons"])
        )
    return "\n\n".join(parts)


def _short(fingerprint: str | None) -> str | None:
    """``kind:digest`` cut to 12 hex digits (a ``+dirty`` suffix kept)."""
    if not fingerprint or ":" not in fingerprint:
        return fingerprint
    kind, _, rest = fingerprint.partition(":")
    digest, plus, suffix = rest.partition("+")
    return f"{kind}:{digest[:12]}{plus}{suffix}"


def _minute(stamp: str | None) -> str | None:
    """An ISO timestamp to the minute."""
    import pandas as pd

    return None if stamp is None or pd.isna(stamp) else f"{pd.Timestamp(stamp):%Y-%m-%d %H:%M}"


def history_tables(versions: list[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The version history (one row per version, oldest first per model type; fingerprints cut
    to 12 hex digits, times to the minute, UTC) and the long table of every version's held-out
    metrics (model_type, version, number, status, metric, value)."""
    import pandas as pd

    rows = [v.as_dict() for v in versions]
    if not rows:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS)), pd.DataFrame(
            columns=["model_type", "version", "number", "status", "metric", "value"]
        )
    hist = pd.DataFrame(rows).sort_values(["model_type", "number"], kind="mergesort")
    hist["accuracy"] = [(m or {}).get("accuracy") for m in hist["metrics"]]
    long = [
        {
            "model_type": r["model_type"],
            "version": r["version"],
            "number": r["number"],
            "status": r["status"],
            "metric": k,
            "value": float(v),
        }
        for r in hist.to_dict("records")
        for k, v in _numeric(r["metrics"]).items()
        if k in METRICS
    ]
    for col in ("data_fingerprint", "code_fingerprint"):
        hist[col] = [_short(v) for v in hist[col]]
    for col in ("created_at", "deployed_at"):
        hist[col] = [_minute(v) for v in hist[col]]
    hist = hist[list(HISTORY_COLUMNS)].reset_index(drop=True)
    return hist, pd.DataFrame(
        long, columns=["model_type", "version", "number", "status", "metric", "value"]
    )


#: model type → (training stage, exported table, file that marks a saved model)
TRAINED_BY: dict[str, tuple[str, str, str]] = {
    "mlp": ("train_mlp", "decisions", "metadata.json"),
    "irt": ("fit_irt", "responses", "fit.json"),
    "learner": ("learner_models", "responses", "learner.json"),
}


#: Model types registered only when their stage saved a model (no note otherwise): the ability
#: model of the ``learner_models`` stage.
OPTIONAL: tuple[str, ...] = ("learner",)


def _model_dir(params: Params, model_type: str) -> Path:
    return params.path(params.paths.models_dir) / model_type


def skips(params: Params) -> list[Skipped]:
    """The models the pipeline has nothing new to register for: an empty export table (its
    training stage skipped), no saved model, or no held-out rows to measure it on. An
    :data:`OPTIONAL` type without a saved model is left out silently."""
    from learnops.data.splits import irt_holdout, mlp_holdout
    from learnops.stages import Skipped, no_rows_reason, processed_table

    def learner_holdout(rows: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
        from learnops.data.splits import response_holdout

        return response_holdout(rows, params.learner_models.holdout_frac)

    holdout = {"mlp": mlp_holdout, "irt": irt_holdout, "learner": learner_holdout}
    out = []
    for model_type, (stage, table, marker) in TRAINED_BY.items():
        model_dir = params.path(params.paths.models_dir) / model_type
        if model_type in OPTIONAL and not (model_dir / marker).is_file():
            continue  # its stage did not run: nothing to register, nothing to say
        _, rows = processed_table(params, table)
        if rows.empty:
            reason = f"{no_rows_reason(params, table)}, so {stage} trained nothing new"
        elif not (model_dir / marker).is_file():
            reason = f"no trained {model_type} model in {model_dir}"
        elif holdout[model_type](rows, params)[1].empty:
            reason = f"no held-out {table} to measure the {model_type} model on"
        else:
            continue
        out.append(Skipped(f"register {model_type}", reason, f"{model_type} is not registered"))
    return out


def load_outcomes(path: str | Path) -> list[dict[str, Any]]:
    """Outcomes written by ``learnops retrain`` (reports/retrain/latest.json)."""
    with open(path) as fh:
        return json.load(fh)


def run(params: Params, outcomes_path: str | Path | None = None) -> RegisterResult:
    """Register the pipeline's models (or read ``outcomes_path``, as ``learnops retrain``
    passes) and gather the verdicts, the comparison with production and the history."""
    from learnops.data.store import EventStore
    from learnops.io import jsonable
    from learnops.lifecycle.registry import Registry
    from learnops.lifecycle.retrain import register_pipeline

    skipped: list[Skipped] = []
    if outcomes_path is None:
        skipped = skips(params)
        models = [
            m
            for m in TRAINED_BY
            if f"register {m}" not in {s.stage for s in skipped}
            and (m not in OPTIONAL or (_model_dir(params, m) / TRAINED_BY[m][2]).is_file())
        ]
        outcomes = jsonable(register_pipeline(params, models=models)) if models else []
    else:
        outcomes = load_outcomes(outcomes_path)
    store = EventStore(params.db_url)
    try:
        versions = Registry(store, params.path(params.paths.models_dir) / "registry").list()
    finally:
        store.dispose()
    history, version_metrics = history_tables(versions)
    return RegisterResult(
        outcomes=outcomes,
        decisions=decisions_table(outcomes),
        checks=checks_table(outcomes),
        comparison=comparison_table(outcomes),
        history=history,
        version_metrics=version_metrics,
        decision_markdown=decision_markdown(outcomes),
        ope=ope_table(outcomes),
        skips=skipped,
    )
