"""Issue 22, item 14: an export window with decisions but no responses (or with neither) does not
stop the pipeline. Each stage without data says so, keeps the previous model, and records the skip
in its DVC metrics file; the stages downstream go on with what they have."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from learnops.data.export import parquet_bytes
from learnops.data.store import EventStore
from learnops.lifecycle.registry import Registry
from learnops.stages import (
    NO_DATA,
    Skipped,
    ab_analysis,
    evaluate,
    fit_irt,
    monitoring,
    register,
    train_mlp,
)
from learnops.stages.notebook import count_images, render_report, skip_messages

ROOT = Path(__file__).resolve().parents[1]


def _empty(p, *tables: str) -> None:
    """Make ``data/processed/<table>.parquet`` empty with its schema, as the export writes it."""
    processed = p.path(p.paths.processed_dir)
    for table in tables:
        path = processed / f"{table}.parquet"
        path.write_bytes(parquet_bytes(pd.read_parquet(path).iloc[:0]))


def _tree(d: Path) -> dict[str, bytes]:
    return {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}


def _metrics(p, name: str) -> dict:
    return json.loads(p.path(f"reports/metrics/{name}.json").read_text())


@pytest.fixture(scope="module")
def only_decisions(tmp_path_factory, tiny_project, own_store):
    """A trained project whose export window holds decisions but no responses."""
    p = tiny_project(tmp_path_factory.mktemp("only_decisions"), trained=True)
    _empty(p, "responses")
    return p


@pytest.fixture(scope="module")
def neither(tmp_path_factory, tiny_project, own_store):
    """A trained project whose exported tables are both empty (the export itself refuses such a
    window; the stages downstream must still cope with it)."""
    p = tiny_project(tmp_path_factory.mktemp("neither"), trained=True)
    _empty(p, "decisions", "responses")
    return p


# -- decisions but no responses ------------------------------------------------------------------
def test_fit_irt_skips_keeps_the_model_and_records_it(only_decisions):
    p = only_decisions
    before = _tree(p.path("models/irt"))
    res = fit_irt.run(p)
    assert isinstance(res, Skipped) and res.skipped
    assert res.message == f"{NO_DATA}: fit_irt skipped; the previous model is kept"
    assert "no responses in the export window" in res.reason
    assert _tree(p.path("models/irt")) == before
    metrics = _metrics(p, "irt")
    assert metrics["skipped"] is True and metrics["reason"] == res.reason
    fit = json.loads(before["fit.json"])
    assert metrics["kept_model"]["model"] == fit["model"] == p.irt.model
    assert metrics["kept_model"]["n_responses"] == fit["n_responses"]
    assert metrics == res.metrics


def test_evaluate_scores_the_decision_model_and_says_why_not_the_irt_one(only_decisions):
    res = evaluate.run(only_decisions, record=False, latency_calls=20)
    assert not res.skipped and res.irt is None
    assert res.irt_skipped is not None and "no responses" in res.irt_skipped.reason
    metrics = _metrics(only_decisions, "evaluate")
    assert metrics["irt"] == {"skipped": True, "reason": res.irt_skipped.reason}
    assert 0 <= metrics["accuracy"] <= 1 and metrics == res.metrics
    summary = res.summary["value"]
    assert summary["held-out IRT responses"].startswith("none") and summary["IRT AUC"] == "n/a"


def test_register_registers_the_decision_model_only(only_decisions):
    res = register.run(only_decisions)
    assert [o["model_type"] for o in res.outcomes] == ["mlp"]
    assert [s.stage for s in res.skips] == ["register irt"]
    assert "no responses in the export window" in res.skips[0].reason
    store = EventStore(only_decisions.db_url)
    try:
        versions = Registry(store, only_decisions.path("models/registry")).list()
    finally:
        store.dispose()
    assert {v.model_type for v in versions} == {"mlp"}


# -- neither -------------------------------------------------------------------------------------
def test_training_stages_skip_and_keep_both_models(neither):
    p = neither
    before = {m: _tree(p.path(f"models/{m}")) for m in ("mlp", "irt")}
    meta = json.loads(before["mlp"]["metadata.json"])
    res = train_mlp.run(p)
    assert isinstance(res, Skipped)
    assert res.message == f"{NO_DATA}: train_mlp skipped; the previous model is kept"
    assert isinstance(fit_irt.run(p), Skipped)
    assert {m: _tree(p.path(f"models/{m}")) for m in ("mlp", "irt")} == before
    metrics = _metrics(p, "train_mlp")
    assert metrics["skipped"] is True and "no decisions" in metrics["reason"]
    kept = metrics["kept_model"]
    assert kept["weights_sha256"] == meta["weights_sha256"]
    assert kept["data_fingerprint"] == meta["data"]["fingerprint"]
    assert kept["accuracy"] == pytest.approx(meta["metrics"]["accuracy"], rel=1e-9)
    assert p.path("reports/dvclive/train_mlp/plots/metrics").is_dir()  # a DVC out


def test_downstream_stages_skip_with_a_metrics_file_saying_so(neither):
    p = neither
    for stage, name in ((evaluate, "evaluate"), (ab_analysis, "ab"), (monitoring, "monitoring")):
        res = stage.run(p)
        assert isinstance(res, Skipped), name
        assert res.message.startswith(f"{NO_DATA}: ")
        assert _metrics(p, name) == {"skipped": True, "reason": res.reason}
        assert "no decisions in the export window" in res.reason
    assert json.loads(p.path("reports/ab/results.json").read_text())["skipped"] is True
    for plot, cols in evaluate.PLOT_COLUMNS.items():  # DVC plots: header only
        table = pd.read_csv(p.path(f"reports/plots/evaluate/{plot}.csv"))
        assert table.empty and tuple(table.columns) == cols


def test_register_registers_nothing(neither):
    res = register.run(neither)
    assert res.outcomes == [] and res.decisions.empty
    assert sorted(s.stage for s in res.skips) == ["register irt", "register mlp"]
    assert res.decision_markdown == "Nothing was registered."
    store = EventStore(neither.db_url)
    try:
        assert Registry(store, neither.path("models/registry")).list() == []
    finally:
        store.dispose()


def test_no_previous_model_leaves_an_empty_model_directory(tmp_path, tiny_project, own_store):
    p = tiny_project(tmp_path, trained=False, mlp={"epochs": 2})
    _empty(p, "decisions")
    res = train_mlp.run(p)
    assert isinstance(res, Skipped) and "there is no previous model" in res.message
    assert p.path("models/mlp").is_dir() and not any(p.path("models/mlp").iterdir())
    assert "kept_model" not in _metrics(p, "train_mlp")
    assert "no trained mlp model" in evaluate.missing_model(p, "mlp")


def test_a_refit_replaces_the_irt_directory_whole(tmp_path, tiny_project, own_store):
    p = tiny_project(tmp_path, trained=True)
    stale = p.path("models/irt/stale.txt")
    stale.write_text("from an older model")
    res = fit_irt.run(p)
    assert not res.skipped
    assert sorted(f.name for f in p.path("models/irt").iterdir()) == [
        "abilities.csv",
        "fit.json",
        "items.csv",
    ]
    assert not [f for f in p.path("models").iterdir() if f.name.startswith(".")]


# -- the reports ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_reports_say_no_data_draw_no_figure_and_the_runner_prints_it(neither):
    p = neither
    shutil.copytree(ROOT / "notebooks", p.root / "notebooks")
    executed = p.root / "reports" / "executed"
    for name in ("02_train_mlp", "03_fit_irt", "04_evaluate", "05_ab_analysis", "06_monitoring"):
        html = render_report(
            p.root / "notebooks" / f"{name}.ipynb",
            p.root / "reports" / f"{name}.html",
            p.root / "params.yaml",
            executed,
        )
        assert count_images(executed / f"{name}.ipynb") == 0, name
        messages = skip_messages(executed / f"{name}.ipynb")
        assert len(messages) == 1 and messages[0].startswith(f"{NO_DATA}: "), name
        assert messages[0] in html.read_text(), name
    assert (
        "train_mlp skipped; the previous model is kept"
        in (p.root / "reports" / "02_train_mlp.html").read_text()
    )
    done = subprocess.run(
        [sys.executable, "-m", "learnops.stages.notebook", "notebooks/07_register.ipynb"]
        + ["--report", "reports/register.html"],
        capture_output=True,
        text=True,
        cwd=p.root,
    )
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2 and all(NO_DATA in n for n in notes), done.stdout
    assert "Nothing was registered." in (p.root / "reports" / "register.html").read_text()


def test_learnops_stage_notes_a_skip_on_stderr(neither, capsys):
    from learnops.stages import run_stage

    assert run_stage("monitoring", neither).skipped
    assert run_stage("register", neither).outcomes == []
    notes = capsys.readouterr().err.splitlines()
    assert notes[0] == f"note: {NO_DATA}: monitoring skipped; no traffic is monitored"
    assert len(notes) == 3 and all(n.startswith(f"note: {NO_DATA}: register ") for n in notes[1:])
