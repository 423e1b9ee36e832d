"""`learnops irt …` commands: fit, predict, score. Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

MODEL_HELP = "1pl, 2pl, 3pl or heuristic (the seed's success-rate baseline)."
RESPONSES_HELP = "CSV/Parquet: learner_id|learner_hash, item_id, correct."
OUT_DIR_HELP = "Output directory (items.csv, abilities.csv, fit.json)."
DATASET_HELP = (
    "Or a dataset written by `learnops irt partition` (a directory or URL the workers can read: "
    "each worker reads its own partitions)."
)


def check_out_dir(out: Path) -> None:
    """``--out`` must be a directory, or a path where one can be created, that we can write:
    checked before fitting (nothing is created), so a bad path fails in one line, not after the
    fit with a traceback."""
    import os

    from learnops.errors import LearnopsError

    if out.exists() and not out.is_dir():
        raise LearnopsError(f"--out {out}: exists and is not a directory (give a directory)")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise LearnopsError(f"--out {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LearnopsError(f"--out {out}: {parent} is not writable")


@app.command("fit")
def fit_cmd(
    responses: str = typer.Argument(..., help=RESPONSES_HELP + " " + DATASET_HELP),
    model: str = typer.Option("2pl", "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help=OUT_DIR_HELP),
    seed: int = typer.Option(0, "--seed", help="Recorded in fit.json (EM is deterministic)."),
    max_iter: int | None = typer.Option(None, "--max-iter", help="EM iteration cap (default 500)."),
    no_priors: bool = typer.Option(False, "--no-priors", help="Plain MML: no priors on a, b, c."),
    quad_points: int | None = typer.Option(None, "--quad-points", help="Quadrature nodes (61)."),
    params: Path | None = typer.Option(None, "--params", help="IRT settings from params.yaml."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Threads (local) or Dask workers (default: all cores)."
    ),
    engine: str | None = typer.Option(None, "--engine", help="local (threads) or dask."),
    dask_address: str | None = typer.Option(
        None, "--dask-address", help="Scheduler of a Dask cluster (tcp://host:8786)."
    ),
) -> None:
    """Fit an IRT model by marginal maximum likelihood and write the model directory."""
    from learnops.config import IrtConfig, load_params
    from learnops.errors import LearnopsError
    from learnops.io import read_table
    from learnops.irt.model import MODELS, fit

    if model not in MODELS:
        raise LearnopsError(f"--model must be one of {', '.join(MODELS)}, not {model!r}")
    cfg = load_params(params).irt if params is not None else IrtConfig()
    updates = {}
    if max_iter is not None:
        updates["max_iter"] = max_iter
    if quad_points is not None:
        updates["quad_points"] = quad_points
    if workers is not None:
        updates["workers"] = workers
    if engine is not None:
        if engine not in ("local", "dask"):
            raise LearnopsError(f"--engine must be local or dask, not {engine!r}")
        updates["engine"] = engine
    if dask_address is not None:
        updates["dask_address"] = dask_address
        updates.setdefault("engine", "dask")
    if updates:
        cfg = IrtConfig(**{**cfg.model_dump(), **updates})
    check_out_dir(out)
    if "://" in responses or Path(responses).is_dir():
        from learnops.irt.partitioned import fit_partitioned

        result = fit_partitioned(
            responses, model, config=cfg, seed=seed, progress=True, priors=not no_priors
        )
    else:
        df = read_table(Path(responses))
        result = fit(df, model, config=cfg, seed=seed, progress=True, priors=not no_priors)
    try:
        result.save(out)
    except OSError as exc:
        raise LearnopsError(f"--out {out}: cannot write the model: {exc.strerror or exc}") from None
    for w in result.warnings:
        typer.secho(f"warning: {w}", err=True, fg=typer.colors.YELLOW)
    state = "converged" if result.converged else "NOT converged"
    typer.echo(
        f"{model}: loglik {result.loglik:.4f}, {result.iterations} iterations ({state}), "
        f"{result.n_items} items, {result.n_learners} learners -> {out}"
    )


@app.command("partition")
def partition_cmd(
    responses: Path = typer.Argument(..., help=RESPONSES_HELP),
    out_dir: Path = typer.Argument(..., help="Output dataset directory (shard=NNNNN/*.parquet)."),
    shards: int | None = typer.Option(
        None, "--shards", min=1, help="Partitions (default: one per 500,000 responses)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT_DIR."),
) -> None:
    """Write responses as a Parquet dataset partitioned by a stable hash of the learner id, for
    `learnops irt fit OUT_DIR --engine dask` (each worker reads its own partitions)."""
    from learnops.irt.partitioned import partition_responses

    s = partition_responses(responses, out_dir, shards, overwrite=overwrite)
    typer.echo(
        f"{s.rows} responses by {s.learner_column} -> {s.partitions} non-empty of {s.shards} "
        f"partitions in {s.out_dir}"
    )


@app.command("predict")
def predict_cmd(
    model_dir: Path = typer.Argument(..., help="Directory written by `learnops irt fit`."),
    responses: Path = typer.Argument(..., help="CSV/Parquet: learner_id|hash, item_id."),
    out: Path = typer.Option(..., "--out", help="Output table: the input rows plus p_correct."),
) -> None:
    """Add P(correct) to every row of a response table."""
    from learnops.io import read_table, write_table
    from learnops.irt.model import load, unknown_learner_message

    fitted = load(model_dir)
    df = read_table(responses)
    p, n_new = fitted._predict(df)
    if n_new:
        typer.secho(f"warning: {unknown_learner_message(n_new)}", err=True, fg=typer.colors.YELLOW)
    df = df.copy()
    df["p_correct"] = p
    write_table(out, df)
    typer.echo(f"{len(df)} predictions -> {out}")


@app.command("score")
def score_cmd(
    model_dir: Path = typer.Argument(..., help="Directory with items.csv (fixed item parameters)."),
    responses: Path = typer.Argument(..., help=RESPONSES_HELP),
    out: Path = typer.Option(..., "--out", help="Output abilities table."),
    method: str = typer.Option("eap", "--method", help="eap or map."),
) -> None:
    """Score learners (new or not) against fixed item parameters."""
    from learnops.io import read_table, write_table
    from learnops.irt.scoring import score

    items = read_table(model_dir / "items.csv", ["item_id", "discrimination", "difficulty"])
    abilities = score(items, read_table(responses), method=method)
    write_table(out, abilities)
    typer.echo(f"{len(abilities)} learners scored ({method}) -> {out}")
