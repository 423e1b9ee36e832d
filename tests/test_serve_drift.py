"""Drift gauges on /metrics: live decisions against the training export, by the monitoring rule."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.config import Params  # noqa: E402
from learnops.contracts import FEATURES  # noqa: E402
from learnops.serve import RuleTeacher, Tokens, create_app  # noqa: E402


@pytest.fixture(scope="module")
def table():
    from learnops.data.simulate import simulate_decisions_table

    return simulate_decisions_table(1200, 8)


def _client(tmp_path, table, with_reference=True):
    params = Params(root=tmp_path, monitor={"permutations": 399, "min_n": 50})
    if with_reference:
        from learnops.io import write_table

        write_table(params.path(params.paths.processed_dir) / "decisions.parquet", table)
    app = create_app(params, tokens=Tokens.of(admin=["a"]), fallback=RuleTeacher(sample=False))
    return TestClient(app)


def _gauge(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _post(client, rows, shift=0.0):
    for i, row in enumerate(rows.to_dict("records")):
        body = {f: float(row[f]) for f in FEATURES}
        body["engagement"] = min(1.0, max(0.0, body["engagement"] + shift))
        body["learner_id"] = str(row["learner_hash"])
        assert client.post("/decide", json=body).status_code == 200, i


def test_same_distribution_no_drift_shifted_engagement_drift(tmp_path, table):
    client = _client(tmp_path, table)
    watch = client.app.state.serve.drift
    _post(client, table.iloc[:300])  # rows of the training data itself
    watch.compute()
    text = client.get("/metrics").text
    assert _gauge(text, "learnops_dataset_drift") == 0
    assert _gauge(text, "learnops_drift_window_decisions") == 300
    assert 'learnops_feature_drift_p_value{feature="engagement"}' in text

    shifted = _client(tmp_path / "b", table)
    _post(shifted, table.iloc[300:600], shift=-0.3)
    shifted.app.state.serve.drift.compute()
    text = shifted.get("/metrics").text
    assert _gauge(text, "learnops_dataset_drift") == 1
    assert _gauge(text, 'learnops_feature_drifted{feature="engagement"}') == 1


def test_without_reference_or_enough_decisions_drift_is_not_tested(tmp_path, table):
    client = _client(tmp_path, table, with_reference=False)
    _post(client, table.iloc[:60])
    client.app.state.serve.drift.compute()
    assert _gauge(client.get("/metrics").text, "learnops_dataset_drift") == -1
    few = _client(tmp_path / "few", table)
    _post(few, table.iloc[:10])
    few.app.state.serve.drift.compute()
    assert _gauge(few.get("/metrics").text, "learnops_dataset_drift") == -1
