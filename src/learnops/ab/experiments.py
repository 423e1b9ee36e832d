"""The decision-policy experiment lifecycle in the event store: start → (server assigns arms and
logs decisions with ``ab_test``/``ab_group``) → stop (analysis, stored result, reports).

Rules: at most one experiment runs at a time (a decision belongs to one experiment); names are
unique for ever (a stopped experiment keeps its name and results); arms are among
:data:`learnops.contracts.ARMS` with finite shares > 0 that sum to 1; the control is one of the
arms. Every refused operation raises a :class:`learnops.errors.LearnopsError` subclass and
writes nothing: :class:`InvalidExperiment` (bad input), :class:`ExperimentConflict` (one is
running, the name is used, it is not running) and :class:`ExperimentNotFound`.

Stopping runs the analysis first (if it fails unexpectedly nothing is written and the experiment
keeps running), then records the results, winner, status and the learners' assignments in one
transaction, then writes the reports. An experiment without usable data (no decisions, none
with an outcome yet, or data the analysis cannot compare, e.g. no control learners) is stopped
all the same, with results that say why (``reason`` ``no_data`` or ``not_analyzable``) and no
winner: whoever stops an experiment wants the traffic back on the default arm whatever the data.

Concurrency: start and stop take the database's write lock on the experiments table before
reading it (PostgreSQL ``LOCK TABLE … SHARE ROW EXCLUSIVE``; SQLite a write statement), and a
start re-counts the running experiments after its insert, so two concurrent starts cannot both
succeed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learnops.ab.assign import DEFAULT_METRICS, assign_group
from learnops.contracts import ARMS
from learnops.errors import LearnopsError

if TYPE_CHECKING:
    from learnops.config import Params
    from learnops.data.store import EventStore

__all__ = [
    "Experiment",
    "ExperimentConflict",
    "ExperimentError",
    "ExperimentNotFound",
    "InvalidExperiment",
    "StopResult",
    "arm_counts",
    "get_experiment",
    "list_experiments",
    "parse_arms",
    "running_experiment",
    "start_experiment",
    "stop_experiment",
]

RUNNING = "running"
STOPPED = "stopped"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Tolerance on the sum of the arm shares.
SHARE_TOLERANCE = 1e-9


class ExperimentError(LearnopsError):
    """A refused lifecycle operation. ``detail`` is the message without the caller's input
    (for HTTP answers); ``field`` the input at fault, when one is."""

    def __init__(self, message: str, detail: str | None = None, field: str | None = None):
        super().__init__(message)
        self.detail = detail or message
        self.field = field


class InvalidExperiment(ExperimentError):
    """Bad experiment input: name, arms, shares, control, sample size (HTTP 422)."""


class ExperimentConflict(ExperimentError):
    """The operation conflicts with the stored state: another experiment runs, the name is
    taken, the experiment is not running (HTTP 409)."""


class ExperimentNotFound(ExperimentError):
    """No experiment has that name (HTTP 404)."""


@dataclass(frozen=True)
class Experiment:
    """One experiment as stored in ``ml_ab_test_results``."""

    name: str
    arms: dict[str, float]
    status: str  # "running" | "stopped"
    started_at: datetime
    stopped_at: datetime | None
    description: str
    min_sample_size: int
    control: str
    winner: str | None
    results: dict[str, Any] | None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    created_by: str | None = None

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def arm_of(self, learner_hash: str) -> str:
        """The learner's arm: deterministic in (name, learner_hash) and the shares."""
        return assign_group(self.name, learner_hash, self.arms)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (camelCase, as the API answers); ``results`` left out."""
        decision = (self.results or {}).get("decision")
        return {
            "name": self.name,
            "status": self.status,
            "arms": dict(self.arms),
            "control": self.control,
            "minSampleSize": self.min_sample_size,
            "metrics": list(self.metrics),
            "description": self.description,
            "startedAt": self.started_at.isoformat(),
            "stoppedAt": self.stopped_at.isoformat() if self.stopped_at else None,
            "winner": self.winner,
            "decision": decision,
            "createdBy": self.created_by,
        }


@dataclass(frozen=True)
class StopResult:
    """A stopped experiment, its analysis (the report JSON) and the report files."""

    experiment: Experiment
    results: dict[str, Any]
    json_path: Path | None
    html_path: Path | None
    n_decisions: int
    n_learners: int
    n_with_outcomes: int
    assignments_written: int = 0
    report_error: str | None = field(default=None)

    @property
    def winner(self) -> str | None:
        return self.experiment.winner

    @property
    def verdict(self) -> str:
        """The headline: the analysis decision text."""
        return str(self.results.get("decision", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.to_dict(),
            "winner": self.winner,
            "decision": self.verdict,
            "reason": self.results.get("reason"),
            "srmMismatch": (self.results.get("srm") or {}).get("mismatch"),
            "nDecisions": self.n_decisions,
            "nLearners": self.n_learners,
            "nWithOutcomes": self.n_with_outcomes,
            "reports": {
                "json": str(self.json_path) if self.json_path else None,
                "html": str(self.html_path) if self.html_path else None,
            },
            "reportError": self.report_error,
        }


# ---------------------------------------------------------------------------------------------
# validation


def check_name(name: str) -> str:
    """``name`` when it is 1..64 characters of ``[A-Za-z0-9_.-]``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidExperiment(
            "experiment name must be 1 to 64 characters of letters, digits, '_', '.' or '-'",
            field="name",
        )
    return name


