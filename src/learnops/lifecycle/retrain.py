"""Retraining: export a window → train → evaluate on a held-out set → compare with production on
the same set → gate → register → deploy (or not). Used by `learnops retrain`, the HTTP admin API
and the pipeline's `register` stage.

The decision model's evaluation also holds the off-policy value of the policy it would serve
(:func:`ope_mlp`: its argmax mixed ε-uniform, DR with a learner-clustered interval) next to the
logged policy's observed mean reward on the same held-out decisions; ``learnops ope`` shares
:func:`served_policy` and :func:`model_policy_value`."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from learnops.config import ExportConfig, Params
from learnops.data.splits import irt_holdout, mlp_holdout
from learnops.data.store import EventStore
from learnops.errors import LearnopsError, NoTrainingData
from learnops.hashing import data_fingerprint
from learnops.lifecycle.gates import GateDecision, irt_gate, learner_gate, mlp_gate
from learnops.lifecycle.registry import Registry, VersionInfo, code_fingerprint

if TYPE_CHECKING:
    from learnops.evaluation.ope import LoggedDecisions, PolicyValue

MODELS = ("mlp", "irt")


@dataclass
class RetrainOutcome:
    """What one retrain of one model type did."""

    model_type: str
    version: str
    samples: int
    seconds: float
    metrics: dict[str, Any]
    production_version: str | None
    production_metrics: dict[str, Any] | None
    decision: GateDecision
    deployed: bool
    status: str
    window: dict[str, str] = field(default_factory=dict)
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["decision"] = self.decision.as_dict()
        return out

    def summary_lines(self) -> list[str]:
        """Console summary in the spirit of the seed's retrain output."""
        acc = self.metrics.get("accuracy")
        prod = (self.production_metrics or {}).get("accuracy")
        lines = [
            f"[{self.model_type}] version {self.version} ({self.status})",
            f"  samples:    {self.samples}",
            f"  duration:   {self.seconds:.1f} s",
            f"  accuracy:   {acc:.4f}" if isinstance(acc, float) else "  accuracy:   -",
        ]
        if self.production_version:
            lines.append(
                f"  production: {self.production_version} accuracy "
                + (f"{prod:.4f}" if isinstance(prod, float) else "-")
                + " on the same held-out set"
            )
        ope = self.metrics.get("ope")
        if isinstance(ope, Mapping):
            lines.append(f"  off-policy: {ope_summary(ope)}")
        verdict = "deployed" if self.deployed else "not deployed"
        lines.append(f"  decision:   {verdict}: {'; '.join(self.decision.reasons)}")
        return lines


def ope_summary(ope: Mapping[str, Any]) -> str:
    """One line: the candidate policy's DR value (95% CI) next to the logged policy's observed
    mean on the same held-out decisions, or why OPE was skipped."""
    if ope.get("skipped"):
        return f"skipped: {ope['skipped']}"
    dr, obs = ope["estimates"]["dr"], ope["observed_mean"]

    def interval(e: Mapping[str, Any]) -> str:
        return f"{e['value']:.4f} [{_fmt(e['ci_low'])}, {_fmt(e['ci_high'])}]"

    return (
        f"DR {ope['reward']} of the candidate's policy (argmax, epsilon={ope['epsilon']:g}) "
        f"{interval(dr)} vs logged (production) {interval(obs)} on {ope['n']} held-out "
        f"decisions of {ope['n_learners']} learners (ess {ope['ess']:.0f})"
    )


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) and v == v else "-"


# -- evaluation of candidates and production on one held-out set ------------------------------
def evaluate_mlp(model: Any, test: pd.DataFrame, n_bins: int = 15) -> dict[str, Any]:
    """Accuracy, NLL, ECE, Brier, macro-F1 of a decision model on held-out decisions."""
    from learnops.evaluation.metrics import classification_metrics
    from learnops.mlp import predict_batch
    from learnops.mlp.inference import PROBA_COLUMNS
    from learnops.mlp.metrics import encode_actions

    proba = predict_batch(model, test)[list(PROBA_COLUMNS)].to_numpy()
    out = classification_metrics(encode_actions(test["action"]), proba, n_bins)
    out["n"] = len(test)
    return out


def evaluate_irt(fit: Any, test: pd.DataFrame) -> dict[str, Any]:
    """Held-out accuracy, AUC, log-loss, … of P(correct)
    (:func:`learnops.evaluation.metrics.binary_metrics`)."""
    from learnops.evaluation.metrics import binary_metrics

    return binary_metrics(test["correct"].to_numpy(dtype=float), fit.predict(test))


