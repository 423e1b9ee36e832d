"""Typed settings loaded from params.yaml."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from learnops.contracts import ACTIONS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Section):
    db_url: str = "sqlite:///data/raw/events.db"
    truth_dir: str = "data/raw/truth"
    processed_dir: str = "data/processed"
    models_dir: str = "models"
    reports_dir: str = "reports"


class DataConfig(_Section):
    """Where the pipeline's rows come from (``data.source``)."""

    #: simulate: the ``simulate`` stage fills the event store with simulated rows (the default);
    #: store: the ``simulate`` stage does nothing (it removes the simulator's own rows, if any) and
    #: ``export`` reads whatever the store holds (``learnops store import``, served decisions).
    source: Literal["simulate", "store"] = "simulate"


class SimulateConfig(_Section):
    n_learners: int = Field(2000, ge=1)
    n_items: int = Field(240, ge=2)
    n_modules: int = Field(8, ge=1)
    sessions_per_learner: float = Field(6.0, gt=0)
    items_per_session: float = Field(17.0, gt=0)
    decision_every: int = Field(7, ge=1)
    days: int = Field(120, ge=1)
    end_date: date = date(2026, 11, 1)
    learning_rate: float = Field(0.04, ge=0)
    ab_test: str = "decision_policy_v1"
    ab_groups: dict[str, float] = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}
    ab_effect: dict[str, float] = {"ml": 0.03, "gpt4": 0.0, "hybrid": 0.015}


class ExportConfig(_Section):
    last_days: int | None = Field(90, ge=1)
    since: date | None = None
    until: date | None = None
    min_data_points: int = Field(100, ge=0)
    limit: int | None = Field(None, ge=1)


class IrtConfig(_Section):
    model: str = "2pl"
    quad_points: int = Field(61, ge=5)
    quad_range: float = Field(6.0, gt=0)
    max_iter: int = Field(500, ge=1)
    tol: float = Field(1e-6, gt=0)
    prior_a: tuple[float, float] | None = (0.0, 0.5)
    prior_b: tuple[float, float] | None = (0.0, 3.0)
    prior_c: tuple[float, float] | None = (5.0, 17.0)
    holdout_frac: float = Field(0.2, gt=0, lt=1)
    #: Threads (``local``) or LocalCluster workers (``dask``) for the E-steps, standard errors
    #: and scoring; None = all cores. Results do not depend on it.
    workers: int | None = Field(None, ge=1)
    #: ``local`` (threads in this process) or ``dask`` (a Dask cluster, ``dask_address``).
    engine: Literal["local", "dask"] = "local"
    #: Scheduler of an existing Dask cluster (tcp://host:8786); None starts a LocalCluster.
    dask_address: str | None = None
    #: The learner model that supplies ``ability``/``ability_se`` to the decision features
    #: (:mod:`learnops.learner_models.ability`): static IRT, Elo or Best-LR.
    ability_model: Literal["irt", "elo", "best_lr"] = "irt"

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in {"1pl", "2pl", "3pl", "heuristic"}:
            raise ValueError(f"irt.model must be 1pl, 2pl, 3pl or heuristic, not {v!r}")
        return v


class MlpConfig(_Section):
    hidden: tuple[int, ...] = (64, 32, 16)
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    val_split: float = Field(0.2, gt=0, lt=1)
    #: Share of the validation learners held out to fit the temperature on (not used for early
    #: stopping, so calibration is measured on other learners); 0: one shared split.
    calibration_split: float = Field(0.5, ge=0, lt=1)
    patience: int = Field(8, ge=1)
    class_weights: bool = False
    #: Post-hoc logit adjustment (Menon et al. 2021): τ · log(training action share) is taken off
    #: the action logits (folded into the output bias) before the temperature is fitted, which
    #: moves decisions towards rare actions; 0 = off. train_mlp's report compares τ = 0.5 and 1.
    logit_adjustment: float = Field(0.0, ge=0)
    confidence_threshold: float = Field(0.6, ge=0, le=1)
    #: One model per cohort (``module`` or ``ability_band``, with a fallback to the global model
    #: for cohorts under 500 training rows) saved and served as one artifact; null: one model.
    cohort_by: Literal["module", "ability_band"] | None = None
    #: Average the calibrated probabilities of N models trained with seeds derived from ``seed``
    #: (1: the single model). Not combined with ``cohort_by``.
    ensemble: int = Field(1, ge=1, le=20)

    @model_validator(mode="after")
    def _one_model_set(self) -> MlpConfig:
        if self.cohort_by is not None and self.ensemble > 1:
            raise ValueError("mlp.cohort_by and mlp.ensemble > 1 cannot be combined")
        return self


class Targets(_Section):
    accuracy: float = 0.85
    calibration_error: float = 0.10
    ml_usage: float = 0.70
    latency_ms: float = 100.0


