"""The experiment lifecycle in the store: start rules, one running at a time, deterministic arms,
stop with analysis, stored results and reports, and the ``learnops ab`` commands."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from learnops.ab.assign import assign_group
from learnops.ab.experiments import (
    ExperimentConflict,
    ExperimentNotFound,
    InvalidExperiment,
    arm_counts,
    get_experiment,
    list_experiments,
    parse_arms,
    running_experiment,
    start_experiment,
    stop_experiment,
)
from learnops.config import Params
from learnops.data.store import ABAssignment, ABTest, Decision, EventStore

ARMS3 = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}


def _n_experiments(store) -> int:
    return store.count(ABTest)


def _logged(sim_decisions: pd.DataFrame, name: str) -> pd.DataFrame:
    """The simulated decisions with the simulator's experiment renamed to ``name``."""
    d = sim_decisions.copy()
    d.loc[d["ab_test"].notna(), "ab_test"] = name
    return d


# -- parsing and validation --------------------------------------------------------------------


def test_parse_arms():
    assert parse_arms("ml=0.4, gpt4=0.4,hybrid=0.2") == ARMS3
    assert parse_arms("gpt4=0.5,ml=0.5") == {"ml": 0.5, "gpt4": 0.5}  # ARMS order


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ml=0.4,gpt4=0.4", "they sum to 0.8"),
        ("ml=0.7,gpt4=0.4", "they sum to 1.1"),
        ("ml=1", "at least 2 arms"),
        ("ml=0.5,bandit=0.5", "unknown arm(s) bandit"),
        ("ml=0,gpt4=1", "finite and > 0"),
        ("ml=-0.5,gpt4=1.5", "finite and > 0"),
        ("ml=nan,gpt4=0.5", "finite and > 0"),
        ("ml=inf,gpt4=0.5", "finite and > 0"),
        ("ml=0.5,ml=0.5", "given twice"),
        ("ml0.5,gpt4=0.5", "must look like"),
        ("ml=abc,gpt4=0.5", "must look like"),
        ("", "at least 2 arms"),
    ],
)
def test_bad_arms_are_refused(text, needle):
    with pytest.raises(InvalidExperiment) as exc:
        parse_arms(text)
    assert needle in str(exc.value)


def test_shares_sum_tolerance():
    assert parse_arms("ml=0.1,gpt4=0.2,hybrid=0.7")  # 0.1 + 0.2 + 0.7 != 1 in floats
    with pytest.raises(InvalidExperiment, match="sum to"):
        parse_arms("ml=0.5,gpt4=0.5000001")


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"name": ""}, InvalidExperiment, "1 to 64"),
        ({"name": "x" * 65}, InvalidExperiment, "1 to 64"),
        ({"name": "bad name"}, InvalidExperiment, "1 to 64"),
        ({"name": "ünï"}, InvalidExperiment, "1 to 64"),
        ({"arms": {"ml": 0.5, "gpt4": 0.6}}, InvalidExperiment, "sum to 1.1"),
        ({"arms": {"ml": 1.0}}, InvalidExperiment, "at least 2"),
        ({"arms": {"ml": 0.5, "x": 0.5}}, InvalidExperiment, "unknown arm"),
        ({"arms": {"ml": True, "gpt4": 0.5}}, InvalidExperiment, "must be a number"),
        ({"arms": {"ml": 0.5, "hybrid": 0.5}}, InvalidExperiment, "control arm 'gpt4'"),
        ({"control": "nope"}, InvalidExperiment, "control arm"),
        ({"min_sample_size": 0}, InvalidExperiment, ">= 1"),
        ({"min_sample_size": 2.5}, InvalidExperiment, "integer"),
    ],
)
def test_start_refuses_bad_input_and_writes_nothing(store, kwargs, error, needle):
    args = {"name": "exp", "arms": ARMS3, **kwargs}
    with pytest.raises(error) as exc:
        start_experiment(store, args.pop("name"), args.pop("arms"), **args)
    assert needle in str(exc.value)
    assert _n_experiments(store) == 0


# -- lifecycle ---------------------------------------------------------------------------------