#: The logged outcome the candidate policy's off-policy value is estimated on.
OPE_REWARD = "next_engagement"
#: DR's reward model (one ridge regression per action) and its learner-grouped cross-fitting
#: folds: on the simulator, gradient boosting was no more accurate and 45x slower.
REWARD_MODEL_KIND: Literal["ridge", "gbm"] = "ridge"
REWARD_MODEL_FOLDS = 5
#: Batch probabilities this close to a tie are recomputed with the server's single-decision path.
_NEAR_TIE = 1e-4


def served_policy(model: Any, df: pd.DataFrame, epsilon: float) -> np.ndarray:
    """(n, 5) probabilities of the policy the server serves with ``model`` on ``df``'s rows: the
    model's argmax with probability 1 − ε, a uniform action with probability ε.

    The argmax is exactly the action :func:`learnops.mlp.predict` (the server's path) returns:
    batch probabilities come from the float32 network, so rows whose two largest probabilities
    are within 1e-4 are recomputed with ``predict`` itself."""
    from learnops.contracts import ACTIONS, FEATURES
    from learnops.mlp.inference import PROBA_COLUMNS, predict, predict_batch
    from learnops.policy import epsilon_greedy

    proba = predict_batch(model, df)[list(PROBA_COLUMNS)].to_numpy(dtype=float)
    if len(proba):
        top2 = np.sort(proba, axis=1)[:, -2:]
        near = np.flatnonzero(top2[:, 1] - top2[:, 0] < _NEAR_TIE)
        rows = df.iloc[near][list(FEATURES)].to_dict("records")
        for i, row in zip(near, rows, strict=True):
            p = predict(model, row).probabilities
            proba[i] = [p[a] for a in ACTIONS]
    return epsilon_greedy(proba, epsilon)


def model_policy_value(
    model: Any,
    decisions: pd.DataFrame,
    epsilon: float,
    reward: str = "next_engagement",
    seed: int = 0,
    alpha: float = 0.05,
    logged: LoggedDecisions | None = None,
) -> PolicyValue:
    """IPS, SNIPS and DR of :func:`served_policy` on ``decisions`` (validated by
    :func:`learnops.evaluation.ope.logged_decisions` unless ``logged`` is that validation; rows
    without a reward dropped), DR's reward model :data:`REWARD_MODEL_KIND` cross-fitted by
    learner. Used by ``learnops ope`` and the retrain report."""
    from learnops.evaluation.ope import evaluate_policy, logged_decisions

    if logged is None:
        logged = logged_decisions(decisions, reward)
    pi = served_policy(model, decisions.iloc[logged.rows], epsilon)
    return evaluate_policy(
        logged, pi, seed=seed, kind=REWARD_MODEL_KIND, n_folds=REWARD_MODEL_FOLDS, alpha=alpha
    )


def ope_mlp(model: Any, test: pd.DataFrame, params: Params) -> dict[str, Any]:
    """Off-policy value of the policy the server would serve with ``model`` (its argmax, mixed
    ε-uniform with ``params.serve.epsilon``) on the held-out decisions that carry propensities:
    IPS, SNIPS and DR (learner-clustered 95% CIs, reward model cross-fitted by learner), next to
    the logged (production) policy's observed mean on the same rows
    (:func:`model_policy_value`).

    Never raises on unusable logs: ``{"skipped": why}`` then (no propensities, a target policy
    the logs do not cover, …)."""
    eps = float(params.serve.epsilon)
    base: dict[str, Any] = {"reward": OPE_REWARD, "epsilon": eps, "skipped": None}
    for col in ("propensity", OPE_REWARD):
        if col not in test.columns:
            return {**base, "skipped": f"the held-out decisions have no {col} column"}
    has = test["propensity"].notna()
    if not has.any():
        return {
            **base,
            "skipped": f"none of the {len(test)} held-out decisions carries a propensity "
            "(logged before propensities were recorded)",
        }
    try:
        value = model_policy_value(model, test[has], eps, OPE_REWARD, seed=params.seed)
    except LearnopsError as exc:
        return {**base, "skipped": str(exc)}
    return {**base, **value.to_dict(), "without_propensity": int((~has).sum())}


def _production_metrics(
    registry: Registry, model_type: str, evaluate: Callable[[Any], dict]
) -> tuple[VersionInfo | None, dict | None, str | None]:
    prod = registry.production(model_type)
    if prod is None:
        return None, None, None
    try:
        return prod, evaluate(load_artifact(model_type, prod.artifact_path)), None
    except Exception as exc:  # an unloadable or incompatible production model must not block
        return prod, None, f"production {prod.version} could not be evaluated: {exc}"


