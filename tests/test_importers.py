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
