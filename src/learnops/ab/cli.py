"""`learnops ab …` commands: analysis of event tables and the experiment lifecycle (start,
status, stop, report). Only typer/pathlib at import; the rest is imported inside commands."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _ab() -> None:
    """A/B tests: analysis of event tables and the experiment lifecycle in the store."""


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


EVENTS_HELP = (
    "EVENTS table (.csv or .parquet): learner_id (or learner_hash), group, one numeric column "
    "per metric (several rows per learner are averaged per learner), optional timestamp (orders "
    "learners for --looks; else row order), ratio-metric numerator/denominator columns and CUPED "
    "covariate columns; extra columns are ignored. The pipeline's decisions.parquet (learner_hash, "
    "ab_test, ab_group, next_accuracy, next_engagement, session_completed, ...) is detected and "
    "mapped: accuracy, engagement, success, decisions, session_minutes, pre_<metric>."
)


def _parse_ratios(text: str | None) -> dict[str, list[str]]:
    from learnops.errors import LearnopsError

    out: dict[str, list[str]] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        num, slash, den = value.partition("/")
        if not sep or not slash or not name.strip() or not num.strip() or not den.strip():
            raise LearnopsError(
                f"--ratio-metrics must look like accuracy=correct/attempted ({part.strip()!r})"
            )
        out[name.strip()] = [num.strip(), den.strip()]
    return out


def _parse_floats(text: str | None, option: str) -> dict[str, float]:
    from learnops.errors import LearnopsError

    out: dict[str, float] = {}
    for name, value in _parse_pairs(text, option).items():
        try:
            out[name] = float(value)
        except ValueError:
            raise LearnopsError(f"{option} must look like accuracy=0.02 ({name}={value})") from None
    return out


def _load_params(params_path: Path | None):
    """Params from ``--params`` (None: the built-in defaults, never an implicit params.yaml)."""
    from learnops.config import ConfigError, Params, load_params
    from learnops.errors import LearnopsError

    if params_path is None:
        return Params(root=Path.cwd()), False
    if not params_path.is_file():
        raise LearnopsError(f"params file not found: {params_path}")
    try:
        return load_params(params_path), True
    except ConfigError as exc:
        raise LearnopsError(str(exc)) from None


def _store_arms(params, experiment: str | None) -> dict[str, float] | None:
    """The arms of ``experiment`` in the event store, when the store exists and has it."""
    if not experiment:
        return None
    url = params.db_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        return None
    try:
        from learnops.ab.experiments import get_experiment
        from learnops.data.store import EventStore

        store = EventStore(url)
        try:
            return dict(get_experiment(store, experiment).arms)
        finally:
            store.dispose()
    except Exception:  # no store, no such experiment: the plan comes from elsewhere
        return None


def _load_events(events: Path, experiment: str | None):
    """(events, experiment name or None): decisions tables are mapped to EVENTS."""
    from learnops.ab.analysis import events_from_decisions, is_decisions_table
    from learnops.io import read_table

    df = read_table(events)
    if is_decisions_table(df):
        ev = events_from_decisions(df, experiment)
        return ev, ev.attrs["experiment"]
    return df, None


def _settings(
    df,
    params,
    from_file: bool,
    *,
    control: str | None,
    metrics: str | None,
    alpha: float | None,
    ratio_metrics: str | None,
    correction: str | None,
    primary_metric: str | None,
    guardrail_margins: str | None,
    tuning_n: int | None,
) -> dict:
    """analyze()/aa_harness() settings: command-line options over --params over defaults."""
    from learnops.ab.analysis import DEFAULT_METRICS, params_kwargs

    kw = params_kwargs(params.ab, df.columns) if from_file else params_kwargs(params.ab)
    if not from_file:  # built-in defaults: no ratio metrics, no margins, fixed-horizon
        kw.update(ratio_metrics={}, guardrail_margins={}, primary_metric=None)
    ratios = _parse_ratios(ratio_metrics)
    if ratios:
        kw["ratio_metrics"] = ratios
    if metrics is not None:
        kw["metrics"] = [m.strip() for m in metrics.split(",") if m.strip()]
    elif not from_file:
        kw["metrics"] = list(DEFAULT_METRICS)
        if kw["ratio_metrics"]:  # ratio metrics given: only the default metrics present
            kw["metrics"] = [m for m in DEFAULT_METRICS if m in df.columns]
    if control is not None:
        kw["control"] = control
    if alpha is not None:
        kw["alpha"] = alpha
    if correction is not None:
        kw["correction"] = correction
    if primary_metric is not None:
        kw["primary_metric"] = primary_metric
    elif kw["primary_metric"] not in [*kw["metrics"], *kw["ratio_metrics"]]:
        kw["primary_metric"] = None
    margins = _parse_floats(guardrail_margins, "--guardrail-margins")
    if margins:
        kw["guardrail_margins"] = margins
    if tuning_n is not None:
        kw["tuning_n"] = tuning_n
    return kw


def _plan(split_text: str | None, params, from_file: bool, experiment: str | None):
    from learnops.ab.analysis import planned_split_for

    given = _parse_split(split_text)
    if given is not None:
        return given, "--planned-split"
    record = _store_arms(params, experiment)
    if not from_file and record is None:
        # without --params only the experiment's own plan: its record, or the simulator's
        # plan for the simulator's experiment (never params.yaml picked up silently)
        if experiment is not None and experiment == params.simulate.ab_test:
            return dict(params.simulate.ab_groups), "simulate.ab_groups (default params)"
        return None, None
    return planned_split_for(params, experiment, record)


ParamsFileOpt = typer.Option(
    None, "--params", help="params.yaml whose ab section sets the defaults (default: built-in)."
)


@app.command()
def analyze(
    events: Path = typer.Argument(..., help=EVENTS_HELP),
    out: Path = typer.Option(..., "--out", help="Output directory for results.json."),
    control: str = typer.Option(None, help="Control group (default gpt4)."),
    metrics: str = typer.Option(
        None, help="Comma-separated metrics (default accuracy,engagement,success)."
    ),
    alpha: float = typer.Option(None, help="Significance level (default 0.05), after correction."),
    planned_split: str = typer.Option(
        None,
        help="Planned split for the SRM check, e.g. ml=0.4,gpt4=0.4,hybrid=0.2 (default: the "
        "experiment's record or params; without a plan SRM is reported as not checked).",
    ),
    practical_threshold: float = typer.Option(
        None, help="A winner's primary-metric CI lower bound must exceed this (default 0.01)."
    ),
    min_sample_size: int = typer.Option(
        None, help="Learners needed per group for a winner (default 100)."
    ),
    covariates: str = typer.Option(
        None, help="CUPED covariates, e.g. engagement=pre_engagement,accuracy=pre_accuracy."
    ),
    sequential: bool = typer.Option(
        False, "--sequential", help="Anytime-valid confidence sequences (valid at every look)."
    ),
    looks: int = typer.Option(
        None, "--looks", min=1, help="Repeat the analysis at K equally spaced learner counts."
    ),
    ratio_metrics: str = typer.Option(
        None,
        "--ratio-metrics",
        help="Ratio metrics by the delta method: accuracy=correct/attempted",
    ),
    correction: str = typer.Option(None, help="Multiplicity correction: holm (default) or bh."),
    primary_metric: str = typer.Option(
        None, "--primary-metric", help="Metric that decides the winner (default engagement)."
    ),
    guardrail_margins: str = typer.Option(
        None, "--guardrail-margins", help="Non-inferiority margins, e.g. accuracy=0.02,success=0.03"
    ),
    tuning_n: int = typer.Option(
        None,
        "--tuning-n",
        min=2,
        help="Sequential: learners per comparison where the CS is tightest.",
    ),
    experiment: str = typer.Option(
        None, "--experiment", help="A/B test to analyse when EVENTS are decisions with several."
    ),
    params: Path = ParamsFileOpt,
) -> None:
    """Analyze EVENTS and write DIR/results.json (srm, comparisons, winner; looks with --looks)."""
    from learnops.ab.analysis import analyze as run_analysis
    from learnops.io import write_json

    p, from_file = _load_params(params)
    df, exp_name = _load_events(events, experiment)
    kw = _settings(
        df, p, from_file, control=control, metrics=metrics, alpha=alpha,
        ratio_metrics=ratio_metrics, correction=correction, primary_metric=primary_metric,
        guardrail_margins=guardrail_margins, tuning_n=tuning_n,
    )  # fmt: skip
    if practical_threshold is not None:
        kw["practical_threshold"] = practical_threshold
    if min_sample_size is not None:
        kw["min_sample_size"] = min_sample_size
    kw["method"] = "sequential" if sequential else "fixed"
    split, source = _plan(planned_split, p, from_file, exp_name)
    results = run_analysis(
        df,
        planned_split=split,
        plan_source=source,
        covariates=_parse_pairs(covariates, "--covariates"),
        looks=looks,
        **kw,
    )
    path = out / "results.json"
    write_json(path, results)
    typer.echo(f"{path}: {results['decision']}")
    srm = results["srm"]
    if not srm["checked"]:
        typer.echo(f"note: {srm['note']}")
    if looks:
        first = next(
            (
                lk["look"]
                for lk in results["looks"]
                if any(c["significant"] for c in lk["comparisons"])
            ),
            None,
        )
        typer.echo(
            f"{len(results['looks'])} looks ({results['method']}): "
            + (f"first significant comparison at look {first}" if first else "none significant")
        )


@app.command()
def aa(
    events: Path = typer.Argument(..., help=EVENTS_HELP),
    runs: int = typer.Option(200, "--runs", min=1, help="Re-randomizations."),
    looks: int = typer.Option(None, "--looks", min=1, help="Looks per run (default: one)."),
    out: Path = typer.Option(None, "--out", help="Write DIR/aa.json."),
    planned_split: str = typer.Option(
        None, help="Split to re-randomize into (default: the experiment's plan, else observed)."
    ),
    control: str = typer.Option(None, help="Control arm (default gpt4)."),
    metrics: str = typer.Option(None, help="Comma-separated metrics."),
    ratio_metrics: str = typer.Option(
        None, "--ratio-metrics", help="e.g. accuracy=correct/attempted"
    ),
    covariates: str = typer.Option(None, help="CUPED covariates, e.g. engagement=pre_engagement."),
    alpha: float = typer.Option(None, help="Significance level (default 0.05)."),
    correction: str = typer.Option(None, help="holm (default) or bh."),
    tuning_n: int = typer.Option(None, "--tuning-n", min=2, help="Sequential tuning n*."),
    seed: int = typer.Option(0, help="Seed of the re-randomizations."),
    experiment: str = typer.Option(None, "--experiment", help="A/B test in a decisions table."),
    params: Path = ParamsFileOpt,
) -> None:
    """A/A harness: re-randomize the learners of EVENTS N times into the planned split and
    report each method's false-positive rate and CI coverage per metric (table; JSON with --out)."""
    from learnops.ab.aa import aa_harness, summary_table
    from learnops.io import write_json

    p, from_file = _load_params(params)
    df, exp_name = _load_events(events, experiment)
    kw = _settings(
        df, p, from_file, control=control, metrics=metrics, alpha=alpha,
        ratio_metrics=ratio_metrics, correction=correction, primary_metric=None,
        guardrail_margins=None, tuning_n=tuning_n,
    )  # fmt: skip
    split, _ = _plan(planned_split, p, from_file, exp_name)
    result = aa_harness(
        df,
        runs=runs,
        looks=looks,
        planned_split=split,
        control=kw["control"],
        metrics=kw["metrics"],
        ratio_metrics=kw["ratio_metrics"],
        covariates=_parse_pairs(covariates, "--covariates"),
        alpha=kw["alpha"],
        correction=kw["correction"],
        tuning_n=kw["tuning_n"],
        seed=seed,
    )
    typer.echo(summary_table(result))
    if out is not None:
        path = out / "aa.json"
        write_json(path, result)
        typer.echo(f"results: {path}")