def check_arms(arms: Mapping[str, float]) -> dict[str, float]:
    """The arms as a plain dict (in :data:`ARMS` order) when valid: known arms, at least two,
    finite shares > 0 summing to 1 (±1e-9)."""
    if not isinstance(arms, Mapping):
        raise InvalidExperiment(
            "arms must map arm names to shares, e.g. ml=0.5,gpt4=0.5", field="arms"
        )
    unknown = [str(a) for a in arms if a not in ARMS]
    if unknown:
        raise InvalidExperiment(
            f"unknown arm(s) {', '.join(sorted(unknown))}; arms are {', '.join(ARMS)}",
            detail=f"unknown arm; arms are {', '.join(ARMS)}",
            field="arms",
        )
    if len(arms) < 2:
        raise InvalidExperiment(
            f"an experiment needs at least 2 arms, got {len(arms)}", field="arms"
        )
    out: dict[str, float] = {}
    for arm in ARMS:
        if arm not in arms:
            continue
        value = arms[arm]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidExperiment(f"the share of arm {arm} must be a number", field="arms")
        share = float(value)
        if not math.isfinite(share) or share <= 0:
            raise InvalidExperiment(
                f"the share of arm {arm} must be finite and > 0, got {share}",
                detail=f"the share of arm {arm} must be finite and > 0",
                field="arms",
            )
        out[arm] = share
    total = math.fsum(out.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise InvalidExperiment(f"arm shares must sum to 1, they sum to {total:.12g}", field="arms")
    return out


def parse_arms(text: str) -> dict[str, float]:
    """``"ml=0.4,gpt4=0.4,hybrid=0.2"`` → ``{"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}``, checked
    like :func:`check_arms` (a repeated arm is refused)."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            share = float(value)
        except ValueError:
            raise InvalidExperiment(
                f"arms must look like ml=0.4,gpt4=0.4,hybrid=0.2 (bad part {part.strip()!r})"
            ) from None
        if name in out:
            raise InvalidExperiment(f"arm {name} is given twice")
        out[name] = share
    return check_arms(out)


def _check_control(control: str, arms: Mapping[str, float]) -> str:
    if control not in arms:
        detail = f"the control arm must be one of the arms ({', '.join(arms)})"
        raise InvalidExperiment(
            f"control arm {control!r} is not one of the arms ({', '.join(arms)})"
            if isinstance(control, str) and len(control) <= 32
            else detail,
            detail=detail,
            field="control",
        )
    return control


# ---------------------------------------------------------------------------------------------
# store access


def _from_row(row: Any) -> Experiment:
    metrics = tuple(row.metrics) if row.metrics else DEFAULT_METRICS
    return Experiment(
        name=row.name,
        arms={str(k): float(v) for k, v in (row.groups or {}).items()},
        status=row.status,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        description=row.description or "",
        min_sample_size=int(row.min_sample_size),
        control=row.control or "gpt4",
        winner=row.winner,
        results=row.results,
        metrics=metrics,
        created_by=row.created_by,
    )


def running_experiment(store: EventStore) -> Experiment | None:
    """The running experiment, or None (one query on a table of a few rows)."""
    from sqlalchemy import select

    from learnops.data.store import ABTest

    with store.session() as s:
        row = s.execute(
            select(ABTest).where(ABTest.status == RUNNING).order_by(ABTest.started_at.desc())
        ).scalars().first()  # fmt: skip
        return _from_row(row) if row is not None else None


def list_experiments(store: EventStore) -> list[Experiment]:
    """Every experiment, the most recently started first."""
    from sqlalchemy import select

    from learnops.data.store import ABTest

    with store.session() as s:
        rows = s.execute(select(ABTest).order_by(ABTest.started_at.desc(), ABTest.name)).scalars()
        return [_from_row(r) for r in rows]


def get_experiment(store: EventStore, name: str) -> Experiment:
    """The experiment called ``name``; :class:`ExperimentNotFound` when there is none."""
    from learnops.data.store import ABTest

    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ExperimentNotFound("no experiment with that name", detail="unknown experiment")
    with store.session() as s:
        row = s.get(ABTest, name)
        if row is None:
            raise ExperimentNotFound(f"no experiment named {name}", detail="unknown experiment")
        return _from_row(row)


def _lock_experiments(s: Any) -> None:
    """Serialize lifecycle writes: take the database's write lock on the experiments table
    before reading it, so that two concurrent starts cannot both see "none running"."""
    from sqlalchemy import text, update

    from learnops.data.store import ABTest

    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        s.execute(text("LOCK TABLE ml_ab_test_results IN SHARE ROW EXCLUSIVE MODE"))
    else:  # SQLite: a write statement opens the transaction with the database write lock
        s.execute(update(ABTest).where(ABTest.name.is_(None)).values(status=ABTest.status))


def start_experiment(
    store: EventStore,
    name: str,
    arms: Mapping[str, float],
    *,
    min_sample_size: int = 100,
    description: str = "",
    control: str = "gpt4",
    created_by: str = "cli",
    metrics: Sequence[str] | None = None,
) -> Experiment:
    """Start experiment ``name`` with ``arms`` (arm → share); refuses (writing nothing) a bad
    name, bad arms or shares, a control outside the arms, a name already used, and a start
    while another experiment runs."""
    from learnops.data.store import ABTest, utcnow

    check_name(name)
    arms = check_arms(arms)
    _check_control(control, arms)
    if isinstance(min_sample_size, bool) or not isinstance(min_sample_size, int):
        raise InvalidExperiment("min_sample_size must be an integer", field="minSampleSize")
    if min_sample_size < 1:
        raise InvalidExperiment(
            f"min_sample_size must be >= 1, got {min_sample_size}",
            detail="min_sample_size must be >= 1",
            field="minSampleSize",
        )
    description = str(description or "")
    if len(description) > 2000:
        raise InvalidExperiment("description must be at most 2000 characters", field="description")
    metric_list = list(metrics) if metrics else list(DEFAULT_METRICS)

    from sqlalchemy import func, select

    with store.session() as s:
        _lock_experiments(s)
        running = s.execute(select(ABTest.name).where(ABTest.status == RUNNING)).scalars().all()
        if running:
            raise ExperimentConflict(
                f"experiment {running[0]} is running; stop it before starting another"
            )
        existing = s.get(ABTest, name)
        if existing is not None:
            raise ExperimentConflict(
                f"the name {name} is already used by a {existing.status} experiment; "
                "choose another name",
                detail=f"the name is already used by a {existing.status} experiment; "
                "choose another name",
            )
        row = ABTest(
            name=name,
            description=description,
            groups=dict(arms),
            metrics=metric_list,
            min_sample_size=int(min_sample_size),
            status=RUNNING,
            started_at=utcnow(),
            stopped_at=None,
            results=None,
            winner=None,
            control=control,
            created_by=str(created_by)[:32],
        )
        s.add(row)
        s.flush()
        n_running = s.execute(
            select(func.count()).select_from(ABTest).where(ABTest.status == RUNNING)
        ).scalar_one()
        if n_running != 1:  # a concurrent start got in on a backend without the lock
            raise ExperimentConflict("another experiment was started at the same time")
        return _from_row(row)


def arm_counts(store: EventStore, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Decisions, learners and decisions with an outcome logged so far per experiment and arm:
    ``{name: {arm: {"decisions": n, "learners": n, "withOutcome": n}}}`` (one grouped query)."""
    from sqlalchemy import case, func, select

    from learnops.data.store import Decision

    t = Decision.__table__
    has_outcome = (
        t.c.next_accuracy.isnot(None)
        | t.c.next_engagement.isnot(None)
        | t.c.session_completed.isnot(None)
    )
    stmt = (
        select(
            t.c.ab_test,
            t.c.ab_group,
            func.count(),
            func.count(func.distinct(t.c.learner_hash)),
            func.sum(case((has_outcome, 1), else_=0)),
        )
        .where(t.c.ab_test.isnot(None))
        .group_by(t.c.ab_test, t.c.ab_group)
    )
    if names is not None:
        if not names:
            return {}
        stmt = stmt.where(t.c.ab_test.in_(list(names)))
    out: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for test, group, n, learners, with_outcome in conn.execute(stmt):
            out.setdefault(test, {})[str(group) if group is not None else "none"] = {
                "decisions": int(n),
                "learners": int(learners),
                "withOutcome": int(with_outcome or 0),
            }
    return out


# ---------------------------------------------------------------------------------------------
# stop


def _no_data_results(
    exp: Experiment, groups: dict[str, dict[str, int]], why: str, reason: str, ab: Any
) -> dict[str, Any]:
    """The results of an experiment stopped without an analysis: why, and what was logged."""
    return {
        "status": "not_analyzed",
        "srm": None,
        "comparisons": [],
        "winner": None,
        "decision": f"no winner: {why}",
        "reason": reason,
        "control": exp.control,
        "treatments": [a for a in exp.arms if a != exp.control],
        "metrics": list(exp.metrics),
        "groups": groups,
        "unit": "learner",
        "alpha": ab.alpha if ab else 0.05,
        "correction": "holm",
        "practical_threshold": ab.practical_threshold if ab else 0.01,
        "min_sample_size": exp.min_sample_size,
    }


def analyze_experiment(
    exp: Experiment, decisions: Any, params: Params | None
) -> tuple[dict[str, Any], Any]:
    """(results, events) of an experiment's logged decisions: :func:`analyze` at the learner
    level with the experiment's arms as the planned split, its control, metrics and minimum
    sample size and the ``ab`` params (alpha, practical threshold, power). Decisions without
    any outcome are left out. When nothing can be analysed (no outcomes yet, the control or
    every treatment without data) the results say so (``reason`` ``no_data`` or
    ``not_analyzable``) and have no winner."""

    from learnops.ab.analysis import analyze, events_from_decisions

    ab = params.ab if params is not None else None
    with_outcome = _outcome_mask(decisions)
    groups = _group_sizes(decisions, exp)
    if not bool(with_outcome.any()):
        why = (
            "no decisions were logged for this experiment"
            if not len(decisions)
            else "none of the logged decisions has an outcome yet"
        )
        return _no_data_results(exp, groups, why, "no_data", ab), None
    events = events_from_decisions(decisions[with_outcome], exp.name)
    metrics = [m for m in exp.metrics if m in events.columns] or list(DEFAULT_METRICS)
    # a running experiment has been looked at as it ran: anytime-valid (sequential) inference
    # by default (params ab.method), the other ab settings from params
    settings = {"method": "sequential"}
    if ab is not None:
        from learnops.ab.analysis import params_kwargs

        settings = params_kwargs(ab, events.columns)
        for key in ("control", "metrics", "min_sample_size"):
            settings.pop(key)
        if settings["primary_metric"] not in [*metrics, *settings["ratio_metrics"]]:
            settings["primary_metric"] = None
        if ab.looks:  # the course of the analysis over the experiment (the report's CS figure)
            settings["looks"] = ab.looks
    try:
        results = analyze(
            events,
            control=exp.control,
            metrics=metrics,
            min_sample_size=exp.min_sample_size,
            planned_split=dict(exp.arms),
            plan_source="experiment record",
            **settings,
        )
    except LearnopsError as exc:  # e.g. the control arm has no learners with outcomes
        return _no_data_results(exp, groups, str(exc), "not_analyzable", ab), events
    return results, events


#: The outcome columns the analysed metrics come from (accuracy, engagement, success).
OUTCOME_COLUMNS = ("next_accuracy", "next_engagement", "session_completed")


def _outcome_mask(decisions: Any) -> Any:
    """A boolean array: the decision has at least one analysed outcome."""
    import numpy as np

    if not len(decisions):
        return np.zeros(0, dtype=bool)
    return decisions[list(OUTCOME_COLUMNS)].notna().any(axis=1).to_numpy()


def _group_sizes(decisions: Any, exp: Experiment) -> dict[str, dict[str, int]]:
    """Learners and decisions logged per arm (every planned arm listed)."""
    out = {a: {"n_learners": 0, "n_rows": 0} for a in exp.arms}
    if len(decisions):
        g = decisions.groupby(decisions["ab_group"].astype(str))
        for arm, n_rows in g.size().items():
            out.setdefault(str(arm), {})["n_rows"] = int(n_rows)
        for arm, n in g["learner_hash"].nunique().items():
            out[str(arm)]["n_learners"] = int(n)
    return out


def _assignments(decisions: Any) -> list[dict[str, Any]]:
    """One row per learner: the arm of its first logged decision and that decision's time."""
    if not len(decisions):
        return []
    first = (
        decisions.dropna(subset=["ab_group"])
        .sort_values(["timestamp", "decision_id"], kind="mergesort")
        .drop_duplicates("learner_hash", keep="first")
    )
    return [
        {"learner_hash": str(h), "group": str(g), "assigned_at": ts.to_pydatetime()}
        for h, g, ts in zip(
            first["learner_hash"], first["ab_group"], first["timestamp"], strict=True
        )
    ]


def _insert_assignments(s: Any, name: str, rows: list[dict[str, Any]]) -> int:
    """Insert the assignments of learners not yet recorded for ``name``; the count written."""
    from sqlalchemy import insert, select

    from learnops.data.store import ABAssignment

    if not rows:
        return 0
    table = ABAssignment.__table__
    known = set(s.execute(select(table.c.learner_hash).where(table.c.test_name == name)).scalars())
    new = [{"test_name": name, **r} for r in rows if r["learner_hash"] not in known]
    if not new:
        return 0
    dialect = s.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):  # a row the server wrote meanwhile is kept
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = dialect_insert(table).on_conflict_do_nothing()
    else:
        stmt = insert(table)
    for start in range(0, len(new), 5000):
        s.execute(stmt, new[start : start + 5000])
    return len(new)


