"""The export stage: byte-identical Parquet and export.json on an unchanged store, new rows
change them, and the notebook's tables."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from conftest import tiny_params


@pytest.fixture
def params(tmp_path, monkeypatch):
    from learnops.data.simulate import simulate_to_store

    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    p = tiny_params(
        tmp_path,
        simulate={"n_learners": 60, "n_items": 16, "n_modules": 2, "days": 20},
        export={"last_days": None, "min_data_points": 10},
    )
    simulate_to_store(p)
    return p


def _digests(p) -> dict[str, str]:
    files = [
        p.path(p.paths.processed_dir) / "decisions.parquet",
        p.path(p.paths.processed_dir) / "responses.parquet",
        p.path(p.paths.reports_dir) / "metrics" / "export.json",
    ]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_rerun_is_byte_identical_and_a_new_row_changes_the_output(params):
    from learnops.data.store import EventStore
    from learnops.stages import export

    first = export.run(params)
    before = _digests(params)
    again = export.run(params)
    assert again.written == {"decisions": False, "responses": False}
    assert _digests(params) == before
    metrics = json.loads((params.path("reports/metrics/export.json")).read_text())
    assert metrics == first.summary and metrics["n_decisions"] == len(first.decisions)

    store = EventStore(params.db_url)
    try:
        row = first.responses.iloc[[-1]].copy()
        row["response_id"] = "new-response"
        row["timestamp"] = row["timestamp"] + pd.Timedelta(minutes=5)
        store.insert_responses(row)
    finally:
        store.dispose()
    third = export.run(params)
    after = _digests(params)
    assert third.written["responses"] and after["responses.parquet"] != before["responses.parquet"]
    assert after["export.json"] != before["export.json"]  # the window's end moved
    assert third.summary["n_responses"] == first.summary["n_responses"] + 1


def test_tables(params):
    from learnops.stages import export

    res = export.run(params)
    dec, resp = res.decisions, res.responses
    assert res.daily["responses"].sum() == len(resp) and res.daily["decisions"].sum() == len(dec)
    days = pd.to_datetime(res.daily["date"])
    assert (days.diff().dropna() == pd.Timedelta(days=1)).all()  # no gaps
    first_day = resp["timestamp"].min().floor("D")
    n_first = (resp["timestamp"].dt.floor("D") == first_day).sum()
    assert res.daily.loc[days == first_day, "responses"].item() == n_first
    ct = res.action_by_decider
    assert ct.loc["All", "All"] == len(dec)
    assert ct.loc["continue", "All"] == (dec["action"] == "continue").sum()
    cov = res.module_coverage
    assert cov["responses"].sum() == len(resp)
    m = cov.index[0]
    assert cov.loc[m, "p_correct"] == pytest.approx(resp.loc[resp["module"] == m, "correct"].mean())
    assert res.responses_per_item.sum() == len(resp)
    assert res.responses_per_learner.size == resp["learner_hash"].nunique()
    assert res.summary_table.loc["n_items", "value"] == resp["item_id"].nunique()