def test_start_get_list_and_running(store):
    assert running_experiment(store) is None
    assert list_experiments(store) == []
    exp = start_experiment(store, "exp.v1_a-b", ARMS3, min_sample_size=7, description="d")
    assert exp.running and exp.arms == ARMS3 and exp.control == "gpt4"
    assert exp.started_at.tzinfo is not None and exp.stopped_at is None
    again = get_experiment(store, "exp.v1_a-b")
    assert again == exp
    assert running_experiment(store) == exp
    assert list_experiments(store) == [exp]
    assert exp.to_dict()["minSampleSize"] == 7
    with pytest.raises(ExperimentNotFound):
        get_experiment(store, "nope")
    with pytest.raises(ExperimentNotFound):
        get_experiment(store, "not a valid name")


def test_one_running_at_a_time_and_names_are_unique(store, tmp_path):
    start_experiment(store, "first", ARMS3)
    with pytest.raises(ExperimentConflict, match="experiment first is running"):
        start_experiment(store, "second", ARMS3)
    with pytest.raises(ExperimentConflict, match="first is running"):
        start_experiment(store, "first", ARMS3)
    assert _n_experiments(store) == 1

    params = Params(root=tmp_path)
    stop_experiment(store, params, "first")
    assert running_experiment(store) is None
    with pytest.raises(ExperimentConflict, match="already used by a stopped experiment"):
        start_experiment(store, "first", ARMS3)
    with pytest.raises(ExperimentConflict, match="not running"):
        stop_experiment(store, params, "first")
    with pytest.raises(ExperimentNotFound):
        stop_experiment(store, params, "never")
    assert _n_experiments(store) == 1
    second = start_experiment(store, "second", {"ml": 0.5, "gpt4": 0.5})
    assert running_experiment(store) == second
    assert [e.name for e in list_experiments(store)] == ["second", "first"]


