"""Shared fixtures: event stores (SQLite, and PostgreSQL when LEARNOPS_TEST_PG is set), a small
simulation, and the tiny pipeline project of the stage tests."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import yaml

from learnops.config import Params, SimulateConfig, load_params

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


# The tiny pipeline of the stage tests: params.yaml sections, small enough to train in seconds.
TINY: dict[str, Any] = {
    "seed": 5,
    "simulate": {"n_learners": 160, "n_items": 30, "n_modules": 3, "days": 30},
    "export": {"last_days": 60, "min_data_points": 50},
}
TINY_MLP = {"epochs": 3, "batch_size": 64, "patience": 2}
TINY_IRT = {"quad_points": 31, "max_iter": 100, "tol": 1.0e-4}


def tiny_params(root: Path, **sections: Any) -> Params:
    """Write ``root/params.yaml`` and load it: the TINY sections, each given section's keys
    replacing TINY's (a section TINY lacks is taken whole; ``None`` drops the section, so its
    defaults apply)."""
    raw = copy.deepcopy(TINY)
    for key, value in sections.items():
        if value is None:
            raw.pop(key, None)
        elif isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(root / "params.yaml")


@pytest.fixture(scope="module")
def own_store():
    """LEARNOPS_DB_URL unset for the whole module: params.db_url is the project's SQLite file."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LEARNOPS_DB_URL", raising=False)
        yield


def _build_tiny(root: Path, trained: bool, exported: Path | None) -> Path:
    """TINY simulated into root's store and exported (or copied from ``exported``); with
    ``trained``, models/mlp and models/irt fitted on the training holdouts as the training stages
    leave them (fit.json without wall-clock seconds)."""
    from learnops.data.export import export
    from learnops.data.simulate import simulate_to_store
    from learnops.data.store import EventStore

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LEARNOPS_DB_URL", raising=False)
        if exported is None:
            p = tiny_params(root)
            simulate_to_store(p)
            store = EventStore(p.db_url)
            try:
                export(store, p.export, p.path(p.paths.processed_dir))
            finally:
                store.dispose()
        else:
            shutil.copytree(exported / "data", root / "data")
            p = tiny_params(root, mlp=TINY_MLP, irt=TINY_IRT)
        if trained:
            from learnops import irt, mlp
            from learnops.data.splits import irt_holdout, mlp_holdout
            from learnops.io import read_table

            processed = p.path(p.paths.processed_dir)
            models = p.path(p.paths.models_dir)
            train = mlp_holdout(read_table(processed / "decisions.parquet"), p)[0]
            mlp.save(mlp.train(train, p.mlp, p.seed), models / "mlp")
            train = irt_holdout(read_table(processed / "responses.parquet"), p)[0]
            fitted = irt.fit(train, p.irt.model, config=p.irt, seed=p.seed)
            fitted.save(models / "irt", timing=False)
    return root


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory):
    """``tiny_project(root, trained=False, **sections) -> Params``: a copy in ``root`` of the tiny
    project, built once per session (TINY simulated into its SQLite store under data/raw and
    exported to data/processed; with ``trained`` also models/mlp and models/irt, trained with
    TINY_MLP and TINY_IRT), and its params: :func:`tiny_params` of ``sections`` (with ``trained``,
    on top of the TINY_MLP and TINY_IRT sections, which ``sections`` may not change).

    Every caller gets its own copy: stages may write to it freely."""
    built: dict[bool, Path] = {}

    def source(trained: bool) -> Path:
        if trained not in built:
            exported = source(False) if trained else None
            root = tmp_path_factory.mktemp("tiny_trained" if trained else "tiny_exported")
            built[trained] = _build_tiny(root, trained, exported)
        return built[trained]

    def make(root: Path, trained: bool = False, **sections: Any) -> Params:
        src = source(trained)
        shutil.copytree(src / "data", root / "data")
        if not trained:
            return tiny_params(root, **sections)
        shutil.copytree(src / "models", root / "models")
        p = tiny_params(root, **{"mlp": TINY_MLP, "irt": TINY_IRT, **sections})
        q = load_params(src / "params.yaml")
        # the models were trained with these: a test must not claim other settings
        for got, want in ((p.mlp, q.mlp), (p.irt, q.irt), (p.seed, q.seed)):
            assert got == want, (got, want)
        assert p.evaluate.test_split == q.evaluate.test_split
        return p

    return make
