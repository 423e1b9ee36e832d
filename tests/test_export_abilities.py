"""The streaming export with ``irt.ability_model`` elo / best_lr (issue 16): the ability model is
fitted on the answers' columns only and the decisions are rewritten one row group at a time,
giving the same bytes as the former path that read both tables back whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_SIM, TINY_IRT

from learnops.config import ExportConfig, Params

ALL = ExportConfig(last_days=None, min_data_points=1)
FAST = {"elo_alpha": [0.4, 0.8], "elo_beta": [0.0, 0.05]}
NO_ANSWERS = 3  # learners whose answers are left out of the store (decisions only)
TIES = 40  # decisions moved to the very time of one of their learner's answers
SAME_TIME = 30  # answers moved to the time of their learner's previous answer


@pytest.fixture(scope="module")
def sim():
    """A small simulation with learners that only have decisions, decisions at the very time
    of an answer of theirs, and learners with several answers at one time."""
    from learnops.data.simulate import simulate

    s = simulate(SMALL_SIM.model_copy(update={"days": 4, "n_learners": 50}), seed=11)
    dec, resp = s.decisions.copy(), s.responses.copy()
    quiet = sorted(dec["learner_hash"].unique())[:NO_ANSWERS]
    resp = resp.loc[~resp["learner_hash"].isin(quiet)].reset_index(drop=True)
    rng = np.random.default_rng(0)
    by_time = resp.sort_values(["learner_hash", "timestamp"], kind="stable").index.to_numpy()
    same = resp.loc[by_time, "learner_hash"].to_numpy()
    later = np.flatnonzero(same[1:] == same[:-1]) + 1
    for k in rng.choice(later, SAME_TIME, replace=False):
        resp.loc[by_time[k], "timestamp"] = resp.loc[by_time[k - 1], "timestamp"]
    rows = rng.choice(np.flatnonzero(dec["learner_hash"].isin(resp["learner_hash"])), TIES, False)
    for i in rows:
        theirs = resp.loc[resp["learner_hash"] == dec.at[i, "learner_hash"], "timestamp"]
        dec.at[i, "timestamp"] = theirs.iloc[rng.integers(len(theirs))]
    return dec, resp, quiet, rows


def _store(tmp_path, decisions, responses):
    from learnops.data.store import EventStore

    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    if len(responses):
        store.insert_responses(responses)
    store.insert_decisions(decisions)
    return store


def _params(name: str) -> Params:
    return Params(irt={**TINY_IRT, "ability_model": name}, learner_models=FAST)


def _whole_table_abilities(decisions, responses, params):
    """The decisions with the abilities of the former whole-table path (reference kept here):
    Elo tuned on the two sides as tables (``elo.tune``), static IRT / Best-LR fitted on the
    table, then ``ability_asof`` (one ``model.predict`` of the table with its probes and a
    ``merge_asof``)."""
    from learnops.data.splits import learner_split_mask
    from learnops.learner_models.ability import ability_asof, fit_ability_model
    from learnops.learner_models.elo import tune

    if responses.empty:
        return decisions
    if params.irt.ability_model == "elo":
        cfg = params.learner_models
        val = learner_split_mask(responses["learner_hash"], cfg.val_split, params.seed, "elo")
        model, _ = tune(responses.loc[~val], responses.loc[val], cfg.elo_alpha, cfg.elo_beta)
    else:
        model = fit_ability_model(params.irt.ability_model, responses, params)
    est = ability_asof(model, responses, decisions)
    out = decisions.copy()
    out["ability"] = est["ability"].to_numpy(float)
    out["ability_se"] = np.maximum(est["ability_se"].to_numpy(float), 0.0)
    return out


def _whole_table_reference(store, params, out, row_group_rows):
    """The export as it was before the ability model streamed (reference kept here): the
    streamed tables read back whole, :func:`_whole_table_abilities` on them, the decisions
    rewritten in one piece through the same row-group writer."""
    from learnops.contracts import DECISION_COLUMNS
    from learnops.data.export import (
        SORT_KEYS,
        _arrow_schema,
        _DayRowGroups,
        export,
        sort_rows,
    )
    from learnops.data.schemas import validate_decisions

    export(store, ALL, out, chunk_rows=400, row_group_rows=row_group_rows)  # logged abilities
    decisions = pd.read_parquet(out / "decisions.parquet")
    responses = pd.read_parquet(out / "responses.parquet")
    supplied = validate_decisions(_whole_table_abilities(decisions, responses, params))
    supplied = sort_rows(supplied, SORT_KEYS["decisions"])
    schema = _arrow_schema(validate_decisions, list(DECISION_COLUMNS))
    writer = _DayRowGroups(out / "decisions.parquet", schema, row_group_rows)
    try:
        writer.append(supplied)
    finally:
        writer.close()
    return (out / "decisions.parquet").read_bytes()


@pytest.mark.parametrize("name", ["elo", "best_lr"])
def test_streamed_abilities_are_the_whole_table_bytes(sim, tmp_path, name, monkeypatch):
    import pyarrow.parquet as pq

    import learnops.data.export as ex
    import learnops.learner_models.ability as ab
    from learnops.stages.export import _abilities

    decisions, responses, quiet, tied = sim
    store = _store(tmp_path, decisions, responses)
    params = _params(name)
    want = _whole_table_reference(store, params, tmp_path / "old", row_group_rows=150)

    read_back = []  # the decisions are never read back whole: one row group at a time
    real = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        table = real(self, i, *args, **kwargs)
        if "decision_id" in table.column_names:
            read_back.append(table.num_rows)
        return table

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pd, "read_parquet", None)  # the new path must not read whole tables
    batches = []
    with_probes = ab._with_probes
    monkeypatch.setattr(ab, "_with_probes", lambda *a: batches.append(len(a[0])) or with_probes(*a))
    res = ex.export(store, ALL, tmp_path / "new", chunk_rows=400, row_group_rows=150,
                    abilities=_abilities(params))  # fmt: skip
    monkeypatch.undo()
    got = (tmp_path / "new" / "decisions.parquet").read_bytes()
    assert got == want
    n = len(decisions)
    assert res.counts["decisions"] == n and sum(read_back) == n and max(read_back) <= 150
    assert len(read_back) > 5
    # Elo replays its compact sequences (no table with probes); Best-LR predicts the whole table
    assert batches == ([] if name == "elo" else [len(responses)])

    dec = pd.read_parquet(tmp_path / "new" / "decisions.parquet")
    logged = pd.read_parquet(tmp_path / "old" / "decisions.parquet")  # the reference's output
    assert dec["ability"].notna().all() and (dec["ability_se"] >= 0).all()
    # learners with decisions only get the model's starting estimate, constant over time
    first = dec.loc[dec["learner_hash"].isin(quiet)]
    assert len(first) and first["ability"].nunique() == 1 and first["ability_se"].nunique() == 1
    if name == "elo":
        assert (first["ability"] == 0.0).all() and (first["ability_se"] == 1.0).all()
    pd.testing.assert_frame_equal(dec, logged)


def test_a_decision_at_the_time_of_an_answer_does_not_see_it(sim, tmp_path):
    """Tie rule: the ability as of a decision made at the very time of an answer comes from the
    learner's answers strictly before it (the same rule as ``ability_asof``)."""
    from learnops.learner_models.ability import ability_trajectory, fit_ability_model

    decisions, responses, _, tied = sim
    params = _params("elo")
    model = fit_ability_model("elo", responses, params)
    until = decisions["timestamp"].max()
    traj = ability_trajectory(model, responses, decisions["learner_hash"], until)
    q = decisions.iloc[tied]
    ability, se = traj.asof(q["learner_hash"], q["timestamp"])
    pairs = q[["learner_hash", "timestamp"]].itertuples(index=False)
    for (learner, t), a, s in zip(pairs, ability, se, strict=True):
        theirs = responses.loc[responses["learner_hash"] == learner]
        before, at = theirs.loc[theirs["timestamp"] < t], theirs.loc[theirs["timestamp"] <= t]
        assert len(at) > len(before)  # an answer at t exists
        # Elo's estimate from exactly the answers before t: replay those answers alone
        probe = pd.concat([before, at.iloc[[-1]]], ignore_index=True)  # scored, not seen
        probe.loc[len(probe) - 1, "timestamp"] = t + pd.Timedelta(days=1)
        pred = model.predict(probe)
        assert a == pytest.approx(pred.ability[-1], abs=1e-12)
        assert s == pytest.approx(pred.ability_se[-1], abs=1e-12)
    # a learner id the trajectory does not know: no estimate
    a, s = traj.asof(["nobody"], [decisions["timestamp"].iloc[0]])
    assert np.isnan(a).all() and np.isnan(s).all()