def report_payload(
    exp: Experiment,
    results: dict[str, Any],
    n_decisions: int,
    n_learners: int,
    n_with_outcomes: int,
) -> dict[str, Any]:
    """The stored results and the report JSON: the analysis plus the experiment's metadata."""
    from learnops.io import jsonable

    meta = {
        "name": exp.name,
        "arms": dict(exp.arms),
        "control": exp.control,
        "metrics": list(exp.metrics),
        "min_sample_size": exp.min_sample_size,
        "description": exp.description,
        "created_by": exp.created_by,
        "started_at": exp.started_at,
        "stopped_at": exp.stopped_at,
        "n_decisions": n_decisions,
        "n_learners": n_learners,
        "n_with_outcomes": n_with_outcomes,
    }
    return jsonable({**results, "experiment": meta})


def stop_experiment(
    store: EventStore,
    params: Params | None,
    name: str,
    *,
    reports_dir: str | Path | None = None,
) -> StopResult:
    """Stop the running experiment ``name``: analyse its logged decisions, then in one
    transaction record the results, the winner (if any), ``stopped`` and the stop time, and the
    ``ab_assignments`` of learners not yet recorded; then write ``<reports_dir>/ab/<name>.json``
    and ``.html`` (default reports dir: ``params.paths.reports_dir``).

    An experiment without analysable data is stopped all the same, with results that say why
    and no winner. Refuses an unknown name (:class:`ExperimentNotFound`) and one that is not
    running (:class:`ExperimentConflict`), writing nothing. If the analysis itself fails the
    experiment keeps running (nothing is written). If writing the reports fails after the stop
    was recorded, the stop stands and ``report_error`` says what failed (write them again with
    :func:`rewrite_reports`, ``learnops ab report NAME``).

    Decisions the server logs for ``name`` while the stop runs (after the decisions were read,
    before the cached running experiment is refreshed) stay labelled in the decisions table but
    are not in the analysis."""
    from dataclasses import replace

    from sqlalchemy import update

    from learnops.data.store import ABTest, utcnow

    exp = get_experiment(store, name)
    if not exp.running:
        raise ExperimentConflict(
            f"experiment {name} is not running (it is {exp.status})",
            detail=f"the experiment is not running (it is {exp.status})",
        )

    decisions = store.read_decisions(ab_test=name)
    results, events = analyze_experiment(exp, decisions, params)
    n_with_outcomes = int(_outcome_mask(decisions).sum())
    n_learners = int(decisions["learner_hash"].nunique()) if len(decisions) else 0
    stopped = replace(exp, status=STOPPED, stopped_at=utcnow(), winner=results.get("winner"))
    payload = report_payload(stopped, results, len(decisions), n_learners, n_with_outcomes)
    stopped = replace(stopped, results=payload)

    with store.session() as s:
        _lock_experiments(s)
        n = s.execute(
            update(ABTest)
            .where(ABTest.name == name, ABTest.status == RUNNING)
            .values(
                status=STOPPED,
                stopped_at=stopped.stopped_at,
                results=payload,
                winner=stopped.winner,
            )
        ).rowcount
        if n != 1:
            raise ExperimentConflict(
                f"experiment {name} is no longer running",
                detail="the experiment is no longer running",
            )
        written = _insert_assignments(s, name, _assignments(decisions))

    json_path = html_path = None
    error = None
    try:
        json_path, html_path = write_reports(stopped, params, reports_dir, events=events)
    except Exception as exc:  # the stop is recorded; the reports can be written again
        error = f"{type(exc).__name__}: {exc}"
    return StopResult(
        experiment=stopped,
        results=payload,
        json_path=json_path,
        html_path=html_path,
        n_decisions=len(decisions),
        n_learners=n_learners,
        n_with_outcomes=n_with_outcomes,
        assignments_written=written,
        report_error=error,
    )


