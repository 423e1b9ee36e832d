"""Shared fixtures: event stores (SQLite, and PostgreSQL when LEARNOPS_TEST_PG is set), a small
simulation."""

from __future__ import annotations

import os

import matplotlib
import pytest

from learnops.config import SimulateConfig

# tests draw figures without a display; reports (notebooks) use the inline backend instead
matplotlib.use("Agg")

SMALL_SIM = SimulateConfig(n_learners=120, n_items=40, n_modules=4, days=30)

_BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("LEARNOPS_TEST_PG") else [])


@pytest.fixture(params=_BACKENDS)
def store(request, tmp_path):
    """An empty EventStore on each available backend."""
    from learnops.data.store import Base, EventStore

    if request.param == "sqlite":
        s = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    else:
        s = EventStore(os.environ["LEARNOPS_TEST_PG"], create=False)
        Base.metadata.drop_all(s.engine)
        Base.metadata.create_all(s.engine)
    yield s
    if request.param == "postgres":
        Base.metadata.drop_all(s.engine)
    s.dispose()


@pytest.fixture(scope="session")
def small_sim():
    """A small simulation (shared, read-only)."""
    from learnops.data.simulate import simulate

    return simulate(SMALL_SIM, seed=11)
