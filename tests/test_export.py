"""Export stage: windowing, limits, empty/short windows, schema rejection, atomic output."""

import io
from datetime import date, timedelta

import pandas as pd
import pytest

from learnops.config import ExportConfig
from learnops.data.export import export, resolve_window
from learnops.errors import LearnopsError, NoTrainingData


@pytest.fixture
def filled(store, small_sim):
    store.insert_responses(small_sim.responses)
    store.insert_decisions(small_sim.decisions)
    return store


def test_default_window_is_last_days_before_newest_event(filled, small_sim, tmp_path):
    res = export(filled, ExportConfig(last_days=10, min_data_points=1), tmp_path)
    latest = max(small_sim.responses["timestamp"].max(), small_sim.decisions["timestamp"].max())
    since = latest - timedelta(days=10)
    exp_r = small_sim.responses[small_sim.responses["timestamp"] > since]
    assert len(res.responses) == len(exp_r)
    on_disk = pd.read_parquet(tmp_path / "responses.parquet")
    assert len(on_disk) == len(exp_r)
    assert on_disk["timestamp"].min() >= pd.Timestamp(since)
    assert (tmp_path / "decisions.parquet").is_file()


def test_since_until_and_limit(filled, small_sim, tmp_path):
    first = small_sim.responses["timestamp"].min().date()
    cfg = ExportConfig(
        since=first + timedelta(days=2),
        until=first + timedelta(days=5),
        min_data_points=1,
        limit=50,
    )
    res = export(filled, cfg, tmp_path)
    assert len(res.responses) == 50
    assert res.responses["timestamp"].max() < pd.Timestamp(first + timedelta(days=6), tz="UTC")
    assert res.responses["timestamp"].min() >= pd.Timestamp(first + timedelta(days=2), tz="UTC")


def test_empty_window_says_no_training_data(filled, tmp_path):
    cfg = ExportConfig(since=date(2001, 1, 1), until=date(2001, 2, 1))
    with pytest.raises(NoTrainingData, match="No training data available"):
        export(filled, cfg, tmp_path)
    assert not (tmp_path / "decisions.parquet").exists()


def test_empty_store_says_no_training_data(store, tmp_path):
    with pytest.raises(NoTrainingData, match="No training data available"):
        export(store, ExportConfig(), tmp_path)


def test_too_few_rows_is_a_clear_error_and_keeps_old_outputs(filled, tmp_path):
    (tmp_path / "decisions.parquet").write_bytes(b"previous export")
    with pytest.raises(LearnopsError, match="min_data_points"):
        export(filled, ExportConfig(min_data_points=10**9), tmp_path)
    assert (tmp_path / "decisions.parquet").read_bytes() == b"previous export"


def test_inverted_window_is_rejected():
    with pytest.raises(LearnopsError, match="not before"):
        resolve_window(ExportConfig(since=date(2026, 5, 1), until=date(2026, 4, 1)), None)


def test_malformed_rows_in_the_store_fail_validation(store, small_sim, tmp_path):
    bad = small_sim.decisions.copy()
    bad.loc[bad.index[:3], "next_accuracy"] = 1.7
    store.insert_responses(small_sim.responses)
    store.insert_decisions(bad)
    with pytest.raises(LearnopsError, match="next_accuracy"):
        export(store, ExportConfig(last_days=None, min_data_points=1), tmp_path)
    assert not (tmp_path / "decisions.parquet").exists()


def test_export_is_byte_stable_and_keeps_unchanged_files(filled, small_sim, tmp_path):
    """Exporting an unchanged store twice gives identical bytes and leaves the files untouched;
    a new row changes the file it belongs to (and only that one)."""
    import os

    cfg = ExportConfig(last_days=None, min_data_points=1)
    first = export(filled, cfg, tmp_path)
    assert first.written == {"decisions": True, "responses": True}
    paths = [tmp_path / "decisions.parquet", tmp_path / "responses.parquet"]
    before = {p: (p.read_bytes(), os.stat(p).st_mtime_ns, os.stat(p).st_ino) for p in paths}
    second = export(filled, cfg, tmp_path)
    assert second.written == {"decisions": False, "responses": False}
    assert {p: (p.read_bytes(), os.stat(p).st_mtime_ns, os.stat(p).st_ino) for p in paths} == before
    pd.testing.assert_frame_equal(first.decisions, second.decisions)
    # rows are in (timestamp, id) order whatever order the store returns them in
    for df, key in ((second.decisions, "decision_id"), (second.responses, "response_id")):
        order = df.sort_values(["timestamp", key], kind="mergesort").index
        assert (order == pd.RangeIndex(len(df))).all()

    extra = small_sim.decisions.iloc[[0]].copy()
    extra["decision_id"] = "extra-decision"
    filled.insert_decisions(extra)
    third = export(filled, cfg, tmp_path)
    assert third.written == {"decisions": True, "responses": False}
    assert paths[0].read_bytes() != before[paths[0]][0]
    assert paths[1].read_bytes() == before[paths[1]][0]
    assert len(pd.read_parquet(paths[0])) == len(small_sim.decisions) + 1