# ---------------------------------------------------------------------------------------------
# the experiment lifecycle in the event store

ParamsOpt = typer.Option(Path("params.yaml"), "--params", help="params.yaml to read.")
DbUrlOpt = typer.Option(None, "--db-url", help="Event store URL (default: params / env).")


def _params_and_store(params_path: Path, db_url: str | None):
    """(params, EventStore): params from ``params_path`` (defaults when the default file is
    absent); the store at ``--db-url``, else env ``LEARNOPS_DB_URL``, else params."""
    import os

    from learnops.config import ConfigError, Params, load_params
    from learnops.data.store import EventStore
    from learnops.errors import LearnopsError

    if db_url:
        os.environ["LEARNOPS_DB_URL"] = db_url
    if params_path.is_file():
        try:
            params = load_params(params_path)
        except ConfigError as exc:
            raise LearnopsError(str(exc)) from None
    elif params_path != Path("params.yaml"):
        raise LearnopsError(f"params file not found: {params_path}")
    else:
        params = Params(root=Path.cwd())
    return params, EventStore(params.db_url)


def _arms_text(arms: dict[str, float]) -> str:
    return ",".join(f"{a}={s:g}" for a, s in arms.items())


def _when(ts) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


@app.command()
def start(
    name: str = typer.Argument(..., help="Experiment name: 1-64 of A-Z a-z 0-9 _ . -"),
    arms: str = typer.Option(
        ..., "--arms", help="Arm shares summing to 1, e.g. ml=0.4,gpt4=0.4,hybrid=0.2."
    ),
    min_sample_size: int = typer.Option(
        None, "--min-sample-size", help="Learners needed per arm for a winner (default: params)."
    ),
    description: str = typer.Option("", "--description", help="What the experiment tests."),
    control: str = typer.Option(None, "--control", help="Control arm (default: params ab)."),
    params: Path = ParamsOpt,
    db_url: str | None = DbUrlOpt,
) -> None:
    """Start experiment NAME: the server assigns learners to its arms from now on."""
    from learnops.ab.experiments import parse_arms, start_experiment

    arm_shares = parse_arms(arms)
    p, store = _params_and_store(params, db_url)
    try:
        exp = start_experiment(
            store,
            name,
            arm_shares,
            min_sample_size=p.ab.min_sample_size if min_sample_size is None else min_sample_size,
            description=description,
            control=control or p.ab.control,
            created_by="cli",
            metrics=list(p.ab.metrics),
        )
    finally:
        store.dispose()
    typer.echo(
        f"started {exp.name}: arms {_arms_text(exp.arms)}, control {exp.control}, "
        f"min {exp.min_sample_size} learners per arm"
    )