class EvaluateConfig(_Section):
    test_split: float = Field(0.2, gt=0, lt=1)
    bootstrap: int = Field(500, ge=0)
    ece_bins: int = Field(15, ge=1)
    targets: Targets = Targets()


class AbConfig(_Section):
    """The A/B analysis (``ab_analysis`` stage, ``learnops ab stop``; ``ab analyze --params``)."""

    control: str = "gpt4"
    metrics: tuple[str, ...] = ("accuracy", "engagement", "success")
    alpha: float = Field(0.05, gt=0, lt=1)
    min_sample_size: int = Field(100, ge=1)
    #: A winner's primary-metric CI lower bound must exceed this (metric units).
    practical_threshold: float = Field(0.01, ge=0)
    power: float = Field(0.8, gt=0, lt=1)
    #: fixed (one look at a planned size) or sequential (anytime-valid confidence sequences:
    #: the default for a running experiment that is looked at repeatedly).
    method: str = "sequential"
    #: Learners in one comparison (treatment + control) at which the confidence sequence is
    #: tightest; fix it before the experiment starts (see learnops.ab.sequential).
    sequential_tuning_n: int = Field(1000, ge=2)
    #: Looks drawn in the report's confidence-sequence figure.
    looks: int = Field(20, ge=1, le=500)
    #: Multiplicity correction over metrics × arms: holm (family-wise) or bh (false discovery).
    correction: str = "holm"
    #: The metric that decides the winner; the others are guardrails.
    primary_metric: str = "engagement"
    #: Non-inferiority margins of guardrail metrics (metric units); a guardrail without one
    #: fails only when significantly worse.
    guardrail_margins: dict[str, float] = {}
    #: Ratio metrics: name → [numerator column, denominator column] (delta method).
    ratio_metrics: dict[str, tuple[str, str]] = {}
    #: The planned split for the SRM check when the experiment's own plan is not known
    #: (None: the experiment record, or simulate.ab_groups for the simulator's experiment).
    planned_split: dict[str, float] | None = None

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in {"fixed", "sequential"}:
            raise ValueError(f"ab.method must be fixed or sequential, not {v!r}")
        return v

    @field_validator("correction")
    @classmethod
    def _known_ab_correction(cls, v: str) -> str:
        if v not in {"holm", "bh"}:
            raise ValueError(f"ab.correction must be holm or bh, not {v!r}")
        return v

    @field_validator("guardrail_margins")
    @classmethod
    def _margins(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, m in v.items() if not m >= 0]
        if bad:
            raise ValueError(f"ab.guardrail_margins must be >= 0 ({', '.join(bad)})")
        return v


class RegisterConfig(_Section):
    mlp_metric: str = "accuracy"
    mlp_min_improvement: float = Field(0.05, ge=0)
    irt_min_accuracy: float = Field(0.75, ge=0, le=1)
    #: The IRT gate's absolute check: held-out accuracy (the seed's rule), AUC or log-loss. On
    #: adaptive data the accuracy of a well-fitted model sits near its Bayes bound, so AUC or
    #: log-loss separate good from bad fits better; the other two are reported either way.
    irt_metric: Literal["accuracy", "auc", "log_loss"] = "accuracy"
    irt_min_auc: float = Field(0.70, ge=0, le=1)
    irt_max_log_loss: float = Field(0.60, gt=0)


class ServeConfig(_Section):
    """The HTTP server (``learnops serve``)."""

    #: Larger request bodies are answered 413 before they are read or parsed.
    max_body_bytes: int = Field(65_536, ge=1)
    #: Exploration: with this probability the served action is drawn uniformly from the five
    #: actions (0 turns exploration off; off-policy evaluation then covers fewer policies).
    epsilon: float = Field(0.05, ge=0, le=1)
    #: Seed of the server's exploration and teacher draws (None: fresh entropy every start).
    seed: int | None = None
    #: Alert threshold: largest share of failed requests per decision (the dashboard's live
    #: check and deploy/prometheus/alerts.yml).
    max_error_rate: float = Field(0.01, gt=0, lt=1)


class MonitorConfig(_Section):
    """Feature-drift test of the monitoring (``learnops monitor drift``, alerts, the report)."""

    #: Family-wise error rate of the dataset-level drift verdict over the 18 features.
    alpha: float = Field(0.05, gt=0, lt=1)
    #: Fewer current (or reference) rows than this: "insufficient_data", never an alarm.
    min_n: int = Field(50, ge=2)
    #: Permutations behind each feature's p-value (the smallest possible p is 1/(B+1)).
    permutations: int = Field(999, ge=19)
    #: Multiplicity correction across the features: holm (family-wise) or bh (false discovery).
    correction: str = "holm"
    #: Column whose values are permuted as whole units (rows of a learner are correlated);
    #: None, or a column missing from either table, permutes rows.
    cluster: str | None = "learner_hash"
    #: Seed of the permutations (fixed: the same tables give the same p-values).
    seed: int = 0
    #: The server's drift gauges on /metrics: the most recent decisions tested against the
    #: exported training decisions every serve_interval_s seconds (in the background).
    serve_window: int = Field(2000, ge=2)
    serve_interval_s: float = Field(300.0, gt=0)

    @field_validator("correction")
    @classmethod
    def _known_correction(cls, v: str) -> str:
        if v not in {"holm", "bh"}:
            raise ValueError(f"monitor.correction must be holm or bh, not {v!r}")
        return v