def test_concurrent_starts_only_one_succeeds(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    EventStore(url).dispose()
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        store = EventStore(url, create=False)  # separate connections, as separate processes
        try:
            barrier.wait()
            start_experiment(store, f"exp{i}", ARMS3)
            outcomes.append("ok")
        except ExperimentConflict:
            outcomes.append("conflict")
        finally:
            store.dispose()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * (n - 1) + ["ok"]
    store = EventStore(url)
    assert store.count(ABTest) == 1
    assert running_experiment(store) is not None
    store.dispose()


# -- assignment --------------------------------------------------------------------------------


def test_arm_of_is_deterministic_and_follows_the_shares(store):
    from scipy.stats import chisquare

    exp = start_experiment(store, "split", ARMS3)
    hashes = [f"{i:064x}" for i in range(20_000)]
    arms = [exp.arm_of(h) for h in hashes]
    again = get_experiment(store, "split")
    assert arms == [again.arm_of(h) for h in hashes]
    counts = pd.Series(arms).value_counts()
    observed = [counts[a] for a in ARMS3]
    expected = [ARMS3[a] * len(hashes) for a in ARMS3]
    assert chisquare(observed, expected).pvalue > 0.001
    # another experiment name reshuffles learners
    other = [assign_group("other", h, ARMS3) for h in hashes[:500]]
    assert other != arms[:500]


# -- stop --------------------------------------------------------------------------------------


def test_stop_analyses_records_and_writes_reports(store, small_sim, tmp_path):
    params = Params(root=tmp_path)
    start_experiment(store, "policy", ARMS3, min_sample_size=20)
    store.insert_decisions(_logged(small_sim.decisions, "policy"))
    # decisions of another (older) experiment and outside any are not counted
    other = small_sim.decisions.head(50).copy()
    other["decision_id"] = "other-" + other["decision_id"].astype(str)
    other["ab_test"], other["ab_group"] = "older", "ml"
    store.insert_decisions(other)

    counts = arm_counts(store)
    assert set(counts) == {"policy", "older"}
    n_logged = int(small_sim.decisions["ab_test"].notna().sum())
    assert sum(c["decisions"] for c in counts["policy"].values()) == n_logged

    result = stop_experiment(store, params, "policy")
    exp = get_experiment(store, "policy")
    assert exp.status == "stopped" and exp.stopped_at is not None
    assert result.n_decisions == n_logged
    assert result.report_error is None
    assert exp.results["srm"]["planned_split"] == ARMS3
    assert exp.results["min_sample_size"] == 20
    assert exp.results["experiment"]["n_decisions"] == n_logged
    assert exp.winner == result.results["winner"] == exp.results["winner"]
    assert exp.results["groups"]["ml"]["n_rows"] == counts["policy"]["ml"]["decisions"]

    # reports: the JSON is what the store holds, the HTML is self-contained
    assert result.json_path == tmp_path / "reports" / "ab" / "policy.json"
    assert json.loads(result.json_path.read_text()) == json.loads(json.dumps(exp.results))
    html = result.html_path.read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert "<script" not in html and "policy" in html

    # assignments: one row per learner, the arm of its logged decisions; idempotent
    logged = _logged(small_sim.decisions, "policy").dropna(subset=["ab_test"])
    with store.session() as s:
        rows = s.query(ABAssignment).filter(ABAssignment.test_name == "policy").all()
        assignments = {r.learner_hash: r.group for r in rows}
    truth = logged.groupby("learner_hash")["ab_group"].first().to_dict()
    assert assignments == truth
    from learnops.ab.experiments import _insert_assignments

    with store.session() as s:
        assert _insert_assignments(s, "policy", [{"learner_hash": h, "group": "ml",
                                                  "assigned_at": exp.started_at}
                                                 for h in truth]) == 0  # fmt: skip


def test_stop_keeps_assignments_the_server_wrote(store, small_sim, tmp_path):
    start_experiment(store, "policy", ARMS3)
    d = _logged(small_sim.decisions, "policy")
    store.insert_decisions(d)
    first = d.dropna(subset=["ab_test"]).iloc[0]
    with store.session() as s:
        s.add(ABAssignment(test_name="policy", learner_hash=first["learner_hash"],
                           group=first["ab_group"], assigned_at=first["timestamp"]))  # fmt: skip
    result = stop_experiment(store, Params(root=tmp_path), "policy")
    n_learners = d.dropna(subset=["ab_test"])["learner_hash"].nunique()
    assert result.assignments_written == n_learners - 1
    assert store.count(ABAssignment) == n_learners


def test_stop_without_data_still_stops(store, small_sim, tmp_path):
    params = Params(root=tmp_path)
    start_experiment(store, "empty", ARMS3)
    result = stop_experiment(store, params, "empty")
    exp = get_experiment(store, "empty")
    assert exp.status == "stopped" and exp.winner is None
    assert exp.results["reason"] == "no_data"
    assert "no decisions were logged" in exp.results["decision"]
    assert result.html_path.is_file() and result.json_path.is_file()

    # decisions without outcomes: stopped with no_data too
    start_experiment(store, "pending", ARMS3)
    d = _logged(small_sim.decisions, "pending")
    for col in ("next_accuracy", "next_engagement", "session_completed", "total_session_time_ms"):
        d[col] = np.nan
    store.insert_decisions(d)
    result = stop_experiment(store, params, "pending")
    assert result.results["reason"] == "no_data" and result.n_with_outcomes == 0
    assert "none of the logged decisions has an outcome" in result.verdict
    assert result.n_decisions > 0


def test_stop_with_only_the_control_is_not_analyzable(store, small_sim, tmp_path):
    start_experiment(store, "lonely", ARMS3)
    d = _logged(small_sim.decisions, "lonely")
    d = d[d["ab_group"].isna() | (d["ab_group"] == "gpt4")]
    store.insert_decisions(d)
    result = stop_experiment(store, Params(root=tmp_path), "lonely")
    assert result.results["reason"] == "not_analyzable"
    assert get_experiment(store, "lonely").status == "stopped"


def test_a_failing_analysis_leaves_it_running(store, small_sim, tmp_path, monkeypatch):
    import learnops.ab.analysis as analysis

    start_experiment(store, "policy", ARMS3)
    store.insert_decisions(_logged(small_sim.decisions, "policy"))

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(analysis, "analyze", boom)
    with pytest.raises(RuntimeError):
        stop_experiment(store, Params(root=tmp_path), "policy")
    assert get_experiment(store, "policy").running
    assert store.count(ABAssignment) == 0
    assert not (tmp_path / "reports" / "ab").exists()


def test_failing_reports_keep_the_stop(store, small_sim, tmp_path, monkeypatch):
    import learnops.ab.report as report

    start_experiment(store, "policy", ARMS3)
    store.insert_decisions(_logged(small_sim.decisions, "policy"))
    monkeypatch.setattr(report, "render_report", lambda *a, **k: 1 / 0)
    result = stop_experiment(store, Params(root=tmp_path), "policy")
    assert result.report_error.startswith("ZeroDivisionError")
    assert get_experiment(store, "policy").status == "stopped"
    monkeypatch.undo()
    from learnops.ab.experiments import rewrite_reports

    json_path, html_path = rewrite_reports(store, Params(root=tmp_path), "policy")
    assert html_path.is_file() and json_path.is_file()


def test_read_decisions_filters_by_ab_test(store, small_sim):
    store.insert_decisions(_logged(small_sim.decisions, "x"))
    n = int(small_sim.decisions["ab_test"].notna().sum())
    got = store.read_decisions(ab_test="x")
    assert len(got) == n and set(got["ab_test"]) == {"x"}
    assert len(store.read_decisions(ab_test="y")) == 0
    assert len(store.read_decisions()) == len(small_sim.decisions)
    assert store.count(Decision) == len(small_sim.decisions)


# -- report ------------------------------------------------------------------------------------


def test_report_escapes_text_and_handles_missing_values():
    from learnops.ab.report import render_report

    payload = {
        "srm": None,
        "comparisons": [],
        "winner": None,
        "decision": "no winner: <b>x</b>",
        "reason": "no_data",
        "control": "gpt4",
        "metrics": ["accuracy"],
        "groups": {"ml": {"n_learners": 0, "n_rows": 0}},
        "experiment": {
            "name": "e",
            "arms": {"ml": 0.5, "gpt4": 0.5},
            "description": "<script>alert(1)</script>",
            "started_at": "bad",
            "stopped_at": None,
        },  # fmt: skip
    }
    html = render_report(payload)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_lifecycle(tmp_path, monkeypatch, small_sim):
    from learnops.ab.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("LEARNOPS_DB_URL", url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, list(args), catch_exceptions=True)

    r = run("start", "cli_exp", "--arms", "ml=0.4,gpt4=0.4,hybrid=0.2", "--min-sample-size", "20",
            "--description", "via cli")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "started cli_exp" in r.output
    r = run("start", "other", "--arms", "ml=0.5,gpt4=0.6")
    assert r.exit_code != 0 and "sum to 1.1" in str(r.exception)
    r = run("start", "other", "--arms", "ml=0.5,gpt4=0.5")
    assert r.exit_code != 0 and "cli_exp is running" in str(r.exception)

    store = EventStore(url)
    store.insert_decisions(_logged(small_sim.decisions, "cli_exp"))
    store.dispose()

    r = run("status")
    assert r.exit_code == 0 and "cli_exp" in r.output and "running" in r.output
    r = run("status", "--json")
    data = json.loads(r.output)["experiments"][0]
    assert data["name"] == "cli_exp" and data["logged"]["ml"]["decisions"] > 0
    r = run("status", "cli_exp")
    assert r.exit_code == 0 and "via cli" in r.output

    r = run("stop", "cli_exp")
    assert r.exit_code == 0, r.output
    assert "stopped cli_exp:" in r.output and "cli_exp.html" in r.output
    assert (tmp_path / "reports" / "ab" / "cli_exp.html").is_file()
    r = run("stop", "cli_exp")
    assert r.exit_code != 0 and "not running" in str(r.exception)
    r = run("status", "cli_exp", "--json")
    assert json.loads(r.output)["status"] == "stopped"
    r = run("report", "cli_exp", "--reports-dir", str(tmp_path / "again"))
    assert r.exit_code == 0 and (tmp_path / "again" / "ab" / "cli_exp.json").is_file()


def test_cli_errors_are_one_line(tmp_path, monkeypatch):
    import subprocess
    import sys

    env = {"LEARNOPS_DB_URL": f"sqlite:///{tmp_path / 'e.db'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "learnops", "ab", "stop", "nope"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no experiment named nope" in out.stderr
