"""Registry: numbering, immutability, deploy/rollback atomicity, the retrain lock, gates."""

import multiprocessing as mp
import time

import pytest

from learnops.config import RegisterConfig, Targets
from learnops.errors import LearnopsError, TrainingInProgress
from learnops.hashing import data_fingerprint
from learnops.lifecycle.gates import irt_gate, mlp_gate
from learnops.lifecycle.registry import Registry


@pytest.fixture
def reg(store, tmp_path):
    return Registry(store, tmp_path / "registry")


def _artifact(tmp_path, name="a", content=b"weights"):
    d = tmp_path / f"art-{name}"
    d.mkdir(exist_ok=True)
    (d / "weights.bin").write_bytes(content)
    return d


def _trained(reg, tmp_path, name, metrics=None):
    v = reg.start("mlp", config={"seed": 1}, data_count=10)
    return reg.complete(
        "mlp", v.version, _artifact(tmp_path, name, name.encode()), metrics or {"accuracy": 0.9}
    )


def test_versions_count_up_and_never_reuse_numbers(reg, tmp_path):
    v1 = reg.start("mlp")
    reg.fail("mlp", v1.version, "boom")
    v2 = _trained(reg, tmp_path, "b")
    assert (v1.version, v2.version) == ("v1", "v2")
    assert reg.start("irt").version == "v1"  # per type
    assert [v.status for v in reg.list("mlp")] == ["failed", "completed"]
    assert reg.get("mlp", "v1").error == "boom"


def test_artifacts_are_copied_and_read_only(reg, tmp_path):
    v = _trained(reg, tmp_path, "a")
    path = tmp_path / "registry/mlp/v1/weights.bin"
    assert path.read_bytes() == b"a"
    assert not (path.stat().st_mode & 0o222)
    with pytest.raises(LearnopsError, match="not training"):
        reg.complete("mlp", v.version, _artifact(tmp_path, "x"), {})


def test_deploy_archives_the_previous_and_rollback_restores_it(reg, tmp_path):
    _trained(reg, tmp_path, "a")
    _trained(reg, tmp_path, "b")
    reg.deploy("mlp", "v1")
    time.sleep(0.01)
    reg.deploy("mlp", "v2")
    assert reg.production("mlp").version == "v2"
    assert reg.get("mlp", "v1").status == "archived"
    assert reg.rollback("mlp").version == "v1"
    assert reg.production("mlp").version == "v1"
    assert [v.status for v in reg.list("mlp")] == ["deployed", "archived"]
    assert sum(v.status == "deployed" for v in reg.list("mlp")) == 1


def test_unknown_versions_and_bad_deploys_are_clear_errors(reg, tmp_path):
    with pytest.raises(LearnopsError, match="unknown mlp version 'v9'"):
        reg.deploy("mlp", "v9")
    v = reg.start("mlp")
    with pytest.raises(LearnopsError, match="status training"):
        reg.deploy("mlp", v.version)
    with pytest.raises(LearnopsError, match="no previous"):
        reg.rollback("mlp")
    with pytest.raises(LearnopsError, match="unknown model type"):
        reg.list("gpt")


def test_crash_during_deploy_leaves_production_intact(reg, tmp_path, monkeypatch):
    _trained(reg, tmp_path, "a")
    _trained(reg, tmp_path, "b")
    reg.deploy("mlp", "v1")
    from learnops.data import store as store_mod

    real = store_mod.utcnow

    def crash():
        raise RuntimeError("power cut")

    monkeypatch.setattr("learnops.lifecycle.registry.utcnow", crash)
    with pytest.raises(RuntimeError):
        reg.deploy("mlp", "v2")  # fails after archiving v1 inside the transaction
    monkeypatch.setattr("learnops.lifecycle.registry.utcnow", real)
    assert reg.production("mlp").version == "v1"
    assert reg.get("mlp", "v2").status == "completed"


def _hold_lock(url, root, ready, release):
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry

    reg = Registry(EventStore(url, create=False), root)
    with reg.training_lock():
        ready.set()
        release.wait(10)