class LearnerModelsConfig(_Section):
    """The ``learner_models`` stage: next-answer models compared with static IRT."""

    #: Models compared (``irt`` is the reference of the paired differences and always runs).
    models: tuple[str, ...] = ("irt", "elo", "pfa", "best_lr")
    #: Temporal split: share of each learner's latest responses held out.
    holdout_frac: float = Field(0.2, gt=0, lt=1)
    #: Held-out-learners split: share of learners held out.
    test_split: float = Field(0.2, gt=0, lt=1)
    #: Share of the training learners on which Elo's step (alpha, beta) is tuned.
    val_split: float = Field(0.25, gt=0, lt=1)
    #: Grids of Elo's uncertainty step K(n) = alpha / (1 + beta·n).
    elo_alpha: tuple[float, ...] = (0.2, 0.4, 0.8, 1.6)
    elo_beta: tuple[float, ...] = (0.0, 0.01, 0.05, 0.2)
    #: Inverse L2 strength of PFA's and Best-LR's logistic regressions (scikit-learn ``C``).
    C: float = Field(1.0, gt=0)
    bootstrap: int = Field(200, ge=10)
    ece_bins: int = Field(10, ge=2)

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in v if m not in {"irt", "elo", "pfa", "best_lr"}]
        if unknown:
            raise ValueError(f"learner_models.models: unknown {unknown} (irt, elo, pfa, best_lr)")
        return v if "irt" in v else ("irt", *v)


class Params(_Section):
    """All pipeline settings; ``root`` is the directory relative paths resolve against."""

    seed: int = 0
    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    simulate: SimulateConfig = SimulateConfig()
    export: ExportConfig = ExportConfig()
    irt: IrtConfig = IrtConfig()
    mlp: MlpConfig = MlpConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    ab: AbConfig = AbConfig()
    registry: RegisterConfig = RegisterConfig()
    serve: ServeConfig = ServeConfig()
    monitor: MonitorConfig = MonitorConfig()
    learner_models: LearnerModelsConfig = LearnerModelsConfig()
    root: Path = Path(".")

    def path(self, relative: str | Path) -> Path:
        """Resolve a params-relative path."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @property
    def db_url(self) -> str:
        """The store URL: env ``LEARNOPS_DB_URL`` wins; relative SQLite paths resolve to root."""
        url = os.environ.get("LEARNOPS_DB_URL") or self.paths.db_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            rel = url[len(prefix) :]
            if rel and rel != ":memory:":
                return prefix + str((self.root / rel).resolve())
        return url

    @property
    def actions(self) -> tuple[str, ...]:
        return ACTIONS


class ConfigError(ValueError):
    """params.yaml is missing or invalid."""


def load_params(path: str | Path = "params.yaml", **overrides: Any) -> Params:
    """Load and validate params.yaml; ``overrides`` replace top-level sections or keys."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"params file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at top level")
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    raw["root"] = p.resolve().parent
    try:
        return Params.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError: make it one readable message
        raise ConfigError(f"{p}: {exc}") from exc


#: The environment variable a notebook opened outside the pipeline may use to name its params.
PARAMS_ENV = "LEARNOPS_PARAMS"


def find_params(start: str | Path | None = None) -> Path:
    """The ``params.yaml`` a notebook or a command started in ``start`` (default: the working
    directory) belongs to: the nearest one in ``start`` or a folder above it."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "params.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no params.yaml in {here} or a folder above it: pass params_path (or set {PARAMS_ENV})"
    )


def notebook_params(params_path: str | Path | None = None, **overrides: Any) -> Params:
    """The params of a stage notebook, the same file whoever runs it.

    ``dvc repro`` (papermill) injects ``params_path``; a notebook opened in JupyterLab
    (``make lab``) leaves it None and gets ``LEARNOPS_PARAMS`` when set, else the nearest
    ``params.yaml`` above the notebook's folder, i.e. the repository's own file, the one
    ``dvc repro`` and ``dvc exp run -S …`` read. ``overrides`` as in :func:`load_params`."""
    if params_path is None:
        params_path = os.environ.get(PARAMS_ENV) or find_params()
    return load_params(params_path, **overrides)
