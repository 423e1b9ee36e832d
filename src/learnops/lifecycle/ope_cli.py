"""The ``learnops ope`` command (mounted by learnops.cli): off-policy evaluation of a decision
model on logged decisions.

The target policy is the one the server would serve with the model: its argmax (exactly the
action :func:`learnops.mlp.predict` returns), mixed ε-uniform (:func:`learnops.policy.
epsilon_greedy`; :func:`learnops.lifecycle.retrain.served_policy`, shared with the retrain
report). It is evaluated with IPS, SNIPS and DR (:mod:`learnops.evaluation.ope`) on the
logged decisions' propensities, with learner-clustered standard errors, next to the logging
policy's observed mean reward on the same rows. Only typer is imported at module load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from learnops.config import Params

__all__ = [
    "DEFAULT_EPSILON",
    "apply_where",
    "format_report",
    "ope_command",
    "parse_where",
    "resolve_model",
]

#: Target-policy exploration when neither --epsilon nor a params file gives one.
DEFAULT_EPSILON = 0.05
_ESTIMATORS = ("ips", "snips", "dr")


def parse_where(items: list[str] | None) -> list[tuple[str, str]]:
    """``COL=VALUE`` strings as (column, value) pairs (the value may contain ``=``)."""
    out = []
    for item in items or []:
        col, sep, value = item.partition("=")
        if not sep or not col.strip():
            raise _error(f"--where expects COL=VALUE, got {item!r}")
        out.append((col.strip(), value))
    return out


def apply_where(df: pd.DataFrame, conditions: list[tuple[str, str]]) -> pd.DataFrame:
    """Rows whose every COL equals VALUE as strings (booleans match case-insensitively: true,
    True; missing values match nothing). An unknown column or no matching row is an error."""
    import numpy as np

    mask = np.ones(len(df), dtype=bool)
    for col, value in conditions:
        if col not in df.columns:
            raise _error(f"--where {col}={value}: no column {col!r} in the decisions table")
        text = [_as_text(v) for v in df[col].tolist()]
        want = value.lower() if value.lower() in ("true", "false") else value
        mask &= np.array([t is not None and t == want for t in text], dtype=bool)
    if not mask.any():
        shown = " ".join(f"--where {c}={v}" for c, v in conditions)
        raise _error(f"no decision matches {shown} (of {len(df)} rows)")
    return df[mask]


def _as_text(v: Any) -> str | None:
    import numpy as np
    import pandas as pd

    if v is None or (not isinstance(v, str) and bool(pd.isna(v))):
        return None
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    return str(v)


def resolve_model(model: str, params: Params) -> Path:
    """A model directory as given, or the artifacts of registry version ``model`` (``v3``) of
    the registry of ``params``."""
    import re

    path = Path(model)
    if path.is_dir():
        return path
    if not re.fullmatch(r"v\d+", model):
        raise _error(f"--model {model}: no such model directory, nor a registry version (vN)")
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry

    store = EventStore(params.db_url)
    try:
        info = Registry(store, params.path(params.paths.models_dir) / "registry").get("mlp", model)
    finally:
        store.dispose()
    if not info.artifact_path or not Path(info.artifact_path).is_dir():
        raise _error(f"mlp {model} has no artifacts (status {info.status})")
    return Path(info.artifact_path)


def _error(message: str) -> Exception:
    from learnops.errors import LearnopsError

    return LearnopsError(message)


def _params(path: Path) -> tuple[Params, bool]:
    """The params of ``path`` and whether the file exists (an explicit missing file is an error;
    the default params.yaml missing means defaults rooted at the working directory)."""
    from learnops.config import ConfigError, Params, load_params

    if path.is_file():
        try:
            return load_params(path), True
        except ConfigError as exc:
            raise _error(str(exc)) from None
    if path != Path("params.yaml"):
        raise _error(f"params file not found: {path}")
    return Params(root=Path.cwd()), False


def format_report(doc: dict[str, Any]) -> str:
    """The console table of a result document (see :func:`ope_command`)."""
    where = f" ({doc['model_path']})" if doc.get("model_path", doc["model"]) != doc["model"] else ""
    lines = [
        f"off-policy evaluation of {doc['model']}{where} (argmax, epsilon={doc['epsilon']:g}) "
        f"on {doc['reward']}",
        f"decisions: {doc['n']:,} from {doc['n_learners']:,} learners"
        + (
            f"; dropped {doc['dropped_missing_reward']:,} without {doc['reward']} yet"
            if doc["dropped_missing_reward"]
            else ""
        ),
        f"{'estimator':<10} {'value':>9} {'se':>9}  95% CI",
    ]
    rows = [(name, doc["estimates"][name]) for name in _ESTIMATORS if name in doc["estimates"]]
    rows.append(("logged", doc["observed_mean"]))
    for name, e in rows:
        lines.append(
            f"{name:<10} {_num(e['value']):>9} {_num(e['se']):>9}  "
            f"[{_num(e['ci_low'])}, {_num(e['ci_high'])}]"
        )
    lines.append("(logged: the logging policy's observed mean on the same rows)")
    lines.append(
        f"ess: {doc['ess']:,.1f} of {doc['n']:,}   max weight: {doc['max_weight']:,.4g}   "
        f"mean weight: {doc['mean_weight']:.3f} (about 1 when the logs cover the target)"
    )
    lines.append(f"DR reward model: {doc['reward_model']}")
    if not doc["coverage_checked"]:
        lines.append(
            "note: the table has no logging distribution (p_<action>): whether the logs cover "
            "the target policy could not be checked"
        )
    return "\n".join(lines)


def _num(v: Any) -> str:
    return "-" if v is None or v != v else f"{v:.4f}"


def ope_command(
    decisions: Path = typer.Argument(
        ..., help="Logged decisions (.parquet or .csv) with propensity and p_<action> columns."
    ),
    model: str = typer.Option(
        ..., "--model", help="A model directory, or a registry version such as v3."
    ),
    epsilon: float | None = typer.Option(
        None,
        "--epsilon",
        min=0.0,
        max=1.0,
        help="Target policy's exploration (default: serve.epsilon of --params, else 0.05).",
    ),
    reward: str = typer.Option("next_engagement", "--reward", help="Outcome column to evaluate."),
    where: list[str] | None = typer.Option(
        None, "--where", metavar="COL=VALUE", help="Keep rows whose COL equals VALUE (repeatable)."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the estimates to this JSON file (atomically)."
    ),
    params: Path = typer.Option(
        Path("params.yaml"), "--params", help="params.yaml: seed, serve.epsilon, the registry."
    ),
) -> None:
    """Estimate the mean reward the model's served policy (argmax, ε-uniform exploration) would
    get, from decisions logged by another policy: IPS, SNIPS and doubly robust, with
    learner-clustered 95% intervals, next to the logged policy's observed mean."""
    from learnops.io import read_table, write_json
    from learnops.policy import check_epsilon

    p, found = _params(params)
    eps = check_epsilon(
        epsilon if epsilon is not None else (p.serve.epsilon if found else DEFAULT_EPSILON)
    )
    if not decisions.is_file():
        raise _error(f"decisions file not found: {decisions}")
    table = apply_where(read_table(decisions), parse_where(where))
    from learnops.evaluation.ope import logged_decisions

    logged = logged_decisions(table, reward)  # every data error before the model is loaded
    from learnops.lifecycle.retrain import model_policy_value
    from learnops.mlp import load

    path = resolve_model(model, p)
    value = model_policy_value(load(path), table, eps, reward, seed=p.seed, logged=logged)
    doc = {
        **value.to_dict(),
        "model": model,
        "model_path": str(path),
        "epsilon": eps,
        "where": [f"{c}={v}" for c, v in parse_where(where)],
    }
    typer.echo(format_report(doc))
    if json_out is not None:
        write_json(json_out, doc)
        typer.echo(f"wrote {json_out}")
