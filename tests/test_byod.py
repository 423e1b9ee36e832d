"""Issue 17, bring your own data: import with a column mapping and a per-row report, idempotent
re-import, ``data.source: store`` (the simulate stage does nothing), an IRT-only store through
the whole pipeline, OPE skipped without propensities, notebooks' params without papermill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from learnops.config import ConfigError, find_params, notebook_params
from learnops.data.importers import import_file
from learnops.data.store import Decision, EventStore, Response
from learnops.errors import LearnopsError
from learnops.hashing import learner_hash

ROOT = Path(__file__).resolve().parents[1]
LSAT7 = ROOT / "data" / "examples" / "lsat7.csv"


def _their_columns(path: Path, n: int | None = None) -> pd.DataFrame:
    """LSAT7 as another platform names it: person, question, resp, answered_at (dd/mm/yyyy)."""
    df = pd.read_csv(LSAT7, dtype=str).iloc[:n]
    start = pd.Timestamp("2026-03-01 08:00")
    times = [start + pd.Timedelta(minutes=i) for i in range(len(df))]
    out = pd.DataFrame(
        {
            "person": df["learner_id"],
            "question": df["item_id"],
            "resp": df["correct"],
            "answered_at": [t.strftime("%d/%m/%Y %H:%M") for t in times],
            "platform_note": "x",  # an extra column: ignored
        }
    )
    out.to_csv(path, index=False)
    return out


MAP = "learner_id=person,item_id=question,correct=resp,timestamp=answered_at"


# -- import with a mapping -----------------------------------------------------------------------
def test_import_with_a_mapping_and_a_timestamp_format(store, tmp_path):
    f = tmp_path / "theirs.csv"
    theirs = _their_columns(f, 200)
    res = import_file(store, f, "responses", mapping=MAP, timestamp_format="%d/%m/%Y %H:%M")
    assert (res.inserted, res.skipped) == (200, 0)
    assert any("without response_id" in n for n in res.notes)
    back = store.read_responses()
    assert len(back) == 200
    assert set(back["learner_hash"]) == {learner_hash(x) for x in theirs["person"]}
    assert sorted(back["item_id"].unique()) == sorted(theirs["question"].unique())
    assert back["correct"].sum() == theirs["resp"].astype(int).sum()
    assert back["timestamp"].min() == pd.Timestamp("2026-03-01 08:00", tz="UTC")  # dd/mm read
    assert back["response_id"].str.startswith("imp-").all()


def test_a_mapping_naming_a_missing_or_unknown_column_is_one_line(store, tmp_path):
    f = tmp_path / "theirs.csv"
    _their_columns(f, 10)
    with pytest.raises(LearnopsError, match="does not have: student") as exc:
        import_file(store, f, "responses", mapping="learner_id=student,item_id=question")
    assert "person" in str(exc.value)  # the file's columns are listed
    with pytest.raises(LearnopsError, match="'score' is not a column of a responses table"):
        import_file(store, f, "responses", mapping="score=resp")
    with pytest.raises(LearnopsError, match="ours=theirs"):
        import_file(store, f, "responses", mapping="learner_id")
    assert store.count(Response) == 0


def test_a_file_without_timestamps_gets_the_import_time_and_says_so(store):
    res = import_file(store, LSAT7, "responses")
    assert res.inserted == 5000
    assert any("no timestamp column" in n and "import time" in n for n in res.notes)
    assert store.read_responses()["timestamp"].nunique() == 1


# -- bad rows --------------------------------------------------------------------------------------
def test_bad_rows_are_listed_with_their_line_numbers_and_nothing_is_written(store, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(
        "person,question,resp,answered_at\n"  # line 1
        "p1,Q1,1,01/03/2026 08:00\n"  # line 2: good
        "p2,Q1,2,01/03/2026 08:01\n"  # line 3: correct must be 0/1
        "p3,Q1,0,31/02/2026 08:02\n"  # line 4: no such date
        "\n"  # line 5: blank, skipped
        ",Q2,1,01/03/2026 08:03\n"  # line 6: no learner
        "p5,Q2,yes,01/03/2026 08:04\n"  # line 7: not a number
        '"p6",Q2,1,"01/03/2026 08:05"\n'  # line 8: good
    )
    with pytest.raises(LearnopsError) as exc:
        import_file(store, f, "responses", mapping=MAP, timestamp_format="%d/%m/%Y %H:%M")
    err = exc.value
    assert "4 of 6 row(s) are invalid, nothing was imported" in str(err)
    assert "\n" not in str(err)
    details = "\n".join(err.details)
    assert [d.split(":")[0] for d in err.details] == ["line 3", "line 4", "line 6", "line 7"]
    assert "line 3: correct must be one of [0, 1] (got '2')" in details
    assert "line 4: timestamp '31/02/2026 08:02' does not match" in details
    assert "line 6: learner_id is empty" in details
    assert "line 7: correct is not a number (got 'yes')" in details
    assert "p1" not in details and "p6" not in details  # learner ids are never shown
    assert store.count(Response) == 0


def test_only_the_first_20_bad_rows_are_listed_then_a_count(store, tmp_path):
    f = tmp_path / "many.csv"
    lines = ["learner_id,item_id,correct"] + [f"p{i},Q1,{2 + i}" for i in range(27)]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(LearnopsError, match="27 of 27 row") as exc:
        import_file(store, f, "responses")
    assert len(exc.value.details) == 21
    assert exc.value.details[0].startswith("line 2: correct")
    assert exc.value.details[19].startswith("line 21: ")
    assert exc.value.details[-1] == "… and 7 more bad row(s)"
    assert store.count(Response) == 0


def test_parquet_bad_rows_are_named_by_row(store, tmp_path):
    f = tmp_path / "bad.parquet"
    pd.DataFrame(
        {"learner_id": ["a", "b", "c"], "item_id": ["Q1", "Q1", "Q1"], "correct": [1, 0, 5]}
    ).to_parquet(f, index=False)
    with pytest.raises(LearnopsError) as exc:
        import_file(store, f, "responses")
    assert exc.value.details == ["row 3: correct must be one of [0, 1] (got '5')"]


def test_the_cli_prints_the_bad_rows_under_one_error_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("learner_id,item_id,correct\np1,Q1,1\np2,Q1,7\n")
    env = {"LEARNOPS_DB_URL": f"sqlite:///{tmp_path / 'e.db'}", "LEARNOPS_SALT": "s" * 32}
    proc = subprocess.run(
        [sys.executable, "-m", "learnops", "store", "import", str(f), "--kind", "responses"],
        capture_output=True,
        text=True,
        env={**_env(), **env},
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.splitlines()
    assert err[0].startswith("error: ") and "1 of 2 row(s) are invalid" in err[0]
    assert err[1] == "  line 3: correct must be one of [0, 1] (got '7')"
    assert "Traceback" not in proc.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("LEARNOPS_")}


# -- idempotent re-import ------------------------------------------------------------------------
def test_reimport_is_idempotent_on_the_natural_key(store, tmp_path):
    f = tmp_path / "theirs.csv"
    _their_columns(f, 300)
    first = import_file(store, f, "responses", mapping=MAP, timestamp_format="%d/%m/%Y %H:%M")
    again = import_file(store, f, "responses", mapping=MAP, timestamp_format="%d/%m/%Y %H:%M")
    assert (first.inserted, again.inserted, again.skipped) == (300, 0, 300)
    # a later export of the same platform: 100 more rows, the first 300 unchanged
    _their_columns(f, 400)
    more = import_file(store, f, "responses", mapping=MAP, timestamp_format="%d/%m/%Y %H:%M")
    assert (more.inserted, more.skipped) == (100, 300)
    assert store.count(Response) == 400


def test_reimport_without_timestamps_and_repeated_attempts(store, tmp_path, monkeypatch):
    from datetime import UTC, datetime

    import learnops.data.rows as rows

    f = tmp_path / "attempts.csv"  # the same learner answers Q1 twice: two rows, two ids
    f.write_text("learner_id,item_id,correct\na,Q1,0\na,Q1,1\nb,Q1,1\n")
    assert import_file(store, f, "responses").inserted == 3
    later = datetime(2030, 1, 1, tzinfo=UTC)  # a re-import years on: another import time
    stamp = rows.timestamps
    monkeypatch.setattr(rows, "timestamps", lambda df, fmt: stamp(df, fmt, now=later))
    res = import_file(store, f, "responses")  # assigned timestamps differ: ids do not
    assert (res.inserted, res.skipped) == (0, 3)
    assert store.count(Response) == 3


def test_dry_run_writes_nothing(store, tmp_path):
    f = tmp_path / "theirs.csv"
    _their_columns(f, 50)
    kw = {"mapping": MAP, "timestamp_format": "%d/%m/%Y %H:%M"}
    res = import_file(store, f, "responses", dry_run=True, **kw)
    assert res.dry_run and res.inserted == 50 and store.count(Response) == 0
    assert "nothing was written" in res.message(store)
    import_file(store, f, "responses", **kw)
    assert import_file(store, f, "responses", dry_run=True, **kw).skipped == 50


# -- data.source: store ----------------------------------------------------------------------------
@pytest.fixture
def store_project(tmp_path, tiny_project, monkeypatch):
    """A tiny project whose store holds the simulator's rows, switched to data.source: store."""
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    monkeypatch.setenv("LEARNOPS_SALT", "test-salt-" + "0" * 22)
    return tiny_project(tmp_path / "p", data={"source": "store"}, irt={"holdout_frac": 0.2})