def load_artifact(model_type: str, path: str | Path) -> Any:
    """The model stored in a registered artifact directory of ``model_type``."""
    if model_type == "mlp":
        from learnops.mlp import load
    elif model_type == "irt":
        from learnops.irt import load
    else:
        from learnops.learner_models.artifact import load
    return load(path)


def evaluate_learner(responses: pd.DataFrame, params: Params) -> Callable[[Any], dict[str, Any]]:
    """A function scoring an ability model on the temporal split's held-out answers of
    ``responses`` (:func:`learnops.learner_models.ability.holdout_metrics`), against one static
    IRT reference fitted once on the split's training answers (shared by candidate and
    production)."""
    from learnops.learner_models.ability import holdout_metrics
    from learnops.learner_models.compare import split_temporal
    from learnops.learner_models.irt_static import StaticIrt

    table = responses.reset_index(drop=True)
    train, _ = split_temporal(table, params.learner_models.holdout_frac)
    reference = StaticIrt(params.irt, params.seed).fit(train)

    def evaluate(model: Any) -> dict[str, Any]:
        return holdout_metrics(model, table, params, reference=reference)

    return evaluate


# -- the shared registration step -------------------------------------------------------------
def register_candidate(
    registry: Registry,
    params: Params,
    model_type: str,
    artifact_dir: str | Path,
    metrics: Mapping[str, Any],
    evaluate_production: Callable[[Any], dict],
    *,
    data_count: int,
    data_fp: str,
    window: tuple | None = None,
    seconds: float = 0.0,
    auto_deploy: bool = True,
    config: Mapping[str, Any] | None = None,
    version: VersionInfo | None = None,
) -> RetrainOutcome:
    """Register trained artifacts as a new version, gate them against production (evaluated by
    ``evaluate_production`` on the candidate's held-out set) and deploy when they pass.

    Without a pre-started ``version``, registering the same artifacts trained on the same data
    again is a no-op that returns the existing version.
    """
    from learnops.lifecycle.registry import _tree_digest

    digest = _tree_digest(Path(artifact_dir))
    same = None if version else registry.find_identical(model_type, data_fp, digest)
    prod, prod_metrics, decision = _gate(registry, params, model_type, metrics, evaluate_production)
    win = {"since": window[0].isoformat(), "until": window[1].isoformat()} if window else {}

    if same is not None:
        decision.reasons.insert(0, f"identical to {same.version} (same data and artifacts)")
        name, deployed, status, reused = same.version, same.status == "deployed", same.status, True
    else:
        v = version or registry.start(
            model_type,
            config=dict(config or {}),
            data_count=data_count,
            window=window,
            data_fp=data_fp,
            code_fp=code_fingerprint(params.root),
        )
        prod_info = {"version": prod.version if prod else None, "metrics": prod_metrics}
        with nullcontext() if version else registry.lease(model_type, v.version):
            deployed = _complete(
                registry, model_type, v.version, artifact_dir, metrics, decision, prod_info,
                auto_deploy,
            )  # fmt: skip
        name, status, reused = v.version, registry.get(model_type, v.version).status, False
    return RetrainOutcome(
        model_type,
        name,
        data_count,
        seconds,
        dict(metrics),
        prod.version if prod else None,
        prod_metrics,
        decision,
        deployed,
        status,
        win,
        reused=reused,
    )


def _gate(
    registry: Registry,
    params: Params,
    model_type: str,
    metrics: Mapping[str, Any],
    evaluate_production: Callable[[Any], dict],
) -> tuple[VersionInfo | None, dict | None, GateDecision]:
    """(production version, its metrics on the candidate's held-out set, the gate decision)."""
    prod, prod_metrics, prod_note = _production_metrics(registry, model_type, evaluate_production)
    if model_type == "mlp":
        decision = mlp_gate(metrics, prod_metrics, params.registry, params.evaluate.targets)
    elif model_type == "learner":
        decision = learner_gate(metrics, prod_metrics)
    else:
        decision = irt_gate(metrics, prod_metrics, params.registry)
    if prod_note:
        decision.reasons.append(prod_note)
    return prod, prod_metrics, decision