def test_parquet_bytes_do_not_depend_on_the_index_or_the_run():
    from learnops.data.export import parquet_bytes

    df = pd.DataFrame({"a": [1.5, 2.5, None], "b": ["x", "y", "z"]})
    shuffled = df.iloc[[2, 0, 1]].sort_index()
    assert parquet_bytes(df) == parquet_bytes(shuffled) == parquet_bytes(df.copy())
    assert parquet_bytes(df) != parquet_bytes(df.assign(a=[1.5, 2.5, 3.5]))
    assert pd.read_parquet(io.BytesIO(parquet_bytes(df))).equals(df)


# --- issue 22 item 14: a window with one table empty exports it with its schema ---


@pytest.mark.parametrize("only", ["decisions", "responses"])
def test_window_with_one_empty_table_exports_it_with_its_schema(store, small_sim, tmp_path, only):
    from learnops.data.schemas import DECISION_SCHEMA, RESPONSE_SCHEMA

    if only == "decisions":
        store.insert_decisions(small_sim.decisions)
    else:
        store.insert_responses(small_sim.responses)
    res = export(store, ExportConfig(last_days=None, min_data_points=10), tmp_path)
    empty = "responses" if only == "decisions" else "decisions"
    assert res.empty == [empty]
    assert len(getattr(res, only)) == len(getattr(small_sim, only))
    on_disk = pd.read_parquet(tmp_path / f"{empty}.parquet")
    assert on_disk.empty
    schema = RESPONSE_SCHEMA if empty == "responses" else DECISION_SCHEMA
    assert list(on_disk.columns) == [c for c in getattr(res, empty).columns]
    assert set(on_disk.columns) == set(schema.columns)
    assert str(on_disk["timestamp"].dtype) == "datetime64[ns, UTC]"
    summary = res.summary()
    assert summary[f"n_{empty}"] == 0 and summary[f"n_{only}"] > 0


def test_export_cli_says_a_table_is_empty(store, small_sim, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from learnops.cli import app

    store.insert_decisions(small_sim.decisions)
    url = store.engine.url.render_as_string(hide_password=False)  # str() masks the password
    monkeypatch.setenv("LEARNOPS_DB_URL", url)
    res = CliRunner().invoke(
        app, ["export", "--out", str(tmp_path / "out"), "--min-data-points", "10"]
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "note: no responses in the window: responses.parquet is empty" in res.output


@pytest.mark.parametrize(
    ("stage", "table", "model"),
    [("fit_irt", "responses", "irt"), ("train_mlp", "decisions", "mlp")],
)
def test_model_stage_on_an_empty_table_says_no_data_skips_and_keeps_the_model(
    store, small_sim, tmp_path, stage, table, model
):
    import importlib

    from conftest import tiny_params

    params = tiny_params(tmp_path / "proj")
    if table == "responses":
        store.insert_decisions(small_sim.decisions)
    else:
        store.insert_responses(small_sim.responses)
    res = export(store, ExportConfig(last_days=None, min_data_points=10), params.path("data/x"))
    processed = params.path(params.paths.processed_dir)
    processed.mkdir(parents=True, exist_ok=True)
    for name, path in res.paths.items():
        (processed / f"{name}.parquet").write_bytes(path.read_bytes())
    previous = params.path(params.paths.models_dir) / model / "fit.json"
    previous.parent.mkdir(parents=True, exist_ok=True)
    previous.write_text("previous model")
    # issue 22 item 14, second half: the stage says "no data", skips and goes on
    res = importlib.import_module(f"learnops.stages.{stage}").run(params)
    assert res.skipped and f"no {table} in the export window" in res.reason
    assert res.message.startswith(f"No data in the export window: {stage} skipped")
    assert "\n" not in res.message
    assert previous.read_text() == "previous model"
    assert sorted(p.name for p in previous.parent.iterdir()) == ["fit.json"]
