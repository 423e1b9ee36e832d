"""Importers: CSV/Parquet tables and mongoexport JSON lines of the seed's TrainingData."""

import json

import pytest

from learnops.data.importers import import_mongo_jsonl, import_table, read_mongo_jsonl
from learnops.data.store import Response
from learnops.errors import LearnopsError
from learnops.hashing import learner_hash


def _mongo_lines():
    return [
        {
            "_id": {"$oid": "65a1"},
            "userId": {"$oid": "u1"},
            "questionId": "q1",
            "moduleId": "algebra",
            "isCorrect": True,
            "responseTime": {"$numberInt": "1530"},
            "createdAt": {"$date": "2026-09-01T10:00:00.000Z"},
        },
        {
            "_id": {"$oid": "65a2"},
            "userId": {"$oid": "u2"},
            "questionId": "q1",
            "moduleId": "algebra",
            "isCorrect": False,
            "responseTime": 2200,
            "createdAt": {"$date": {"$numberLong": "1788300000000"}},
        },
    ]


def test_mongoexport_jsonl_is_imported_with_hashed_ids(store, tmp_path):
    f = tmp_path / "training.json"
    f.write_text("\n".join(json.dumps(d) for d in _mongo_lines()) + "\n")
    df = read_mongo_jsonl(f)
    assert df["learner_hash"].tolist() == [learner_hash("u1"), learner_hash("u2")]
    assert df["correct"].tolist() == [1, 0]
    assert str(df["timestamp"].iloc[0]) == "2026-09-01 10:00:00+00:00"
    assert import_mongo_jsonl(store, f) == 2
    assert store.count(Response) == 2


def test_malformed_jsonl_imports_nothing(store, tmp_path):
    lines = [json.dumps(d) for d in _mongo_lines()] + ["{not json", json.dumps({"userId": "x"})]
    f = tmp_path / "bad.json"
    f.write_text("\n".join(lines))
    with pytest.raises(LearnopsError, match="2 malformed line"):
        import_mongo_jsonl(store, f)
    assert store.count(Response) == 0


def test_csv_table_import(store, small_sim, tmp_path):
    df = small_sim.responses.iloc[:200].drop(columns=["learner_hash"]).assign(learner_id="bob")
    f = tmp_path / "responses.csv"
    df.to_csv(f, index=False)
    assert import_table(store, f, "responses") == 200
    assert set(store.read_responses()["learner_hash"]) == {learner_hash("bob")}
    with pytest.raises(LearnopsError, match="unknown table kind"):
        import_table(store, f, "widgets")


# --- issue 22: hashing on import (6), A/B columns in CSV (8), blank ids / control chars (13) ---


def _decisions(small_sim, n=30):
    return small_sim.decisions.iloc[:n].drop(columns=["learner_hash"]).assign(learner_id="ann")


def test_learner_id_that_looks_like_a_hash_is_still_hashed(store, small_sim, tmp_path):
    raw = "a" * 64  # e.g. an unsalted sha256(email): must not bypass the salt
    df = small_sim.responses.iloc[:5].drop(columns=["learner_hash"]).assign(learner_id=raw)
    f = tmp_path / "r.csv"
    df.to_csv(f, index=False)
    with pytest.warns(UserWarning, match="look like hashes"):
        assert import_table(store, f, "responses") == 5
    assert set(store.read_responses()["learner_hash"]) == {learner_hash(raw)}


def test_learner_hash_column_needs_the_store_salt_fingerprint(store, small_sim, tmp_path):
    from learnops.hashing import salt_fingerprint

    df = small_sim.responses.iloc[:5].copy()
    f = tmp_path / "r.csv"
    df.to_csv(f, index=False)
    with pytest.raises(LearnopsError, match="only with --hashed-with"):
        import_table(store, f, "responses")
    with pytest.raises(LearnopsError, match="not this store's salt fingerprint"):
        import_table(store, f, "responses", hashed_with="0123456789abcdef")
    assert store.count(Response) == 0
    assert import_table(store, f, "responses", hashed_with=salt_fingerprint()) == 5
    assert store.read_responses()["learner_hash"].tolist() == df["learner_hash"].tolist()


@pytest.mark.parametrize("bad", ["alice@example.com", "A" * 64, "ab" * 31, " "])
def test_learner_hash_values_must_be_hmac_digests(store, small_sim, tmp_path, bad):
    from learnops.hashing import salt_fingerprint

    df = small_sim.responses.iloc[:5].copy()
    df.loc[df.index[3], "learner_hash"] = bad
    f = tmp_path / "r.csv"
    df.to_csv(f, index=False)
    with pytest.raises(LearnopsError, match=r"64 lowercase hex.*data row 4\)") as exc:
        import_table(store, f, "responses", hashed_with=salt_fingerprint())
    assert "alice" not in str(exc.value) and "\n" not in str(exc.value)
    assert store.count(Response) == 0


