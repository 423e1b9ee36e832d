"""The `learnops` command line (Typer). Heavy libraries are imported inside commands."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import typer

from learnops.errors import LearnopsError

app = typer.Typer(
    help="learnops: train, evaluate and ship adaptive-learning models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
store_app = typer.Typer(help="The event store: import data, show counts.", no_args_is_help=True)
app.add_typer(store_app, name="store")

ParamsOpt = typer.Option(Path("params.yaml"), "--params", help="params.yaml to read.")


def _params(path: Path, **overrides):
    from learnops.config import ConfigError, load_params

    try:
        return load_params(path, **overrides)
    except ConfigError as exc:
        raise LearnopsError(str(exc)) from None


def _redacted(url: str) -> str:
    """``url`` with its password hidden (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: make_engine reports it
        return url.split("@")[-1]


def _first_line(exc: BaseException) -> str:
    """The first line of a database driver's message (SQLAlchemy appends SQL and links)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


def _open_store(url: str, create: bool = True):
    """The EventStore at ``url``; an unreachable database is a one-line LearnopsError. With
    ``create=False`` a SQLite file that does not exist is refused (a mistyped path would
    otherwise become a new empty database, folders included)."""
    from sqlalchemy.exc import OperationalError

    from learnops.data.store import EventStore

    prefix = "sqlite:///"
    if not create and url.startswith(prefix) and url[len(prefix) :] not in ("", ":memory:"):
        path = Path(url[len(prefix) :])
        if not path.is_file():
            raise LearnopsError(
                f"no event store at {path} (check the path, paths.db_url or LEARNOPS_DB_URL; "
                "pass --create to make an empty one)"
            )
    try:
        return EventStore(url)
    except OperationalError as exc:
        raise LearnopsError(
            f"cannot open the event store {_redacted(url)}: {_first_line(exc)}"
        ) from None


def _store(params_path: Path, db_url: str | None, create: bool = True):
    import os

    if db_url:
        os.environ["LEARNOPS_DB_URL"] = db_url
    if not params_path.is_file() and params_path != Path("params.yaml"):
        raise LearnopsError(f"params file not found: {params_path}")
    params = _params(params_path) if params_path.is_file() else None
    if params is not None:
        return params, _open_store(params.db_url, create)
    from learnops.config import Params

    p = Params(root=Path.cwd())
    return p, _open_store(p.db_url, create)


@app.command()
def simulate(
    params: Path = ParamsOpt,
    db_url: str | None = typer.Option(None, help="Event store URL (default: params / env)."),
) -> None:
    """Simulate learners, answers and decisions into the event store (+ truth files)."""
    import os

    from learnops.data.simulate import simulate_to_store

    if db_url:
        os.environ["LEARNOPS_DB_URL"] = db_url
    p = _params(params)
    sim = simulate_to_store(p, progress=sys.stderr.isatty())
    typer.echo(
        f"simulated {len(sim.responses)} responses and {len(sim.decisions)} decisions from "
        f"{len(sim.learners)} learners into {p.db_url}"
    )


@app.command("export")
def export_cmd(
    params: Path = ParamsOpt,
    since: str | None = typer.Option(None, help="First day (YYYY-MM-DD); overrides --last-days."),
    until: str | None = typer.Option(None, help="Last day, inclusive (default: newest event)."),
    last_days: int | None = typer.Option(None, help="Window length in days before --until."),
    limit: int | None = typer.Option(None, min=1, help="Keep the most recent N rows per table."),
    min_data_points: int | None = typer.Option(None, min=0),
    out: Path | None = typer.Option(None, help="Output directory (default: paths.processed_dir)."),
    db_url: str | None = typer.Option(None, help="Event store URL (default: params / env)."),
) -> None:
    """Export a window of the event store to decisions.parquet and responses.parquet."""
    from learnops.data.export import export

    if last_days is not None and last_days < 1:
        raise LearnopsError(f"--last-days must be at least 1, got {last_days}")
    p, store = _store(params, db_url)
    updates = {
        k: v
        for k, v in {
            "since": _date(since, "--since"),
            "until": _date(until, "--until"),
            "last_days": last_days,
            "limit": limit,
            "min_data_points": min_data_points,
        }.items()
        if v is not None
    }
    cfg = p.export.model_copy(update=updates)
    result = export(store, cfg, out or p.path(p.paths.processed_dir))
    s = result.summary()
    typer.echo(
        f"exported {s['n_decisions']} decisions and {s['n_responses']} responses "
        f"({result.window.days()}, inclusive) to {result.paths['decisions'].parent}"
    )
    for name in result.empty:
        typer.echo(f"note: no {name} in the window: {name}.parquet is empty (schema only)")


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise LearnopsError(f"{flag}: expected a date YYYY-MM-DD, got {value!r}") from None


@store_app.command("import")
def store_import(
    path: Path = typer.Argument(..., help="CSV/Parquet table or mongoexport JSON lines."),
    kind: str = typer.Option(..., help="responses | decisions | mongo (seed TrainingData)."),
    mapping: str | None = typer.Option(
        None,
        "--map",
        metavar="OURS=THEIRS,…",
        help="Rename the file's columns, e.g. learner_id=user,item_id=problem_id,correct=correct.",
    ),
    timestamp_format: str | None = typer.Option(
        None,
        "--timestamp-format",
        metavar="FORMAT",
        help="strptime format of the timestamps (e.g. '%d/%m/%Y %H:%M'), or unix / unix_ms "
        "(default: ISO 8601; UTC unless an offset is given).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and count new rows; write nothing."
    ),
    params: Path = ParamsOpt,
    db_url: str | None = typer.Option(None, help="Event store URL (default: params / env)."),
    hashed_with: str | None = typer.Option(
        None,
        "--hashed-with",
        metavar="FINGERPRINT",
        help="Salt fingerprint of a pre-hashed learner_hash column (`store salt-fingerprint`).",
    ),
) -> None:
    """Import external data into the event store (all rows or none, one transaction).

    Learner ids come as learner_id (raw ids, hashed with LEARNOPS_SALT on import) or as
    learner_hash, pre-hashed with this store's salt, with --hashed-with FINGERPRINT. Rows without
    an id get one from their natural key, so importing the same file again adds nothing; a file
    without timestamps gets the import time. Bad rows are listed by line number."""
    from learnops.data.importers import import_file
    from learnops.hashing import warn_if_demo_salt

    if kind not in ("responses", "decisions", "mongo"):
        raise LearnopsError(f"--kind must be responses, decisions or mongo, got {kind!r}")
    if kind == "mongo" and hashed_with is not None:
        raise LearnopsError("--hashed-with is for tables with a learner_hash column, not mongo")
    if not path.is_file():
        raise LearnopsError(f"input file not found: {path}")
    _, store = _store(params, db_url)
    result = import_file(
        store,
        path,
        kind,
        hashed_with=hashed_with,
        mapping=mapping,
        timestamp_format=timestamp_format,
        dry_run=dry_run,
    )
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(result.message(store))
    if hashed_with is None and result.inserted and not dry_run:
        warn_if_demo_salt()


@store_app.command("salt-fingerprint")
def store_salt_fingerprint() -> None:
    """Print the fingerprint of the salt (LEARNOPS_SALT) learner ids are hashed with: pass it as
    `store import --hashed-with` with a table of pre-hashed learner_hash values."""
    import os

    from learnops.hashing import salt_fingerprint

    if "LEARNOPS_SALT" not in os.environ:
        typer.secho("note: LEARNOPS_SALT is not set: this is the public demo salt", err=True)
    typer.echo(salt_fingerprint())


@store_app.command("info")
def store_info(
    params: Path = ParamsOpt,
    db_url: str | None = typer.Option(None, help="Event store URL (default: params / env)."),
    create: bool = typer.Option(
        False, "--create", help="Create an empty SQLite store when the file does not exist."
    ),
) -> None:
    """Row counts and time range of the event store (refuses a SQLite file that does not exist,
    unless --create)."""
    from learnops.data.store import Decision, Response

    _, store = _store(params, db_url, create=create)
    typer.echo(f"store: {store!r}")
    typer.echo(f"decisions: {store.count(Decision)}")
    typer.echo(f"responses: {store.count(Response)}")
    typer.echo(f"latest event: {store.latest_timestamp()}")


@app.command()
def notebook(
    notebook: Path = typer.Argument(..., help="Notebook to run."),
    report: Path = typer.Option(..., help="HTML report to write (no code cells)."),
    executed_dir: Path = typer.Option(Path("reports/executed")),
    params: Path = typer.Option(Path("params.yaml"), "--params", help="Passed as params_path."),
) -> None:
    """Execute a pipeline notebook with papermill and render its HTML report."""
    from learnops.stages.notebook import render_report

    typer.echo(f"wrote {render_report(notebook, report, params, executed_dir)}")


@app.command()
def stage(
    name: str = typer.Argument(..., help="Stage name: simulate, export, train_mlp, fit_irt, …"),
    params: Path = ParamsOpt,
) -> None:
    """Run one pipeline stage without its notebook (same outputs and metrics, no report)."""
    from learnops.stages import STAGES, run_stage

    if name not in STAGES:
        raise LearnopsError(f"unknown stage {name!r}: use one of {', '.join(STAGES)}")
    if not params.is_file():
        raise LearnopsError(f"params file not found: {params}")
    run_stage(name, _params(params))
    typer.echo(f"stage {name}: done")


@app.command()
def ability(
    responses: Path = typer.Argument(
        ..., help="Answers: learner, item_id, correct, timestamp[, module] (CSV or Parquet)."
    ),
    out: Path = typer.Option(..., "--out", help="CSV or Parquet to write."),
    model: str | None = typer.Option(
        None, "--model", help="irt, elo or best_lr (default: irt.ability_model of params)."
    ),
    at: Path | None = typer.Option(
        None, "--at", help="(learner, timestamp) rows to estimate at (default: after the last)."
    ),
    params: Path = ParamsOpt,
) -> None:
    """Current ability and its SE per learner (or as of each --at row) from a learner model
    fitted on RESPONSES: the ability/ability_se a /decide client sends."""
    from learnops.data.splits import learner_column
    from learnops.io import read_table, write_table
    from learnops.learner_models.ability import ability_asof, fit_ability_model

    p = _params(params)
    name = model or p.irt.ability_model
    table = read_table(responses)
    lcol = learner_column(table)
    if "timestamp" not in table.columns:
        raise LearnopsError(f"{responses}: missing column: timestamp")
    fitted = fit_ability_model(name, table, p)
    if at is None:
        queries = table.groupby(lcol, as_index=False)["timestamp"].max()
        queries["timestamp"] = _one_second_after(queries["timestamp"])
    else:
        queries = read_table(at)
    est = ability_asof(fitted, table, queries)
    result = queries.reset_index(drop=True).assign(
        ability=est["ability"], ability_se=est["ability_se"], ability_model=name
    )
    write_table(out, result)
    typer.echo(f"wrote {out} ({len(result)} rows, ability model {name})")


def _one_second_after(ts):
    """One second after each timestamp (an estimate that has read every answer)."""
    import pandas as pd

    return pd.to_datetime(ts, utc=True) + pd.Timedelta(seconds=1)


models_app = typer.Typer(help="Registered model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
ModelTypeOpt = typer.Option(
    "mlp", "--model", "-m", help="Model type: mlp, irt or learner (the ability model)."
)


def _registry(params_path: Path):
    p, store = _store(params_path, None)
    from learnops.lifecycle.registry import Registry

    return Registry(store, p.path(p.paths.models_dir) / "registry")


@models_app.command("list")
def models_list(
    model: str | None = typer.Option(None, "--model", "-m", help="mlp, irt or learner"),
    params: Path = ParamsOpt,
) -> None:
    """All versions with status, data count and headline metric."""
    reg = _registry(params)
    rows = reg.list(model)
    if not rows:
        typer.echo("no model versions yet (run `learnops retrain` or `dvc repro`)")
        return
    typer.echo(f"{'type':7} {'version':8} {'status':10} {'samples':>8} {'accuracy':>9}  created")
    for v in rows:
        acc = (v.metrics or {}).get("accuracy")
        acc_s = f"{acc:9.4f}" if isinstance(acc, (int, float)) else f"{'-':>9}"
        typer.echo(
            f"{v.model_type:7} {v.version:8} {v.status:10} {v.data_count or 0:>8} {acc_s}"
            f"  {v.created_at:%Y-%m-%d %H:%M}"
        )


@models_app.command("show")
def models_show(
    version: str = typer.Argument(..., help="e.g. v3"),
    model: str = ModelTypeOpt,
    params: Path = ParamsOpt,
) -> None:
    """Everything recorded about one version (JSON)."""
    import json

    typer.echo(json.dumps(_registry(params).get(model, version).as_dict(), indent=2, default=str))


@models_app.command("deploy")
def models_deploy(
    version: str = typer.Argument(...), model: str = ModelTypeOpt, params: Path = ParamsOpt
) -> None:
    """Make a version production (the previous one is archived)."""
    v = _registry(params).deploy(model, version)
    typer.echo(f"{model} {v.version} is now in production")


@models_app.command("rollback")
def models_rollback(model: str = ModelTypeOpt, params: Path = ParamsOpt) -> None:
    """Redeploy the previous production version."""
    v = _registry(params).rollback(model)
    typer.echo(f"rolled back: {model} {v.version} is now in production")


@app.command()
def retrain(
    since: str | None = typer.Option(None, help="First day of the window (YYYY-MM-DD)."),
    limit: int | None = typer.Option(None, min=1, help="Train on the most recent N rows."),
    no_auto_deploy: bool = typer.Option(False, "--no-auto-deploy", help="Register, never deploy."),
    model: str = typer.Option("all", "--model", "-m", help="mlp, irt or all."),
    report: bool = typer.Option(True, help="Render reports/retrain.html."),
    params: Path = ParamsOpt,
) -> None:
    """Export → train → evaluate → compare with production → deploy or not → report."""
    from learnops.io import write_json
    from learnops.lifecycle import retrain as rt

    p = _params(params)
    models = list(rt.MODELS) if model == "all" else [model]
    typer.echo(
        f"retraining {', '.join(models)} (window: {since or 'params.export'}, "
        f"limit: {limit or 'none'}, auto-deploy: {not no_auto_deploy})"
    )
    outcomes = rt.retrain(
        p,
        since=_date(since, "--since"),
        limit=limit,
        auto_deploy=not no_auto_deploy,
        models=models,
        progress=sys.stderr.isatty(),
    )
    for o in outcomes:
        for line in o.summary_lines():
            typer.echo(line)
    out = p.path(p.paths.reports_dir) / "retrain" / "latest.json"
    write_json(out, outcomes)
    if report:
        from learnops.stages.notebook import run_notebook

        nb = p.root / "notebooks" / "07_register.ipynb"
        if nb.is_file():
            html = run_notebook(
                nb,
                p.path(p.paths.reports_dir) / "retrain.html",
                p.path(p.paths.reports_dir) / "executed" / "retrain",
                parameters={"params_path": str(params.resolve()), "outcomes_path": str(out)},
            )
            typer.echo(f"report: {html}")


_SUBAPPS = {
    "irt": ("learnops.irt.cli", "Item-response models: fit, partition, predict, score."),
    "mlp": ("learnops.mlp.cli", "Decision model: train, predict, explain."),
    "ab": (
        "learnops.ab.cli",
        "A/B experiments: start, status, stop, report; analyze an events table.",
    ),
    "monitor": ("learnops.monitoring.cli", "Monitoring: feature drift between two tables."),
}


def _register_subapps() -> None:
    import importlib

    for name, (module, help_text) in _SUBAPPS.items():
        sub = importlib.import_module(module).app
        app.add_typer(sub, name=name, help=help_text)
    _register_serve()


def _register_serve() -> None:
    """Top-level commands defined in their packages (each module imports only typer at load)."""
    from learnops.serve.cli import serve_command

    app.command("serve", help="Run the HTTP API (decisions, outcomes, admin MLOps, /metrics).")(
        serve_command
    )
    from learnops.lifecycle.ope_cli import ope_command

    app.command(
        "ope", help="Off-policy evaluation of a model on logged decisions (IPS, SNIPS, DR)."
    )(ope_command)
    from learnops.data.traffic import traffic_command

    app.command(
        "traffic", help="Drive a running server with simulated learners (decisions and outcomes)."
    )(traffic_command)


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings as one ``warning: …`` line (user warnings) or ``warning: Category: …``."""
    text = " ".join(str(message).split())
    if issubclass(category, UserWarning) and category is UserWarning:
        return f"warning: {text}\n"
    return f"warning: {category.__name__}: {text}\n"


def _error(message: str, details: list[str] | None = None) -> None:
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg=typer.colors.RED)
    for line in details or []:
        typer.echo(f"  {' '.join(str(line).split())}", err=True)
    sys.exit(2)


def _database_error(exc: BaseException) -> bool:
    """True for SQLAlchemy's OperationalError (database unreachable, locked, …): an operating
    condition the user fixes, not a bug. Programming errors are never caught."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.OperationalError)


def main() -> None:
    """Entry point: run the app; user errors (LearnopsError, usage errors of the command line,
    an unreachable database) print one ``error: …`` line and exit with status 2."""
    import warnings

    try:  # Typer ≥ 0.24 vendors click as typer._click: its exceptions are the ones raised
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    _register_subapps()
    warnings.formatwarning = _format_warning
    try:
        rv = app(standalone_mode=False)
    except click_exc.NoArgsIsHelpError:
        app()  # no arguments: the usual help page
    except click_exc.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _error(f"{where}{exc.format_message()}{hint}")
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except LearnopsError as exc:
        _error(str(exc), getattr(exc, "details", None))
    except Exception as exc:
        if not _database_error(exc):
            raise
        _error(
            f"the event store's database failed: {_first_line(exc)} "
            "(check LEARNOPS_DB_URL or paths.db_url)"
        )
    else:
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)
