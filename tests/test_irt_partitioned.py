"""IRT on a dataset partitioned by learner hash (``learnops irt partition``), fitted by workers
that read their own partitions: the writer (every learner in one partition, a stable hash, the
same bytes twice), the fit (equal to ``irt.fit`` on the table, on a Dask LocalCluster) and the
errors (a bad row names its partition file; an empty dataset; the CLI's one-line errors)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from learnops import irt
from learnops.errors import LearnopsError
from learnops.irt import parallel, partitioned
from learnops.irt.data import data_warnings, encode
from learnops.irt.se import louis_exact_flops
from learnops.irt.sim import simulate


def _data() -> pd.DataFrame:
    """Sparse 2PL answers with retries (repeated learner × item answers), ids as text."""
    df = simulate(1500, 24, 6, seed=21).responses
    again = df.sample(frac=0.3, random_state=2).copy()
    again["correct"] = (np.random.default_rng(2).random(len(again)) < 0.6).astype(int)
    return pd.concat([df, again], ignore_index=True)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("irt_part") / "responses.csv"
    _data().to_csv(path, index=False)
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_partition_hash_is_stable():
    """Pinned values: the hash must not change with pandas, numpy, the process or the machine
    (a dataset written today must be read by tomorrow's workers)."""
    ids = ["u0000", "learner-42", "é", "0123456789abcdef" * 4]
    np.testing.assert_array_equal(partitioned.learner_shard(ids, 1000), [434, 821, 711, 591])
    np.testing.assert_array_equal(partitioned.learner_shard(ids, 7), [5, 4, 4, 4])
    code = (
        "from learnops.irt.partitioned import learner_shard;"
        "print(learner_shard(['u0000', 'learner-42'], 1000).tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "[434, 821]", out.stderr


def test_every_learner_is_in_exactly_one_partition_and_rewrites_are_identical(table, tmp_path):
    s = partitioned.partition_responses(table, tmp_path / "a", shards=7, batch_rows=2_000)
    assert (s.rows, s.shards, s.partitions, s.learner_column) == (11_700, 7, 7, "learner_id")
    parts = partitioned.list_partitions(tmp_path / "a")
    assert [n for n, _ in parts] == list(range(7))
    seen: dict[str, int] = {}
    total = 0
    for shard, files in parts:
        t = pq.read_table(files[0])
        assert t.schema.types == [pa.string(), pa.string(), pa.int8()]
        learners = set(t.column("learner_id").to_pylist())
        assert not learners & seen.keys()  # in no other partition
        seen.update(dict.fromkeys(learners, shard))
        assert (partitioned.learner_shard(list(learners), 7) == shard).all()
        total += t.num_rows
    df = _data()
    assert total == len(df) and set(seen) == set(df["learner_id"])
    # each partition holds its learners' rows in input order
    which = partitioned.learner_shard(df["learner_id"].tolist(), 7)
    for shard, files in parts:
        got = pq.read_table(files[0]).to_pandas()
        want = df[which == shard].reset_index(drop=True)
        assert got["learner_id"].tolist() == want["learner_id"].tolist()
        assert got["item_id"].tolist() == want["item_id"].tolist()
        assert got["correct"].tolist() == want["correct"].tolist()
    # balanced by the hash, not by id order
    sizes = np.bincount(list(seen.values()))
    assert sizes.min() > 0.8 * sizes.mean()
    # the same input gives the same bytes (Parquet input too: same rows, same partitions)
    partitioned.partition_responses(table, tmp_path / "b", shards=7, batch_rows=2_000)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    df.to_parquet(tmp_path / "r.parquet")
    partitioned.partition_responses(tmp_path / "r.parquet", tmp_path / "c", shards=7)
    for (_, fa), (_, fc) in zip(parts, partitioned.list_partitions(tmp_path / "c"), strict=True):
        assert pq.read_table(fa[0]).equals(pq.read_table(fc[0]))
    # an existing dataset is replaced only on request, atomically (no temp dir left behind)
    with pytest.raises(LearnopsError, match="already exists"):
        partitioned.partition_responses(table, tmp_path / "a", shards=3)
    partitioned.partition_responses(table, tmp_path / "a", shards=3, overwrite=True)
    assert len(partitioned.list_partitions(tmp_path / "a")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "r.parquet"]


def test_bad_input_rows_are_named_by_the_writer(tmp_path):
    df = _data()
    df.loc[5000, "correct"] = 2
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(LearnopsError, match=r"bad.csv rows \d+-\d+: column 'correct' must be") as e:
        partitioned.partition_responses(tmp_path / "bad.csv", tmp_path / "ds", 3, batch_rows=2000)
    lo, hi = map(int, str(e.value).split(" rows ")[1].split(":")[0].split("-"))
    assert lo <= 5001 <= hi and hi - lo < 4000  # the batch of data row 5001 (line 5002)
    assert not (tmp_path / "ds").exists()
    text = (tmp_path / "bad.csv").read_text().replace(",2\n", ",1,extra\n")
    (tmp_path / "ragged.csv").write_text(text)
    for batch_rows in (2000, 10**6):  # a ragged row in a later batch, or in the first
        with pytest.raises(LearnopsError, match="ragged.csv: cannot .*Expected 3 columns, got 4"):
            partitioned.partition_responses(
                tmp_path / "ragged.csv", tmp_path / "ds", 3, batch_rows=batch_rows
            )
    df.drop(columns="item_id").to_csv(tmp_path / "noitem.csv", index=False)
    with pytest.raises(LearnopsError, match="missing column"):
        partitioned.partition_responses(tmp_path / "noitem.csv", tmp_path / "ds")


def test_partitioned_dask_fit_equals_the_local_fit(table, tmp_path, monkeypatch):
    """Workers (a LocalCluster, in-process here) that read their own partitions give the local
    engine's fit on the whole table: items and SEs to 1e-5, log-likelihood to 1e-4, abilities
    to 1e-5 (the shards differ: only the order of the sums may change the last digits)."""
    monkeypatch.setattr(parallel, "SHARD_RESPONSES", 1_500)  # the table in 7 local shards
    df = pd.read_csv(table, dtype={"learner_id": str, "item_id": str})
    local = irt.fit(df, "2pl", se="louis-exact", engine=parallel.LocalEngine(2))
    partitioned.partition_responses(table, tmp_path / "ds", shards=9)
    eng = parallel.DaskEngine(workers=2, processes=False)
    try:
        dist = partitioned.fit_partitioned(tmp_path / "ds", "2pl", se="louis-exact", engine=eng)
        for _ in range(50):  # the shards are released (the scheduler learns it asynchronously)
            if not eng.client.who_has():
                break
            time.sleep(0.1)
        assert not eng.client.who_has()
    finally:
        eng.close()
    assert abs(dist.loglik - local.loglik) <= 1e-4
    assert dist.iterations == local.iterations and dist.converged
    assert dist.info["partitions"] == 9 and dist.info["se_method"] == "louis-exact"
    cols = ["discrimination", "difficulty", "discrimination_se", "difficulty_se"]
    pd.testing.assert_series_equal(dist.items["item_id"], local.items["item_id"])
    np.testing.assert_allclose(dist.items[cols], local.items[cols], rtol=0, atol=1e-5)
    pd.testing.assert_series_equal(dist.abilities["learner_id"], local.abilities["learner_id"])
    ab = ["theta", "theta_se"]
    np.testing.assert_allclose(dist.abilities[ab], local.abilities[ab], rtol=0, atol=1e-5)
    assert dist.warnings == local.warnings
    assert (dist.n_learners, dist.n_items, dist.n_responses) == (
        local.n_learners,
        local.n_items,
        local.n_responses,
    )


def test_3pl_with_the_default_ses_on_threads(table, tmp_path):
    """The same path on the local engine (threads read the partitions), 3PL, ``se='auto'``
    (the exact numerical Hessian at this size): equal to the table's fit."""
    df = pd.read_csv(table, dtype={"learner_id": str, "item_id": str})
    local = irt.fit(df, "3pl", engine=parallel.LocalEngine(1))
    partitioned.partition_responses(table, tmp_path / "ds", shards=4)
    dist = partitioned.fit_partitioned(tmp_path / "ds", "3pl", engine=parallel.LocalEngine(2))
    assert dist.info["se_method"] == local.info["se_method"] == "exact"
    assert abs(dist.loglik - local.loglik) <= 1e-4
    cols = ["discrimination", "difficulty", "guessing", "difficulty_se", "guessing_se"]
    np.testing.assert_allclose(dist.items[cols], local.items[cols], rtol=0, atol=1e-5)
    np.testing.assert_allclose(dist.abilities["theta"], local.abilities["theta"], atol=1e-5)


def test_reduced_counts_give_the_table_warnings_and_work_estimate():
    df = _data()
    df = df[~((df["item_id"] == df["item_id"].iloc[0]) & (df["correct"] == 0))]  # all correct
    df = pd.concat([df, pd.DataFrame({"learner_id": ["solo"], "item_id": ["new"], "correct": [0]})])
    enc = encode(df)
    part = partitioned._Part(enc, "x")
    summary = partitioned._reduce([partitioned._part_stats(part)], "x")
    assert partitioned.count_warnings(summary) == data_warnings(enc)
    per = np.bincount(enc.learner)
    for model in ("2pl", "3pl"):
        assert partitioned.louis_flops_from_hist(
            model, summary.per_learner_hist, enc.n_items, 31
        ) == louis_exact_flops(model, per, enc.n_items, 31)
    complete = encode(simulate(50, 6, None, seed=1).responses)
    hist = np.bincount(np.bincount(complete.learner))
    assert partitioned.louis_flops_from_hist("2pl", hist, 6, 31) == 0.0


def test_a_bad_row_names_its_partition_file(table, tmp_path):
    partitioned.partition_responses(table, tmp_path / "ds", shards=5)
    _, files = partitioned.list_partitions(tmp_path / "ds")[3]
    t = pq.read_table(files[0])
    y = t.column("correct").to_numpy().copy()
    y[10] = 7
    pq.write_table(t.set_column(2, "correct", pa.array(y, pa.int8())), files[0])
    eng = parallel.DaskEngine(workers=2, processes=False)
    try:
        with pytest.raises(LearnopsError) as err:
            partitioned.fit_partitioned(tmp_path / "ds", "2pl", engine=eng)
    finally:
        eng.close()
    msg = str(err.value)
    assert "\n" not in msg and files[0] in msg and "'correct' must be binary" in msg, msg


def test_datasets_that_cannot_be_fitted(table, tmp_path):
    (tmp_path / "empty").mkdir()
    for path, text in [
        (tmp_path / "empty", "no partitions"),
        (tmp_path / "nowhere", "dataset not found"),
        (table, "not a partitioned dataset directory"),
    ]:
        with pytest.raises(LearnopsError, match=text):
            partitioned.fit_partitioned(path, engine=parallel.LocalEngine(1))
    # a learner in two partitions (not written by learnops irt partition) is refused
    df = _data()
    for s, half in enumerate((df.iloc[:5000], df.iloc[5000:])):
        (tmp_path / "mixed" / f"shard={s:05d}").mkdir(parents=True)
        half.to_parquet(tmp_path / "mixed" / f"shard={s:05d}" / "part-0.parquet")
    with pytest.raises(LearnopsError, match="is in more than one partition"):
        partitioned.fit_partitioned(tmp_path / "mixed", engine=parallel.LocalEngine(1))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "learnops", "irt", *args],
        cwd=cwd,
        env={**env, "LEARNOPS_SALT": "test-salt"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_partition_fit_and_errors(table, tmp_path):
    ok = _cli("partition", str(table), "ds", "--shards", "4", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "11700 responses by learner_id -> 4 non-empty of 4 partitions" in ok.stdout
    fit = _cli("fit", "ds", "--out", "m", "--engine", "local", "--workers", "2", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    assert "1500 learners" in fit.stdout
    fitted = irt.load(tmp_path / "m")
    assert fitted.n_responses == 11_700 and fitted.info["partitions"] == 4
    (tmp_path / "empty").mkdir()
    bad = _cli("fit", "empty", "--out", "m2", cwd=tmp_path)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr
    assert lines[0].startswith("error: ") and "empty: no partitions" in lines[0], lines[0]
    from typer.testing import CliRunner

    from learnops.irt.cli import app

    for args, text in [
        (["partition", str(tmp_path / "missing.csv"), "x"], "input file not found"),
        (["partition", str(table), str(tmp_path / "ds")], "already exists"),
    ]:
        res = CliRunner().invoke(app, args)
        assert isinstance(res.exception, LearnopsError) and text in str(res.exception)


def test_the_partitioned_fit_does_not_depend_on_the_number_of_workers(table, tmp_path):
    """The shards are the partitions and their sums are taken in partition order: the same
    numbers, to the last digit, on 1 or 3 worker threads."""
    partitioned.partition_responses(table, tmp_path / "ds", shards=6)
    fits = [
        partitioned.fit_partitioned(
            tmp_path / "ds", se="louis-exact", engine=parallel.LocalEngine(w)
        )
        for w in (1, 3)
    ]
    assert fits[0].loglik == fits[1].loglik
    pd.testing.assert_frame_equal(fits[0].items, fits[1].items, check_exact=True)
    pd.testing.assert_frame_equal(fits[0].abilities, fits[1].abilities, check_exact=True)


def test_hashed_ids_and_text_answers(tmp_path):
    """``learner_hash`` tables (the pipeline's) and true/false answers are partitioned too."""
    df = _data().rename(columns={"learner_id": "learner_hash"})
    df["correct"] = df["correct"].map({1: "true", 0: "False"})
    df.to_csv(tmp_path / "r.csv", index=False)
    s = partitioned.partition_responses(tmp_path / "r.csv", tmp_path / "ds", 2, batch_rows=3000)
    assert s.learner_column == "learner_hash"
    got = pd.concat(
        pq.read_table(f[0]).to_pandas() for _, f in partitioned.list_partitions(s.out_dir)
    )
    assert list(got.columns) == ["learner_hash", "item_id", "correct"]
    assert got["correct"].sum() == (df["correct"] == "true").sum() and set(got["correct"]) == {0, 1}