def _complete(
    registry: Registry,
    model_type: str,
    version: str,
    artifact_dir: str | Path,
    metrics: Mapping[str, Any],
    decision: GateDecision,
    production: dict[str, Any],
    auto_deploy: bool,
) -> bool:
    """Store the artifacts and the gate record of a started ``version``, deploy it when the gate
    passes and ``auto_deploy``, record its evaluation; whether it was deployed. Any error marks
    the version failed and is raised again."""
    try:
        record = {**metrics, "gate": decision.as_dict(), "production": production}
        registry.complete(model_type, version, artifact_dir, record)
        deployed = False
        if decision.deploy and auto_deploy:
            registry.deploy(model_type, version)
            deployed = True
        elif decision.deploy:
            decision.reasons.append("auto-deploy disabled: deploy with `learnops models deploy`")
        registry.store.record_evaluation(
            model_type, version, metrics, accuracy=metrics.get("accuracy")
        )
    except Exception as exc:
        registry.fail(model_type, version, f"{type(exc).__name__}: {exc}")
        raise
    return deployed


# -- the full retrain -------------------------------------------------------------------------
def _train_mlp(
    decisions: pd.DataFrame, params: Params, out: Path, progress: bool
) -> tuple[dict, Callable[[Any], dict]]:
    from learnops.mlp import save, train

    tr, te = mlp_holdout(decisions, params)
    if te.empty or tr.empty:
        raise NoTrainingData("too few learners for a held-out split")
    cfg = params.mlp
    if cfg.cohort_by == "module":
        raise LearnopsError(
            "learnops retrain cannot build module cohort models (they need the responses table): "
            "run the pipeline (dvc repro) instead"
        )
    result = train(tr, cfg, params.seed, progress=progress)
    model: Any = result.model
    if cfg.ensemble > 1 or cfg.cohort_by is not None:  # a model set, saved as one artifact
        from learnops.mlp.artifacts import save_set

        if cfg.ensemble > 1:
            from learnops.mlp.ensemble import train_ensemble

            model = train_ensemble(tr, cfg, params.seed, cfg.ensemble, first=result.model)
        else:
            from learnops.mlp.cohorts import train_cohort_models

            model = train_cohort_models(
                tr, cfg, params.seed, cfg.cohort_by, global_model=result.model
            )
        save_set(model, out, result)
    else:
        save(result, out)
    metrics = evaluate_mlp(model, te, params.evaluate.ece_bins)
    metrics["ope"] = ope_mlp(model, te, params)
    return metrics, lambda model: evaluate_mlp(model, te, params.evaluate.ece_bins)


def _train_irt(
    responses: pd.DataFrame, params: Params, out: Path, progress: bool
) -> tuple[dict, Callable[[Any], dict]]:
    from learnops.irt import fit

    tr, te = irt_holdout(responses, params)
    model = params.irt.model
    result = fit(tr, model=model, config=params.irt, seed=params.seed, progress=progress)
    result.save(out, timing=False)
    return evaluate_irt(result, te), lambda m: evaluate_irt(m, te)


def retrain(
    params: Params,
    *,
    since: date | None = None,
    limit: int | None = None,
    auto_deploy: bool = True,
    models: Sequence[str] = MODELS,
    progress: bool = False,
    on_version: Callable[[str, str], None] | None = None,
) -> list[RetrainOutcome]:
    """Export the window (default: params.export, i.e. the last 90 days), retrain each model
    type, gate and deploy. Refuses a concurrent run ("Training already in progress") and an
    empty window ("No training data available"); a failed model leaves its version ``failed``
    and production untouched. Versions left ``training`` by a retrain that died (their lease
    expired) are marked ``failed`` ("interrupted") first."""
    from learnops.data.export import export
    from learnops.learner_models.ability import export_abilities

    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise LearnopsError(f"unknown model type(s) {unknown}: use mlp, irt or all")
    store = EventStore(params.db_url)
    registry = Registry(store, params.path(params.paths.models_dir) / "registry")
    cfg = _export_config(params, since, limit)
    outcomes: list[RetrainOutcome] = []
    with registry.training_lock(), tempfile.TemporaryDirectory(prefix="learnops-retrain-") as tmp:
        registry.recover_interrupted(holding_lock=True)
        # the decisions' ability/ability_se from irt.ability_model, as the export stage does
        # (streamed: the model fitted on the answers' columns only)
        abilities = export_abilities(params) if "mlp" in models else None
        exported = export(store, cfg, Path(tmp) / "data", abilities=abilities)
        window = (exported.window.since, exported.window.until)
        for model_type in models:
            table = exported.decisions if model_type == "mlp" else exported.responses
            outcomes.append(
                _retrain_one(
                    registry,
                    params,
                    model_type,
                    table,
                    Path(tmp) / model_type,
                    window,
                    limit=limit,
                    auto_deploy=auto_deploy,
                    progress=progress,
                    on_version=on_version,
                )
            )
    return outcomes