def test_second_concurrent_retrain_is_refused(reg, tmp_path):
    """Another process holds the retrain lock on the same store (on PostgreSQL: the advisory
    lock, whatever the registry directory): this one is refused, and gets it once released."""
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    url = reg.store.engine.url.render_as_string(hide_password=False)
    root = reg.root if reg.store.engine.dialect.name == "sqlite" else tmp_path / "other-root"
    p = ctx.Process(target=_hold_lock, args=(url, root, ready, release))
    p.start()
    try:
        assert ready.wait(30)
        assert reg.is_training()
        with (
            pytest.raises(TrainingInProgress, match="Training already in progress"),
            reg.training_lock(),
        ):
            pass
    finally:
        release.set()
        p.join(30)
    assert not reg.is_training()
    with reg.training_lock():
        pass


def test_data_fingerprint_depends_on_content_only(small_sim):
    a = data_fingerprint(small_sim.responses)
    assert a == data_fingerprint(small_sim.responses.copy())
    changed = small_sim.responses.copy()
    changed.loc[changed.index[0], "correct"] = 1 - changed.loc[changed.index[0], "correct"]
    assert data_fingerprint(changed) != a


CFG = RegisterConfig(mlp_metric="accuracy", mlp_min_improvement=0.05, irt_min_accuracy=0.75)
TARGETS = Targets(accuracy=0.85, calibration_error=0.10)


@pytest.mark.parametrize(
    "cand, prod, deploy",
    [
        ({"accuracy": 0.90, "ece": 0.02}, None, True),  # first version, passes targets
        ({"accuracy": 0.80, "ece": 0.02}, None, False),  # first version, below target
        ({"accuracy": 0.90, "ece": 0.20}, None, False),  # miscalibrated
        ({"accuracy": 0.90, "ece": 0.02}, {"accuracy": 0.86}, False),  # +4.7%: not > 5%
        ({"accuracy": 0.904, "ece": 0.02}, {"accuracy": 0.86}, True),  # +5.1%
        ({"accuracy": 0.90, "ece": 0.10}, None, True),  # a maximum is met at the boundary
        ({"accuracy": 0.90}, None, False),  # calibration error not measured
        ({"accuracy": 0.90, "ece": float("nan")}, None, False),
    ],
)
def test_mlp_gate(cand, prod, deploy):
    d = mlp_gate(cand, prod, CFG, TARGETS)
    assert d.deploy is deploy
    assert d.reasons


@pytest.mark.parametrize(
    "cand, prod, deploy",
    [
        ({"accuracy": 0.76, "auc": 0.7}, None, True),
        ({"accuracy": 0.75, "auc": 0.7}, None, True),  # a minimum is met at the boundary
        ({"accuracy": 0.7499, "auc": 0.7}, None, False),
        ({"accuracy": float("nan"), "auc": 0.7}, None, False),
        ({"accuracy": 0.80, "auc": 0.69}, {"accuracy": 0.8, "auc": 0.70}, False),
        ({"accuracy": 0.80, "auc": 0.70}, {"accuracy": 0.8, "auc": 0.70}, True),
    ],
)
def test_irt_gate(cand, prod, deploy):
    assert irt_gate(cand, prod, CFG).deploy is deploy


@pytest.mark.parametrize(
    "metric, cand, prod, deploy",
    [
        ("auc", {"accuracy": 0.70, "auc": 0.78, "log_loss": 0.5}, None, True),
        ("auc", {"accuracy": 0.90, "auc": 0.65, "log_loss": 0.5}, None, False),
        ("log_loss", {"accuracy": 0.70, "auc": 0.7, "log_loss": 0.55}, None, True),
        ("log_loss", {"accuracy": 0.90, "auc": 0.9, "log_loss": 0.65}, None, False),
        ("log_loss", {"auc": 0.9, "log_loss": 0.50}, {"auc": 0.8, "log_loss": 0.49}, False),
        ("log_loss", {"auc": 0.7, "log_loss": 0.49}, {"auc": 0.8, "log_loss": 0.50}, True),
    ],
)
def test_irt_gate_on_auc_or_log_loss(metric, cand, prod, deploy):
    """registry.irt_metric moves the absolute check (and the comparison with production for
    log-loss); every decision reports all three held-out metrics."""
    cfg = RegisterConfig(irt_metric=metric)
    d = irt_gate(cand, prod, cfg)
    assert d.deploy is deploy
    assert any("accuracy" in r and "auc" in r and "log-loss" in r for r in d.reasons)
