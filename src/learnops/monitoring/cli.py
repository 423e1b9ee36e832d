"""`learnops monitor …` commands. Only typer/pathlib at import; the rest inside commands."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _monitor() -> None:
    """Monitoring: feature drift between two tables."""


@app.command()
def drift(
    reference: Path = typer.Option(..., "--reference", help="Reference table (.csv or .parquet)."),
    current: Path = typer.Option(..., "--current", help="Current table (.csv or .parquet)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result as JSON here."),
    alpha: float | None = typer.Option(None, help="Dataset false-alarm rate (default 0.05)."),
    min_n: int | None = typer.Option(None, "--min-n", help="Fewer rows: insufficient data."),
    permutations: int | None = typer.Option(None, help="Permutations per feature (999)."),
    correction: str | None = typer.Option(None, help="holm (default) or bh."),
    cluster: str | None = typer.Option(
        None,
        help="Column permuted as whole units (default learner_hash when both tables have it; "
        "'none' permutes rows).",
    ),
    seed: int | None = typer.Option(None, help="Seed of the permutations (default 0)."),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml whose `monitor` section gives the defaults."
    ),
) -> None:
    """Test every one of the 18 features for drift between REFERENCE and CURRENT.

    Per feature: two-sample KS statistic with a permutation p-value (whole learners permuted
    when both tables have learner_hash); the dataset verdict is Holm-corrected over the features
    at --alpha. Fewer than --min-n rows: insufficient data, not an alarm. Exit 0 with or without
    drift; exit 2 on bad input.
    """
    from learnops.errors import LearnopsError

    try:
        res = _run(
            reference, current, params, alpha, min_n, permutations, correction, cluster, seed
        )
        typer.echo(res.text())
        if json_out is not None:
            from learnops.io import write_json

            write_json(json_out, res.as_dict())
            typer.echo(f"\nwrote {json_out}")
    except LearnopsError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


def _run(reference, current, params, alpha, min_n, permutations, correction, cluster, seed):
    from learnops.config import ConfigError, MonitorConfig, load_params
    from learnops.contracts import FEATURES
    from learnops.errors import LearnopsError
    from learnops.io import read_table
    from learnops.monitoring.drift import drift_test

    try:
        m = load_params(params).monitor if params is not None else MonitorConfig()
    except ConfigError as exc:
        raise LearnopsError(str(exc)) from None
    if alpha is not None and not 0 < alpha < 1:
        raise LearnopsError("--alpha must be in (0, 1)")
    if min_n is not None and min_n < 2:
        raise LearnopsError("--min-n must be at least 2")
    if permutations is not None and permutations < 19:
        raise LearnopsError("--permutations must be at least 19")
    if correction is not None and correction not in {"holm", "bh"}:
        raise LearnopsError("--correction must be holm or bh")
    unit = m.cluster if cluster is None else (None if cluster.lower() == "none" else cluster)
    ref = read_table(reference)
    cur = read_table(current)
    for df, path in ((ref, reference), (cur, current)):
        missing = [f for f in FEATURES if f not in df.columns]
        if missing:
            raise LearnopsError(
                f"{path}: missing {len(missing)} of the 18 feature column(s): {', '.join(missing)}"
            )
    if cluster is not None and unit is not None:
        for df, path in ((ref, reference), (cur, current)):
            if unit not in df.columns:
                raise LearnopsError(f"{path}: no column {unit!r} (--cluster)")
    return drift_test(
        ref,
        cur,
        FEATURES,
        alpha=m.alpha if alpha is None else alpha,
        min_n=m.min_n if min_n is None else min_n,
        permutations=m.permutations if permutations is None else permutations,
        correction=m.correction if correction is None else correction,
        cluster=unit,
        seed=m.seed if seed is None else seed,
    )