def _export_config(params: Params, since: date | None, limit: int | None) -> ExportConfig:
    """params.export with ``since``/``limit`` when given (min_data_points: checked per model)."""
    updates: dict[str, Any] = {"min_data_points": min(params.export.min_data_points, 1)}
    if since is not None:
        updates["since"] = since
    if limit is not None:
        updates["limit"] = limit
    return params.export.model_copy(update=updates)


def _retrain_one(
    registry: Registry,
    params: Params,
    model_type: str,
    table: pd.DataFrame,
    art: Path,
    window: tuple,
    *,
    limit: int | None,
    auto_deploy: bool,
    progress: bool,
    on_version: Callable[[str, str], None] | None,
) -> RetrainOutcome:
    """Start a version of ``model_type``, train it on ``table`` into ``art``, then gate, register
    and deploy it (:func:`register_candidate`), renewing its lease meanwhile. A failed training
    leaves the version failed."""
    if len(table) < max(1, params.export.min_data_points):
        raise NoTrainingData(
            f"{len(table)} {'decisions' if model_type == 'mlp' else 'responses'} in "
            f"the window (min_data_points={params.export.min_data_points})"
        )
    t0 = time.perf_counter()
    trainer = _train_mlp if model_type == "mlp" else _train_irt
    cfg_record = {
        "seed": params.seed,
        "window": {"since": str(window[0]), "until": str(window[1])},
        "limit": limit,
        "test_split": params.evaluate.test_split,
        **(params.mlp.model_dump() if model_type == "mlp" else params.irt.model_dump()),
    }
    data_fp = data_fingerprint(table)
    version = registry.start(
        model_type,
        config=cfg_record,
        data_count=len(table),
        window=window,
        data_fp=data_fp,
        code_fp=code_fingerprint(params.root),
    )
    with registry.lease(model_type, version.version):  # renewed until registered or failed
        if on_version:
            on_version(model_type, version.version)
        try:
            metrics, eval_prod = trainer(table, params, art, progress)
        except Exception as exc:
            registry.fail(model_type, version.version, f"{type(exc).__name__}: {exc}")
            raise
        return register_candidate(
            registry,
            params,
            model_type,
            art,
            metrics,
            eval_prod,
            data_count=len(table),
            data_fp=data_fp,
            window=window,
            seconds=time.perf_counter() - t0,
            auto_deploy=auto_deploy,
            config=cfg_record,
            version=version,
        )


def register_pipeline(
    params: Params, auto_deploy: bool = True, models: Sequence[str] = MODELS
) -> list[RetrainOutcome]:
    """The `register` stage: register the artifacts the pipeline trained (models/mlp,
    models/irt), evaluated on the same held-out sets the training stages left out."""
    from learnops.io import read_table

    store = EventStore(params.db_url)
    registry = Registry(store, params.path(params.paths.models_dir) / "registry")
    processed = params.path(params.paths.processed_dir)
    models_dir = params.path(params.paths.models_dir)
    outcomes = []
    with registry.training_lock():
        registry.recover_interrupted(holding_lock=True)
        for model_type in models:
            art = models_dir / model_type
            if model_type == "mlp":
                table = read_table(processed / "decisions.parquet")
                test = mlp_holdout(table, params)[1]

                def evaluate(m, test=test):
                    return evaluate_mlp(m, test, params.evaluate.ece_bins)

                cfg = {
                    "seed": params.seed,
                    "test_split": params.evaluate.test_split,
                    **params.mlp.model_dump(),
                }
            elif model_type == "learner":
                table = read_table(processed / "responses.parquet")
                evaluate = evaluate_learner(table, params)
                cfg = {
                    "seed": params.seed,
                    "irt": params.irt.model_dump(),
                    "learner_models": params.learner_models.model_dump(),
                }
            else:
                table = read_table(processed / "responses.parquet")
                test = irt_holdout(table, params)[1]

                def evaluate(m, test=test):
                    return evaluate_irt(m, test)

                cfg = {"seed": params.seed, **params.irt.model_dump()}
            if not art.is_dir():
                raise LearnopsError(f"no trained {model_type} model at {art}: run its stage first")
            ts = pd.to_datetime(table["timestamp"], utc=True)
            window = (ts.min().to_pydatetime(), ts.max().to_pydatetime())
            candidate = load_artifact(model_type, art)
            metrics = evaluate(candidate)
            if model_type == "mlp":
                metrics["ope"] = ope_mlp(candidate, test, params)
            outcomes.append(
                register_candidate(
                    registry,
                    params,
                    model_type,
                    art,
                    metrics,
                    evaluate,
                    data_count=len(table),
                    data_fp=data_fingerprint(table),
                    window=window,
                    auto_deploy=auto_deploy,
                    config=cfg,
                )
            )
    return outcomes