@app.command()
def status(
    name: str = typer.Argument(None, help="One experiment (default: all)."),
    params: Path = ParamsOpt,
    db_url: str | None = DbUrlOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The experiments: status, arms, what each arm has logged so far, winner."""
    import json

    from learnops.ab.experiments import arm_counts, get_experiment, list_experiments

    _, store = _params_and_store(params, db_url)
    try:
        exps = [get_experiment(store, name)] if name else list_experiments(store)
        counts = arm_counts(store, [e.name for e in exps])
    finally:
        store.dispose()
    items = []
    for e in exps:
        d = e.to_dict()
        d["logged"] = counts.get(e.name, {})
        if name:
            d["results"] = e.results
        items.append(d)
    if as_json:
        typer.echo(json.dumps(items[0] if name else {"experiments": items}, indent=2))
        return
    if not exps:
        typer.echo("no experiments (start one with: learnops ab start NAME --arms ...)")
        return
    if name:
        _print_details(exps[0], counts.get(exps[0].name, {}))
        return
    typer.echo(
        f"{'name':<24} {'status':<8} {'started':<20} {'arms':<28} "
        f"{'logged (decisions/learners)':<34} winner"
    )
    for e in exps:
        logged = counts.get(e.name, {})
        per_arm = " ".join(
            f"{a}={logged.get(a, {}).get('decisions', 0)}/{logged.get(a, {}).get('learners', 0)}"
            for a in e.arms
        )
        typer.echo(
            f"{e.name:<24} {e.status:<8} {_when(e.started_at):<20} {_arms_text(e.arms):<28} "
            f"{per_arm:<34} {e.winner or '-'}"
        )


def _print_details(e, logged: dict) -> None:
    typer.echo(f"experiment   {e.name} ({e.status})")
    if e.description:
        typer.echo(f"description  {e.description}")
    typer.echo(f"started      {_when(e.started_at)}")
    typer.echo(f"stopped      {_when(e.stopped_at)}")
    typer.echo(f"control      {e.control}; min {e.min_sample_size} learners per arm")
    typer.echo(f"{'arm':<8} {'share':>6} {'decisions':>10} {'learners':>9} {'w/ outcome':>11}")
    for a in list(dict.fromkeys([*e.arms, *logged])):
        c = logged.get(a, {})
        share = f"{e.arms[a]:.0%}" if a in e.arms else "-"
        typer.echo(
            f"{a:<8} {share:>6} {c.get('decisions', 0):>10} {c.get('learners', 0):>9} "
            f"{c.get('withOutcome', 0):>11}"
        )
    if e.results:
        typer.echo(f"winner       {e.winner or 'none'}")
        typer.echo(f"decision     {e.results.get('decision', '')}")


ReportsDirOpt = typer.Option(
    None, "--reports-dir", help="Reports root (default: params paths.reports_dir)."
)


@app.command()
def stop(
    name: str = typer.Argument(..., help="The running experiment."),
    params: Path = ParamsOpt,
    db_url: str | None = DbUrlOpt,
    reports_dir: Path = ReportsDirOpt,
) -> None:
    """Stop experiment NAME: analyse it, store the result, write reports/ab/NAME.{json,html}."""
    from learnops.ab.experiments import stop_experiment
    from learnops.errors import LearnopsError

    p, store = _params_and_store(params, db_url)
    try:
        result = stop_experiment(store, p, name, reports_dir=reports_dir)
    finally:
        store.dispose()
    typer.echo(f"stopped {name}: {result.verdict}")
    typer.echo(
        f"{result.n_decisions} decisions ({result.n_with_outcomes} with an outcome) from "
        f"{result.n_learners} learners"
    )
    if result.report_error:
        raise LearnopsError(
            f"{name} is stopped but its reports were not written ({result.report_error}); "
            f"write them with: learnops ab report {name}"
        )
    typer.echo(f"report: {result.html_path}")
    typer.echo(f"results: {result.json_path}")


@app.command()
def report(
    name: str = typer.Argument(..., help="A stopped experiment."),
    params: Path = ParamsOpt,
    db_url: str | None = DbUrlOpt,
    reports_dir: Path = ReportsDirOpt,
) -> None:
    """Write the reports of a stopped experiment again from its stored results."""
    from learnops.ab.experiments import rewrite_reports

    p, store = _params_and_store(params, db_url)
    try:
        json_path, html_path = rewrite_reports(store, p, name, reports_dir)
    finally:
        store.dispose()
    typer.echo(f"report: {html_path}")
    typer.echo(f"results: {json_path}")