def test_simulate_stage_with_store_source_removes_only_simulated_rows(store_project):
    from learnops.stages import simulate

    p = store_project
    store = EventStore(p.db_url)
    try:
        n_sim = store.count(Response) + store.count(Decision)
        assert n_sim > 0
        import_file(store, LSAT7, "responses")
        res = simulate.run(p)
        assert res.skipped and res.message.startswith("data.source=store: simulate skipped")
        assert f"removed {n_sim} simulated rows" in res.message
        assert store.count(Decision) == 0 and store.count(Response) == 5000
        assert simulate.run(p).metrics["removed"] == {"training_data": 0, "ml_training_data": 0}
    finally:
        store.dispose()
    assert json.loads(p.path("data/raw/simulate.json").read_text())["skipped"] is True
    truth = [f.name for f in p.path(p.paths.truth_dir).iterdir()]
    assert truth == ["NO_TRUTH.txt"]  # no stale truth for real data


def test_an_irt_only_store_runs_the_whole_pipeline(store_project):
    """LSAT7 only (responses, no decisions): every stage runs; fit_irt fits exactly the imported
    learners and items, and agrees with `learnops irt fit` on the whole file (r >= 0.99)."""
    from learnops import irt
    from learnops.stages import STAGES, run_stage

    p = store_project
    for m in ("mlp", "irt"):  # a fresh project: no previous models
        import shutil

        shutil.rmtree(p.path(f"models/{m}"), ignore_errors=True)
    store = EventStore(p.db_url)
    try:
        import_file(store, LSAT7, "responses")
    finally:
        store.dispose()
    results = {name: run_stage(name, p) for name in STAGES}
    assert results["simulate"].skipped
    assert results["export"].summary["n_responses"] == 5000
    assert results["export"].summary["n_decisions"] == 0
    for name in ("train_mlp", "evaluate", "ab_analysis", "monitoring"):
        assert results[name].skipped, name
        assert "no decisions in the export window" in results[name].reason
    fitted = results["fit_irt"]
    assert not fitted.skipped and fitted.recovery.empty  # no truth for real data
    items = pd.read_csv(p.path("models/irt/items.csv"))
    abilities = pd.read_csv(p.path("models/irt/abilities.csv"))
    assert sorted(items["item_id"]) == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    raw = pd.read_csv(LSAT7, dtype=str)
    assert set(abilities["learner_id"]) == {learner_hash(x) for x in raw["learner_id"]}
    reg = results["register"]
    assert [o["model_type"] for o in reg.outcomes] == ["irt"]
    whole = irt.fit(raw.assign(correct=raw["correct"].astype(int)), p.irt.model, config=p.irt)
    both = items.merge(whole.items, on="item_id", suffixes=("", "_whole"))
    r = np.corrcoef(both["difficulty"], both["difficulty_whole"])[0, 1]
    assert r >= 0.99, r
    for name in ("train_mlp", "evaluate", "ab", "monitoring"):
        doc = json.loads(p.path(f"reports/metrics/{name}.json").read_text())
        assert doc["skipped"] is True and "no decisions" in doc["reason"]