def test_both_or_neither_id_column_is_refused(store, small_sim, tmp_path):
    df = small_sim.responses.iloc[:5].assign(learner_id="x")
    f = tmp_path / "r.csv"
    df.to_csv(f, index=False)
    with pytest.raises(LearnopsError, match="both learner_id and learner_hash"):
        import_table(store, f, "responses")
    df.drop(columns=["learner_id", "learner_hash"]).to_csv(f, index=False)
    with pytest.raises(LearnopsError, match="needs a learner_id column"):
        import_table(store, f, "responses")


@pytest.mark.parametrize("variant", ["empty", "absent"])
def test_decisions_csv_with_empty_or_absent_ab_columns_imports(store, small_sim, tmp_path, variant):
    from learnops.data.store import Decision

    df = _decisions(small_sim).assign(ab_test=None, ab_group=None)
    if variant == "absent":
        df = df.drop(columns=["ab_test", "ab_group"])
    f = tmp_path / "d.csv"
    df.to_csv(f, index=False)
    assert import_table(store, f, "decisions") == 30
    assert store.count(Decision) == 30
    back = store.read_decisions()
    assert back["ab_group"].isna().all() and back["ab_test"].isna().all()


@pytest.mark.parametrize("learner", [" ", "", "bob\x00", "line\nbreak"])
def test_blank_or_control_character_learner_ids_are_refused(store, small_sim, tmp_path, learner):
    df = small_sim.responses.iloc[:4].drop(columns=["learner_hash"]).assign(learner_id="ok")
    df.loc[df.index[2], "learner_id"] = learner
    f = tmp_path / "r.parquet"
    df.to_parquet(f, index=False)
    with pytest.raises(LearnopsError, match="1 of 4 row") as exc:
        import_table(store, f, "responses")
    assert exc.value.details == [
        f"row 3: learner_id {'has control chars' if learner.strip() else 'is blank'}"
    ]
    assert store.count(Response) == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("ab_group", "ml\x00"), ("ab_group", "  "), ("decision_id", " "), ("ab_test", "t\x1b[31m")],
)
def test_blank_or_control_character_decision_fields_are_refused(
    store, small_sim, tmp_path, column, value
):
    from learnops.data.store import Decision

    df = _decisions(small_sim, 5)
    df.loc[df.index[1], column] = value
    f = tmp_path / "d.parquet"
    df.to_parquet(f, index=False)
    with pytest.raises(LearnopsError, match="1 of 5 row") as exc:
        import_table(store, f, "decisions")
    assert exc.value.details[0].startswith(
        f"row 2: {column} is blank or has control characters (got "
    )
    assert "\n" not in str(exc.value) and "\x00" not in str(exc.value)
    assert store.count(Decision) == 0


def test_control_characters_in_item_ids_are_refused(store, small_sim, tmp_path):
    df = small_sim.responses.iloc[:4].drop(columns=["learner_hash"]).assign(learner_id="ok")
    df.loc[df.index[0], "item_id"] = "q\x00"
    f = tmp_path / "r.parquet"
    df.to_parquet(f, index=False)
    with pytest.raises(LearnopsError, match="1 of 4 row") as exc:
        import_table(store, f, "responses")
    assert exc.value.details[0].startswith("row 1: item_id is blank or has control characters")


def test_mongo_blank_learner_is_refused(store, tmp_path):
    docs = _mongo_lines()
    docs[1]["userId"] = "   "
    f = tmp_path / "training.json"
    f.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    with pytest.raises(LearnopsError, match=r"learner_id blank in 1 row\(s\) \(data row 2\)"):
        import_mongo_jsonl(store, f)
    assert store.count(Response) == 0


def test_reimport_skips_stored_ids(store, small_sim, tmp_path):
    from learnops.data.importers import import_file

    df = small_sim.responses.iloc[:50].drop(columns=["learner_hash"]).assign(learner_id="bob")
    f = tmp_path / "responses.csv"
    df.to_csv(f, index=False)
    assert import_table(store, f, "responses") == 50
    again = import_file(store, f, "responses")
    assert (again.inserted, again.skipped) == (0, 50)
    df.iloc[:60].to_csv(f, index=False)
    assert store.count(Response) == 50


def test_required_columns_are_named(store, tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("learner_id,decision_id\na,d1\n")
    with pytest.raises(LearnopsError, match="missing column.*recent_accuracy") as exc:
        import_table(store, f, "decisions")
    assert "…" not in str(exc.value)


def test_csv_line_with_too_many_fields(store, tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(
        "response_id,learner_id,item_id,correct,timestamp\n"
        "r1,a,q1,1,extra,2026-09-01T10:00:00Z\nr2,b,q1,0,2026-09-01T10:01:00Z\n"
    )
    with pytest.raises(LearnopsError, match="line 2 has 6"):
        import_table(store, f, "responses")
    assert store.count(Response) == 0
