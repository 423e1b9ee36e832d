"""The experiment API: list, start (201/409/422), show, stop (404/409), admin only."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.config import Params  # noqa: E402
from learnops.data.store import ABTest, EventStore  # noqa: E402
from learnops.serve import Tokens, create_app, routes_experiments  # noqa: E402

ADMIN, USER = "admin-secret-token", "user-secret-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
URL = "/api/mlops/experiments"
BODY = {"name": "api_exp", "arms": {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}}


@pytest.fixture
def client(tmp_path):
    params = Params(root=tmp_path, ab={"min_sample_size": 20})
    app = create_app(params, tokens=Tokens.of(admin=[ADMIN], user=[USER]))
    if not any(getattr(r, "path", None) == URL for r in app.routes):  # until app.py mounts it
        app.include_router(routes_experiments.router)
    with TestClient(app) as c:
        yield c


def _n_experiments(client) -> int:
    return client.app.state.serve.store.count(ABTest)


def test_admin_token_required(client):
    assert client.get(URL).status_code == 401
    assert client.post(URL, json=BODY).status_code == 401
    assert client.post(f"{URL}/x/stop").status_code == 401
    user = {"Authorization": f"Bearer {USER}"}
    assert client.get(URL, headers=user).status_code == 403
    assert client.post(URL, json=BODY, headers=user).status_code == 403
    assert client.post(f"{URL}/x/stop", headers=user).status_code == 403
    assert _n_experiments(client) == 0


def test_start_list_show(client):
    assert client.get(URL, headers=AUTH).json() == {"experiments": []}
    r = client.post(
        URL, json={**BODY, "minSampleSize": 30, "description": "d", "control": "ml"}, headers=AUTH
    )
    assert r.status_code == 201, r.text
    exp = r.json()
    assert exp["name"] == "api_exp" and exp["status"] == "running"
    assert exp["arms"] == BODY["arms"] and exp["minSampleSize"] == 30
    assert exp["control"] == "ml" and exp["createdBy"] == "api"
    listed = client.get(URL, headers=AUTH).json()["experiments"]
    assert [e["name"] for e in listed] == ["api_exp"] and listed[0]["logged"] == {}
    shown = client.get(f"{URL}/api_exp", headers=AUTH).json()
    assert shown["results"] is None and shown["status"] == "running"
    assert client.get(f"{URL}/nope", headers=AUTH).status_code == 404


def test_start_defaults_come_from_params(client):
    r = client.post(URL, json=BODY, headers=AUTH)
    assert r.json()["minSampleSize"] == 20 and r.json()["control"] == "gpt4"


def test_start_conflicts_are_409(client):
    assert client.post(URL, json=BODY, headers=AUTH).status_code == 201
    r = client.post(URL, json={**BODY, "name": "second"}, headers=AUTH)
    assert r.status_code == 409 and "api_exp is running" in r.json()["detail"]
    assert client.post(URL, json=BODY, headers=AUTH).status_code == 409
    assert client.post(f"{URL}/api_exp/stop", headers=AUTH).status_code == 200
    r = client.post(URL, json=BODY, headers=AUTH)  # a used name, though stopped
    assert r.status_code == 409 and "already used" in r.json()["detail"]
    assert "api_exp" not in r.json()["detail"]  # the input is not echoed
    assert _n_experiments(client) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "arms": {"ml": 0.5, "gpt4": 0.6}}, "arms"),
        ({**BODY, "arms": {"ml": 1.0}}, "arms"),
        ({**BODY, "arms": {"ml": 0.5, "bandit": 0.5}}, "arms"),
        ({**BODY, "arms": {"ml": 0, "gpt4": 1}}, "arms"),
        ({**BODY, "arms": {"ml": "0.5", "gpt4": 0.5}}, "arms"),
        ({**BODY, "arms": {"ml": 0.5, "hybrid": 0.5}}, "control"),
        ({**BODY, "control": "bandit"}, "control"),
        ({**BODY, "name": "bad name!"}, "name"),
        ({**BODY, "name": ""}, "name"),
        ({**BODY, "name": "x" * 65}, "name"),
        ({**BODY, "minSampleSize": 0}, "minSampleSize"),
        ({**BODY, "minSampleSize": 1.5}, "minSampleSize"),
        ({**BODY, "extra": 1}, "extra"),
        ({"arms": BODY["arms"]}, "name"),
    ],
)
def test_bad_bodies_are_422_without_the_input(client, body, field):
    r = client.post(URL, json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and all(set(e) == {"loc", "msg", "type"} for e in detail)
    assert any(field in e["loc"] for e in detail), detail
    assert "bad name!" not in r.text and "bandit" not in str([e["msg"] for e in detail])
    assert _n_experiments(client) == 0


def test_nan_shares_are_422(client):
    raw = '{"name": "n", "arms": {"ml": NaN, "gpt4": 0.5}}'
    r = client.post(URL, content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422


def test_stop(client, small_sim):
    assert client.post(f"{URL}/nope/stop", headers=AUTH).status_code == 404
    assert client.post(URL, json=BODY, headers=AUTH).status_code == 201
    store: EventStore = client.app.state.serve.store
    d = small_sim.decisions.copy()
    d.loc[d["ab_test"].notna(), "ab_test"] = "api_exp"
    store.insert_decisions(d)

    counts = client.get(URL, headers=AUTH).json()["experiments"][0]["logged"]
    assert set(counts) == {"ml", "gpt4", "hybrid"} and counts["ml"]["decisions"] > 0

    r = client.post(f"{URL}/api_exp/stop", headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["experiment"]["status"] == "stopped"
    assert out["nDecisions"] == int(d["ab_test"].notna().sum())
    assert out["reports"]["html"].endswith("api_exp.html") and out["reportError"] is None
    assert out["decision"] and out["reason"]
    r = client.post(f"{URL}/api_exp/stop", headers=AUTH)
    assert r.status_code == 409 and "not running" in r.json()["detail"]
    shown = client.get(f"{URL}/api_exp", headers=AUTH).json()
    assert shown["status"] == "stopped" and shown["results"]["srm"] is not None


def test_start_and_stop_refresh_the_servers_running_experiment(client):
    state = client.app.state.serve
    calls = []

    class Cache:
        def refresh(self):
            calls.append(1)

    old = getattr(state, "experiments", None)
    state.experiments = Cache()
    try:
        client.post(URL, json=BODY, headers=AUTH)
        client.post(f"{URL}/api_exp/stop", headers=AUTH)
    finally:
        state.experiments = old
    assert len(calls) == 2