def test_ope_is_skipped_with_the_reason_when_no_propensities_are_logged(tmp_path, tiny_project):
    from learnops.data.export import parquet_bytes
    from learnops.stages import evaluate

    p = tiny_project(tmp_path / "p", trained=True, evaluate={"bootstrap": 20})
    path = p.path("data/processed/decisions.parquet")
    d = pd.read_parquet(path)
    d = d.assign(propensity=np.nan, **{c: np.nan for c in d.columns if c.startswith("p_")})
    path.write_bytes(parquet_bytes(d))
    res = evaluate.run(p, record=False, latency_calls=10)
    assert not res.skipped and res.ope_skipped is not None
    assert res.ope_skipped.message.startswith("No propensities: off-policy evaluation skipped")
    assert res.metrics["ope"]["skipped"] is True
    assert "carries a propensity" in res.metrics["ope"]["reason"]
    assert 0 <= res.metrics["accuracy"] <= 1  # the model is still measured
    assert "Off-policy evaluation: skipped" in res.conclusion


# -- notebooks: params.yaml without papermill ----------------------------------------------------
def test_notebook_params_reads_the_params_yaml_above_the_notebook(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    monkeypatch.chdir(nb_dir)
    monkeypatch.delenv("LEARNOPS_PARAMS", raising=False)
    assert find_params() == tmp_path / "params.yaml"
    assert notebook_params(None).seed == 42  # opened in JupyterLab: nothing injected
    (tmp_path / "other.yaml").write_text("seed: 7\n")
    assert notebook_params("../other.yaml").seed == 7  # papermill's params_path wins
    monkeypatch.setenv("LEARNOPS_PARAMS", str(tmp_path / "other.yaml"))
    assert notebook_params(None).seed == 7
    monkeypatch.delenv("LEARNOPS_PARAMS")
    monkeypatch.chdir("/")
    with pytest.raises(ConfigError, match="no params.yaml"):
        find_params()


def test_every_notebook_takes_its_params_from_notebook_params_and_says_how_to_rerun():
    from learnops.stages import STAGES

    for stage, name in STAGES.items():
        cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
        first = "".join(cells[0]["source"])
        assert cells[0]["cell_type"] == "markdown"
        assert "**Reads**" in first and "**Writes**" in first, name
        assert f"dvc repro {stage}" in first and "make lab" in first, name
        params_cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        assert "".join(params_cell["source"]).startswith("params_path = None"), name
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "notebook_params(params_path)" in code and "load_params" not in code, name
