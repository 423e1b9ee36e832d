"""Retrain end to end on a small simulated store: versions, gates, determinism, refusals."""

import hashlib
import threading

import pytest
from conftest import TINY_IRT, TINY_MLP

from learnops.data.store import EventStore
from learnops.errors import NoTrainingData, TrainingInProgress
from learnops.lifecycle.registry import Registry
from learnops.lifecycle.retrain import retrain


@pytest.fixture(scope="module")
def params(tmp_path_factory, tiny_project):
    """A simulated store (retrain exports its own window)."""
    return tiny_project(
        tmp_path_factory.mktemp("retrain"),
        irt=TINY_IRT,
        mlp={**TINY_MLP, "epochs": 4},
        evaluate={"targets": {"accuracy": 0.5, "calibration_error": 0.5}},
        registry={"irt_min_accuracy": 0.6},
    )


def _registry(p):
    return Registry(EventStore(p.db_url), p.path(p.paths.models_dir) / "registry")


def _digest(path):
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.iterdir())
        if f.is_file()
    }


def test_retrain_registers_deploys_then_gates(params, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    first = retrain(params)
    assert [(o.model_type, o.version) for o in first] == [("mlp", "v1"), ("irt", "v1")]
    assert all(o.deployed for o in first), [o.decision.reasons for o in first]
    reg = _registry(params)
    assert reg.production("mlp").version == "v1"
    # same data, same params, same seed: identical weights and metrics, and the >5% gate holds
    second = retrain(params)
    assert [o.version for o in second] == ["v2", "v2"]
    mlp1, mlp2 = first[0], second[0]
    assert mlp2.metrics == mlp1.metrics
    assert not mlp2.deployed
    assert any("does not beat production" in r for r in mlp2.decision.reasons)
    for model_type in ("mlp", "irt"):
        root = params.path(f"models/registry/{model_type}")
        assert _digest(root / "v1") == _digest(root / "v2"), model_type
    assert second[1].metrics == first[1].metrics
    assert reg.production("mlp").version == "v1"
    # IRT: same AUC as production is "not worse": deploys
    assert second[1].deployed


def test_no_auto_deploy_and_single_model(params, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    (o,) = retrain(params, models=["irt"], auto_deploy=False)
    assert not o.deployed and o.status == "completed"


def test_empty_window_is_refused_without_a_version(params, monkeypatch):
    import datetime as dt

    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    before = len(_registry(params).list())
    with pytest.raises(NoTrainingData, match="No training data available"):
        retrain(params, since=dt.date(2030, 1, 1))
    assert len(_registry(params).list()) == before


def test_concurrent_retrain_is_refused(params, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    reg = _registry(params)
    entered, release = threading.Event(), threading.Event()

    def hold():
        with reg.training_lock():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert entered.wait(10)
        with pytest.raises(TrainingInProgress, match="Training already in progress"):
            retrain(params, models=["irt"])
    finally:
        release.set()
        t.join()


def test_failed_training_marks_the_version_failed(params, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    import learnops.lifecycle.retrain as rt

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rt, "_train_mlp", boom)
    prod = _registry(params).production("mlp").version
    with pytest.raises(RuntimeError):
        retrain(params, models=["mlp"])
    last = _registry(params).list("mlp")[-1]
    assert last.status == "failed" and "disk full" in last.error
    assert _registry(params).production("mlp").version == prod


def test_retrain_takes_abilities_from_the_streamed_export(params, monkeypatch):
    """With ``irt.ability_model: elo`` the decision model trains on the export's streamed
    abilities: the table of the former path (both tables read back whole, then
    ``supply_abilities``), value for value; the IRT model gets the answers as exported."""
    import pandas as pd

    import learnops.lifecycle.retrain as rt
    from learnops.data.export import export
    from learnops.learner_models.ability import supply_abilities

    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    elo = params.model_copy(
        update={
            "irt": params.irt.model_copy(update={"ability_model": "elo"}),
            "learner_models": params.learner_models.model_copy(
                update={"elo_alpha": (0.4, 0.8), "elo_beta": (0.0, 0.05)}
            ),
        }
    )
    tables = {}
    monkeypatch.setattr(rt, "_retrain_one", lambda reg, p, kind, table, *a, **k: tables.update(
        {kind: table.copy()}))  # fmt: skip
    retrain(elo, auto_deploy=False)
    store = EventStore(elo.db_url)
    logged = export(store, rt._export_config(elo, None, None), params.path("retrain-ref"))
    want = supply_abilities(logged.decisions, logged.responses, elo)
    assert not want["ability"].equals(logged.decisions["ability"])  # the model's, not the log's
    pd.testing.assert_frame_equal(tables["mlp"], want, check_exact=True)
    pd.testing.assert_frame_equal(tables["irt"], logged.responses, check_exact=True)