def test_without_answers_the_logged_abilities_stay_byte_for_byte(sim, tmp_path, caplog):
    from learnops.stages.export import _abilities

    decisions, responses, _, _ = sim
    store = _store(tmp_path, decisions, responses.iloc[:0])
    params = _params("elo")
    want = _whole_table_reference(store, params, tmp_path / "old", row_group_rows=150)
    from learnops.data.export import export

    with caplog.at_level("WARNING", logger="learnops.ability"):
        res = export(store, ALL, tmp_path / "new", chunk_rows=400, row_group_rows=150,
                     abilities=_abilities(params))  # fmt: skip
    assert "no responses in the window" in caplog.text
    assert res.empty == ["responses"]
    assert (tmp_path / "new" / "decisions.parquet").read_bytes() == want


def test_an_empty_window_fails_before_any_ability_is_fitted(sim, tmp_path):
    from learnops.data.export import export
    from learnops.errors import NoTrainingData

    decisions, responses, _, _ = sim
    store = _store(tmp_path, decisions, responses)
    called = []
    cfg = ExportConfig(since="2001-01-01", until="2001-01-02", min_data_points=1)
    with pytest.raises(NoTrainingData):
        export(store, cfg, tmp_path / "new", abilities=lambda *a: called.append(a))
    assert not called and not list((tmp_path / "new").glob("*"))


