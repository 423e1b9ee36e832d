"""`learnops mlp …`: train the decision model, predict and explain with it (heavy imports inside
commands)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _mlp_config(params: Path | None):
    """MlpConfig and seed from --params, else ./params.yaml if present, else defaults."""
    from learnops.config import ConfigError, MlpConfig, load_params
    from learnops.errors import LearnopsError

    path = params if params is not None else Path("params.yaml")
    if params is None and not path.is_file():
        return MlpConfig(), 0
    try:
        p = load_params(path)
    except ConfigError as exc:
        raise LearnopsError(str(exc)) from exc
    return p.mlp, p.seed


@app.command("train")
def train_cmd(
    decisions: Path = typer.Argument(..., help="Decisions table (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override mlp.epochs."),
    seed: int | None = typer.Option(None, "--seed", help="Override the params seed."),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml to read (default: ./params.yaml if present)."
    ),
    live_dir: Path | None = typer.Option(None, "--live-dir", help="DVCLive log directory."),
) -> None:
    """Train the decision model on logged decisions and save it to DIR."""
    from learnops.io import read_table
    from learnops.mlp import save, train

    config, params_seed = _mlp_config(params)
    if epochs is not None:
        config = config.model_copy(update={"epochs": epochs})
    df = read_table(decisions)
    result = train(df, config, seed=params_seed if seed is None else seed, live_dir=live_dir)
    save(result, out)
    m = result.metrics
    typer.echo(
        f"trained on {m['n_train']} rows, validated on {m['n_val']} "
        f"({result.split.n_val_learners} {result.split.unit}s): "
        f"accuracy {m['accuracy']:.3f}, ECE {m['ece']:.3f}, T {m['temperature']:.3f}, "
        f"best epoch {m['best_epoch']}/{m['epochs_run']} -> {out}"
    )


@app.command("predict")
def predict_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `learnops mlp train`."),
    decisions: Path = typer.Argument(..., help="Decisions table (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", help="Predictions file (.csv or .parquet)."),
) -> None:
    """Predict the action for every row: id columns, p_<action>, action, confidence."""
    from learnops.io import read_table, write_table
    from learnops.mlp import load, predict_batch

    model = load(model_dir)
    df = read_table(decisions)
    pred = predict_batch(model, df)
    write_table(out, pred)
    typer.echo(f"{len(pred)} predictions -> {out}")


@app.command("explain")
def explain_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `learnops mlp train`."),
    decisions: Path = typer.Argument(..., help="Decisions table (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", help="Attributions file (.csv or .parquet)."),
    method: str = typer.Option(
        "exact", "--method", help="exact (piecewise-linear integral) or captum (quadrature)."
    ),
) -> None:
    """Attributions of the chosen action's logit for every row (integrated gradients from the
    training feature means): id columns, action, logit, baseline_logit, delta, attr_<feature>."""
    from learnops.errors import LearnopsError
    from learnops.io import read_table, write_table
    from learnops.mlp import explain_batch, load

    model = load(model_dir)
    kind = getattr(model, "kind", None)
    if kind is not None:
        raise LearnopsError(
            f"{model_dir} is a model set ({kind}): explain one of its members "
            f"({model_dir}/members/<name>)"
        )
    df = read_table(decisions)
    table = explain_batch(model, df, method=method)
    write_table(out, table)
    gap = float(table["delta"].abs().max()) if len(table) else 0.0
    typer.echo(f"{len(table)} explanations (max completeness gap {gap:.2e}) -> {out}")
