"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (Schemathesis).

Every operation, the admin API included (with a valid admin token), gets schema-valid and
schema-invalid requests; no answer may be a 5xx and every documented answer must match the
schema. ``LEARNOPS_FUZZ_EXAMPLES`` (default 50 per operation) bounds the run; the examples are
derandomized so that CI sees the same requests every time (raise the bound and set
``LEARNOPS_FUZZ_RANDOM=1`` to explore).

Strict JSON has no NaN, Infinity or lone surrogates, so Schemathesis cannot send the 5xx of
issue 22 item 4: a second property test puts any JSON value (non-strict ones too) into any field
of the JSON bodies, and the item-4 requests are pinned as plain cases.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error, response_schema_conformance  # noqa: E402

from learnops.config import MlpConfig, Params  # noqa: E402
from learnops.contracts import FEATURES  # noqa: E402
from learnops.data.store import EventStore  # noqa: E402
from learnops.lifecycle.registry import Registry  # noqa: E402
from learnops.serve import Tokens, create_app  # noqa: E402

ADMIN, USER = "fuzz-admin-token", "fuzz-user-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
MAX_EXAMPLES = int(os.environ.get("LEARNOPS_FUZZ_EXAMPLES", "50"))
DERANDOMIZE = os.environ.get("LEARNOPS_FUZZ_RANDOM", "") != "1"
CHECKS = [not_a_server_error, response_schema_conformance]


def _no_retrain(params, **kwargs):
    """Stands in for the real retrain: the fuzzer must not train models."""
    return []


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """The app in-process: a served MLP version, client and admin tokens, a temp SQLite store."""
    from learnops.data.simulate import simulate_decisions_table
    from learnops.mlp import save, train

    root = tmp_path_factory.mktemp("fuzz")
    params = Params(root=root, mlp={"confidence_threshold": 0.6})
    store = EventStore(f"sqlite:///{root / 'events.db'}")
    table = simulate_decisions_table(600, 3)
    model_dir = save(train(table, MlpConfig(epochs=1, hidden=(16,)), seed=0), root / "mlp")
    reg = Registry(store, params.path(params.paths.models_dir) / "registry")
    v = reg.start("mlp", data_count=len(table))
    reg.complete("mlp", v.version, model_dir, {"accuracy": 0.5})
    reg.deploy("mlp", v.version)
    app = create_app(
        params,
        tokens=Tokens.of(admin=[ADMIN], user=[USER]),
        store=store,
        retrain_fn=_no_retrain,
    )
    yield app
    app.state.serve.close()
    store.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


@pytest.fixture(autouse=True)
def _pytest9_node_id(request):
    """schemathesis' lazy fixture reads ``node._nodeid``, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzz_no_5xx_and_responses_match_the_schema(case):
    case.call_and_validate(headers=AUTH, checks=CHECKS)


# -- bodies Schemathesis cannot send: strict JSON has no NaN, Infinity or lone surrogates ----------


#: A valid body for each JSON endpoint; the fuzzer swaps one field for a hostile value.
def _bodies(decision_id: str = "0" * 32) -> dict[str, dict[str, Any]]:
    decide = {f: 0.5 for f in FEATURES} | {"hour_of_day": 12.0, "learner_id": "fuzz-learner"}
    return {
        "/decide": decide | {"ab_test": "t1", "ab_group": "ml"},
        "/outcomes": {"decision_id": decision_id, "next_accuracy": 0.5, "session_completed": True},
        "/api/mlops/retrain": {"limit": 10, "autoDeploy": False, "since": "2026-01-01"},
    }


#: any code point, lone surrogates included (json.dumps escapes them as ``\\udXXX``)
_text = st.text(st.characters() | st.sampled_from("\x00\x1b\n\t\u202e\ud800"), max_size=40)
_floats = st.floats()  # NaN and +-Infinity too (json.dumps writes them as NaN / Infinity)
_edge_numbers = st.sampled_from([1e308, -1e308, -0.0, 5e-324, 2**70])
_scalars = st.none() | st.booleans() | _floats | _edge_numbers | st.integers() | _text
_values = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_text, kids, max_size=4),
    max_leaves=12,
)


def _post_raw(client, path: str, text: str):
    return client.post(
        path,
        content=text.encode("utf-8", "surrogatepass"),
        headers={**AUTH, "Content-Type": "application/json"},
    )


@settings(
    max_examples=MAX_EXAMPLES * 4,
    deadline=None,
    database=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=list(HealthCheck),
)
@given(
    path=st.sampled_from(sorted(_bodies())),
    data=st.data(),
)
def test_hostile_json_values_never_give_5xx(fuzz_client, path, data):
    """Any JSON value in any field (or a new one, or a dropped one) gets an answer below 500."""
    body = _bodies(fuzz_client.decision_id)[path]
    key = data.draw(st.sampled_from([*body, "extra"]), label="key")
    if data.draw(st.booleans(), label="drop"):
        body.pop(key, None)
    else:
        body[key] = data.draw(_values, label="value")
    r = _post_raw(fuzz_client, path, json.dumps(body))
    assert r.status_code < 500, (path, body, r.status_code, r.text[:300])


#: Issue 22 item 4: the 422 handler could not serialise the value it echoed, so these gave 500.
_NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]
_SURROGATE = '"\\ud800"'  # a lone surrogate, escaped as JSON allows


_NUMBER_FIELDS = [
    ("/decide", "engagement"),
    ("/outcomes", "next_accuracy"),
    ("/api/mlops/retrain", "limit"),
]
_TEXT_FIELDS = [
    ("/decide", "learner_id"),
    ("/decide", "ab_group"),
    ("/outcomes", "decision_id"),
    ("/api/mlops/retrain", "since"),
]


@pytest.mark.parametrize(
    ("path", "field", "raw_value"),
    [(p, f, v) for p, f in _NUMBER_FIELDS for v in _NON_FINITE]
    + [(p, f, _SURROGATE) for p, f in _TEXT_FIELDS],
)
def test_non_finite_numbers_and_lone_surrogates_get_422(fuzz_client, path, field, raw_value):
    """Minimal reproductions of the 5xx: one field of a valid body set to a non-strict value."""
    body = _bodies(fuzz_client.decision_id)[path]
    body[field] = "@@"
    text = json.dumps(body).replace('"@@"', raw_value)
    r = _post_raw(fuzz_client, path, text)
    assert r.status_code == 422, (text, r.status_code, r.text[:300])


@pytest.fixture(scope="module")
def fuzz_client(fuzz_app):
    """A client that turns server errors into 500s; ``.decision_id`` is a logged decision."""
    client = TestClient(fuzz_app, raise_server_exceptions=False)
    r = client.post("/decide", json=_bodies()["/decide"], headers=AUTH)
    assert r.status_code == 200, r.text
    client.decision_id = r.json()["decision_id"]
    return client