def test_read_answers_is_compact(sim, tmp_path):
    from learnops.data.export import ABILITY_COLUMNS, export, read_answers

    decisions, responses, _, _ = sim
    store = _store(tmp_path, decisions, responses)
    export(store, ALL, tmp_path, chunk_rows=400)
    got = read_answers(tmp_path / "responses.parquet")
    assert list(got.columns) == list(ABILITY_COLUMNS)
    for col in ("learner_hash", "item_id", "module"):
        assert isinstance(got[col].dtype, pd.CategoricalDtype)
    assert got["correct"].dtype == np.int8
    whole = pd.read_parquet(tmp_path / "responses.parquet")
    for col in ABILITY_COLUMNS:
        assert got[col].astype(object).tolist() == whole[col].astype(object).tolist()
    # learner ids already in memory (the export's, from streaming): the same str objects
    known = {v: v for v in whole["learner_hash"].unique().tolist()}
    shared = read_answers(tmp_path / "responses.parquet", known)
    pd.testing.assert_frame_equal(shared, got)
    assert all(v is known[v] for v in shared["learner_hash"].cat.categories)


def test_learners_are_counted_once_across_both_tables(sim, tmp_path):
    """n_learners: the learners of either table (some with decisions only, some with answers
    only), each counted once."""
    from learnops.data.export import export

    decisions, responses, quiet, _ = sim
    answer_only = sorted(set(responses["learner_hash"]))[:4]
    decisions = decisions.loc[~decisions["learner_hash"].isin(answer_only)]
    store = _store(tmp_path, decisions, responses)
    res = export(store, ALL, tmp_path / "out", chunk_rows=400)
    both = pd.concat([decisions["learner_hash"], responses["learner_hash"]])
    assert res.n_learners == both.nunique()
    assert set(quiet) <= set(decisions["learner_hash"]) and len(answer_only) == 4


class _AsTable:
    """A fitted model seen as an unknown model: the whole-table path of
    ``ability_trajectory`` (the table with its probes predicted in one piece)."""

    name = "as_table"

    def __init__(self, model):
        self.model = model

    def predict(self, responses):
        return self.model.predict(responses)


@pytest.mark.parametrize("compact", [False, True])
def test_elo_replays_the_trajectory_of_the_table_prediction(sim, tmp_path, compact):
    """Elo's trajectory comes from one replay of its prepared answers, with no table or probe
    predicted: bit for bit the trajectory of predicting the table with its probes (learners with
    several answers at one time, learners with decisions only, plain or categorical ids)."""
    from learnops.data.export import export, read_answers
    from learnops.learner_models.ability import (
        ability_source,
        ability_trajectory,
        fit_ability_model,
    )

    decisions, responses, quiet, _ = sim
    if compact:  # the export's answers: ids categorical, correct int8
        export(_store(tmp_path, decisions, responses), ALL, tmp_path, chunk_rows=400)
        responses = read_answers(tmp_path / "responses.parquet")
    assert responses.duplicated(["learner_hash", "timestamp"]).sum() >= SAME_TIME
    params = _params("elo")
    model = fit_ability_model("elo", responses, params)
    learners = set(decisions["learner_hash"]) | {"zz-new", "00-new"}
    until = decisions["timestamp"].max()
    want = ability_trajectory(_AsTable(model), responses, learners, until)
    handed = responses.copy()  # the export hands its answers over: their columns are dropped
    for got in (
        ability_trajectory(model, responses, learners, until),
        ability_source(responses, learners, until, params),  # the export's: fit and replay
        ability_source(handed, learners, until, params, consume=True),
    ):
        assert got.learners.equals(want.learners)
        for col in ("code", "timestamp", "ability", "ability_se"):
            a, b = getattr(got, col), getattr(want, col)
            assert a.dtype == b.dtype and np.array_equal(a, b), col
    assert handed.columns.empty and len(responses.columns) >= 4
    # the learners without answers get Elo's start: θ 0, SE 1
    none = want.learners.get_indexer([*quiet, "zz-new", "00-new"])
    at = np.isin(want.code, none)
    assert at.sum() == len(none)
    assert (want.ability[at] == 0.0).all() and (want.ability_se[at] == 1.0).all()