def reports_root(params: Params | None, reports_dir: str | Path | None) -> Path:
    """``<reports_dir>/ab`` (default reports dir: ``params.paths.reports_dir``)."""
    if reports_dir is not None:
        return Path(reports_dir) / "ab"
    if params is None:
        return Path("reports") / "ab"
    return params.path(params.paths.reports_dir) / "ab"


def write_reports(
    exp: Experiment,
    params: Params | None,
    reports_dir: str | Path | None = None,
    events: Any = None,
) -> tuple[Path, Path]:
    """Write ``<reports_dir>/ab/<name>.json`` (the stored results) and ``<name>.html`` (the
    report) atomically; returns both paths."""
    from learnops.ab.report import render_report
    from learnops.io import write_json, write_text

    if exp.results is None:
        raise LearnopsError(f"experiment {exp.name} has no results yet (it is {exp.status})")
    root = reports_root(params, reports_dir)
    json_path = root / f"{exp.name}.json"
    html_path = root / f"{exp.name}.html"
    write_json(json_path, exp.results)
    write_text(html_path, render_report(exp.results, events=events))
    return json_path, html_path


def rewrite_reports(
    store: EventStore, params: Params | None, name: str, reports_dir: str | Path | None = None
) -> tuple[Path, Path]:
    """Write the reports of a stopped experiment again from its stored results (with the time
    course recomputed from its decisions)."""
    from learnops.ab.analysis import events_from_decisions

    exp = get_experiment(store, name)
    if exp.running:
        raise ExperimentConflict(
            f"experiment {name} is running; stop it first",
            detail="the experiment is running; stop it first",
        )
    decisions = store.read_decisions(ab_test=name)
    events = None
    mask = _outcome_mask(decisions)
    if mask.any():
        events = events_from_decisions(decisions[mask], name)
    return write_reports(exp, params, reports_dir, events=events)
