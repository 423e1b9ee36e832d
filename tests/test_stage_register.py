"""The register stage on a small trained pipeline: versions, reuse, production on the same
held-out set, the ``outcomes_path`` of ``learnops retrain``, and the tables of notebook 07."""

from __future__ import annotations

import json

import pytest

from learnops.data.store import EventStore
from learnops.lifecycle.registry import Registry
from learnops.stages import register


@pytest.fixture(scope="module")
def params(tmp_path_factory, tiny_project, own_store):
    """A project with exported data and trained models/mlp and models/irt (as the pipeline's
    training stages leave them)."""
    return tiny_project(
        tmp_path_factory.mktemp("register"),
        trained=True,
        evaluate={"targets": {"accuracy": 0.3, "calibration_error": 0.5}},
        registry={"irt_min_accuracy": 0.5},
    )


@pytest.fixture(scope="module")
def first(params):
    return register.run(params)


def _registry(p):
    return Registry(EventStore(p.db_url), p.path(p.paths.models_dir) / "registry")


def test_first_registration_deploys_and_the_tables_agree(params, first):
    assert [(o["model_type"], o["version"]) for o in first.outcomes] == [
        ("mlp", "v1"),
        ("irt", "v1"),
    ]
    assert first.decisions["deployed"].tolist() == [o["deployed"] for o in first.outcomes]
    assert first.decisions["deployed"].all(), first.decision_markdown
    assert first.decisions["production_before"].tolist() == ["none", "none"]
    n_checks = sum(len(o["decision"]["checks"]) for o in first.outcomes)
    assert len(first.checks) == n_checks and first.checks["passed"].all()
    assert {"name", "value", "target", "passed"} <= set(first.checks.columns)
    # candidates only: nothing was in production yet
    assert first.comparison["who"].tolist() == ["candidate", "candidate"]
    reg = _registry(params)
    for o in first.outcomes:
        recorded = reg.get(o["model_type"], o["version"]).metrics
        row = first.comparison[first.comparison.model == o["model_type"]].iloc[0]
        assert row["accuracy"] == pytest.approx(recorded["accuracy"], rel=1e-12)
        assert f"### {o['model_type'].upper()} v1: **deployed**" in first.decision_markdown
    hist = first.history
    assert hist[["model_type", "version", "status"]].values.tolist() == [
        ["irt", "v1", "deployed"],
        ["mlp", "v1", "deployed"],
    ]
    vm = first.version_metrics
    acc = vm[vm.metric == "accuracy"].set_index("model_type")["value"]
    assert acc.to_dict() == pytest.approx(dict(zip(hist.model_type, hist.accuracy, strict=True)))


def test_registering_the_same_models_again_is_a_no_op(params, first):
    again = register.run(params)
    assert [o["version"] for o in again.outcomes] == ["v1", "v1"]
    assert again.decisions["reused"].all()
    assert "nothing new registered" in again.decision_markdown
    assert len(again.history) == len(first.history) == 2
    # production (the same artifacts) evaluated on the same held-out set as the candidate
    for model, g in again.comparison.groupby("model"):
        cand = g[g.who == "candidate"].iloc[0]
        prod = g[g.who == "production"].iloc[0]
        assert prod["version"] == "v1", model
        assert prod["accuracy"] == pytest.approx(cand["accuracy"], rel=1e-9), model


def test_outcomes_path_reports_retrain_outcomes_without_registering(params, first, tmp_path):
    outcomes = json.loads(json.dumps(first.outcomes))
    outcomes[0]["version"] = "v9"
    outcomes[0]["decision"]["reasons"] = ["from learnops retrain"]
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(outcomes))
    res = register.run(params, outcomes_path=str(path))
    assert res.outcomes == outcomes
    assert res.decisions["version"].tolist() == ["v9", "v1"]
    assert "* from learnops retrain" in res.decision_markdown
    assert len(res.history) == 2  # nothing new in the registry


def test_tables_when_nothing_is_registered():
    hist, vm = register.history_tables([])
    assert hist.empty and vm.empty
    assert {"model_type", "version", "status"} <= set(hist.columns)
    assert register.decision_markdown([]) == "Nothing was registered."
    assert register.checks_table([]).empty and register.comparison_table([]).empty
