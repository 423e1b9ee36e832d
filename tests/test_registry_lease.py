"""Training leases (issue 22, item 7): a version left `training` by a dead process becomes
`failed` ("interrupted") on the next server start or retrain; and status polling never takes
the retrain lock (item 9)."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import threading
import time
from contextlib import nullcontext

import pytest
from conftest import tiny_params
from sqlalchemy import text

from learnops.data.store import EventStore
from learnops.errors import NoTrainingData
from learnops.lifecycle.registry import Registry


def _train_until_killed(url, root, ready, lease_s):
    """A retrain that holds the lock and a lease (heartbeat every 0.1 s) and never finishes."""
    import learnops.lifecycle.registry as registry

    registry.LEASE_S, registry.HEARTBEAT_S = lease_s, 0.1
    reg = registry.Registry(EventStore(url), root)
    with reg.training_lock():
        v = reg.start("mlp")
        lease = getattr(reg, "lease", None)
        with lease("mlp", v.version) if lease else nullcontext():
            ready.set()
            time.sleep(120)


def _killed_mid_training(url, root, lease_s=1.0):
    """Start a retrain in a subprocess, kill -9 it mid-training; the version it left."""
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_train_until_killed, args=(url, root, ready, lease_s))
    p.start()
    try:
        assert ready.wait(60)
    finally:
        p.kill()
        p.join(30)
    return "v1"


def _wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    p = tiny_params(tmp_path / "proj")
    return p, Registry(EventStore(p.db_url), p.path(p.paths.models_dir) / "registry")


def test_killed_retrain_is_marked_interrupted_on_the_next_server_start(project):
    from learnops.serve.state import ServeState

    params, reg = project
    version = _killed_mid_training(params.db_url, reg.root, lease_s=1.0)
    assert reg.get("mlp", version).status == "training"
    assert _wait_for(lambda: not _lease_alive(reg, version), 10)
    state = ServeState.build(params)
    try:
        v = reg.get("mlp", version)
        assert (v.status, v.error) == ("failed", "interrupted")
        assert v.training_completed_at is not None
    finally:
        state.close()


def test_server_started_within_the_lease_marks_the_version_once_it_expires(project):
    from learnops.serve.state import ServeState

    params, reg = project
    version = _killed_mid_training(params.db_url, reg.root, lease_s=3.0)
    state = ServeState.build(params)  # the lease is still valid: not (yet) interrupted
    try:
        assert reg.get("mlp", version).status == "training"
        assert _wait_for(lambda: reg.get("mlp", version).status == "failed", 30)
        assert reg.get("mlp", version).error == "interrupted"
    finally:
        state.close()


def test_killed_retrain_is_marked_interrupted_by_the_next_retrain(project):
    from learnops.lifecycle.retrain import retrain

    params, reg = project
    version = _killed_mid_training(params.db_url, reg.root, lease_s=1.0)
    assert _wait_for(lambda: not _lease_alive(reg, version), 10)
    with pytest.raises(NoTrainingData):  # the store is empty: nothing to train on
        retrain(params, models=["mlp"])
    v = reg.get("mlp", version)
    assert (v.status, v.error) == ("failed", "interrupted")


def _lease_alive(reg, version):
    v = reg.get("mlp", version)
    expires = getattr(v, "lease_expires_at", None)
    from learnops.data.store import utcnow

    return expires is not None and expires > utcnow()


def test_a_live_lease_keeps_its_version_and_an_expired_one_fails(store, tmp_path):
    reg = Registry(store, tmp_path / "registry", lease_s=2.0, heartbeat_s=0.1)
    done = reg.start("irt")
    reg.fail("irt", done.version, "boom")
    v = reg.start("mlp")
    with reg.lease("mlp", v.version):
        first = reg.get("mlp", v.version).lease_expires_at
        assert _wait_for(lambda: reg.get("mlp", v.version).lease_expires_at > first, 10)
        assert reg.recover_interrupted() == []
    assert reg.get("mlp", v.version).status == "training"  # not expired yet
    assert _wait_for(lambda: bool(reg.recover_interrupted()), 10)
    assert (reg.get("mlp", v.version).status, reg.get("mlp", v.version).error) == (
        "failed",
        "interrupted",
    )
    assert reg.get("irt", done.version).error == "boom"  # other versions untouched


def test_an_expired_lease_under_a_held_lock_is_left_alone(store, tmp_path):
    """A heartbeat that stalled (a write-locked database) while its retrain still holds the lock
    is not taken for an interrupted retrain."""
    reg = Registry(store, tmp_path / "registry", lease_s=0.01)
    v = reg.start("mlp")
    other = Registry(store, reg.root)
    held, release = threading.Event(), threading.Event()

    def hold():
        with other.training_lock():
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        time.sleep(0.05)
        assert reg.recover_interrupted() == []
    finally:
        release.set()
        t.join(10)
    assert [x.version for x in reg.recover_interrupted()] == [v.version]


def test_stores_without_the_lease_column_get_it_on_open(store, tmp_path):
    """A store created before leases existed: the column is added on open, and a version it left
    in `training` (no lease: its start time counts) is recovered."""
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE model_versions DROP COLUMN lease_expires_at"))
        conn.execute(
            text(
                "INSERT INTO model_versions (model_type, number, version, status, created_at,"
                " training_started_at) VALUES ('mlp', 1, 'v1', 'training', :t, :t)"
            ),
            {"t": "2020-01-01 00:00:00"},
        )
    reopened = EventStore(store.url)
    try:
        reg = Registry(reopened, tmp_path / "registry")
        assert reg.get("mlp", "v1").lease_expires_at is None
        assert [v.version for v in reg.recover_interrupted()] == ["v1"]
        assert reg.get("mlp", "v1").error == "interrupted"
        EventStore(store.url).dispose()  # opening again: nothing left to add
    finally:
        reopened.dispose()


# -- item 9: status polling must not take the retrain lock -------------------------------------
_LOCKER = """
import sys
from learnops.data.store import EventStore
from learnops.errors import TrainingInProgress
from learnops.lifecycle.registry import Registry
reg = Registry(EventStore("sqlite://"), sys.argv[1])
refused = 0
for _ in range(int(sys.argv[2])):
    try:
        with reg.training_lock():
            pass
    except TrainingInProgress:
        refused += 1
print(refused)
"""


def test_status_pollers_cause_no_spurious_refusals(tmp_path):
    """4 threads poll is_training (what GET /api/mlops/status does) while another process takes
    the retrain lock 1,000 times: none of its attempts is refused."""
    reg = Registry(EventStore("sqlite://"), tmp_path / "registry")
    stop = threading.Event()
    polls = [0] * 4

    def poll(i):
        while not stop.is_set():
            reg.is_training()
            polls[i] += 1

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", _LOCKER, str(reg.root), "1000"],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert min(polls) > 0
    assert int(out.stdout) == 0
