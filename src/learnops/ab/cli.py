"""`learnops ab …` commands. Only typer/pathlib at import; the analysis is imported inside."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _ab() -> None:
    """A/B test analysis."""


def _parse_split(text: str | None) -> dict[str, float] | None:
    from learnops.errors import LearnopsError

    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise LearnopsError(
                f"--planned-split must look like ml=0.4,gpt4=0.4,hybrid=0.2 (bad part {part!r})"
            ) from None
    return out


def _parse_pairs(text: str | None, option: str) -> dict[str, str]:
    from learnops.errors import LearnopsError

    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise LearnopsError(f"{option} must look like engagement=pre_engagement ({part!r})")
        out[name.strip()] = value.strip()
    return out


@app.command()
def analyze(
    events: Path = typer.Argument(..., help="EVENTS table (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", help="Output directory for results.json."),
    control: str = typer.Option("gpt4", help="Control group."),
    metrics: str = typer.Option("accuracy,engagement,success", help="Comma-separated metrics."),
    alpha: float = typer.Option(0.05, help="Family-wise significance level (Holm)."),
    planned_split: str = typer.Option(
        None, help="Planned split for the SRM check, e.g. ml=0.4,gpt4=0.4,hybrid=0.2."
    ),
    practical_threshold: float = typer.Option(0.01, help="Smallest diff worth shipping."),
    min_sample_size: int = typer.Option(100, help="Learners needed per group for a winner."),
    covariates: str = typer.Option(
        None, help="CUPED covariates, e.g. engagement=pre_engagement,accuracy=pre_accuracy."
    ),
) -> None:
    """Analyze EVENTS (learner_id, group, metric columns) and write DIR/results.json."""
    from learnops.ab.analysis import analyze as run_analysis
    from learnops.io import read_table, write_json

    metric_list = [m.strip() for m in metrics.split(",") if m.strip()]
    df = read_table(events)
    results = run_analysis(
        df,
        control=control,
        metrics=metric_list,
        alpha=alpha,
        practical_threshold=practical_threshold,
        min_sample_size=min_sample_size,
        planned_split=_parse_split(planned_split),
        covariates=_parse_pairs(covariates, "--covariates"),
    )
    path = out / "results.json"
    write_json(path, results)
    typer.echo(f"{path}: {results['decision']}")
