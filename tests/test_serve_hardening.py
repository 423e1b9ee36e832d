"""Hardening of the HTTP API (issue 22 items 1, 4, 5 and the HTTP part of 13): bounded request
bodies, 422s that name fields without echoing input, NaN/Infinity/lone surrogates as 422, every
5xx counted, request ids in responses and logs (never bodies or learner ids), strict types."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.config import ConfigError, Params, load_params  # noqa: E402
from learnops.contracts import FEATURES  # noqa: E402
from learnops.serve import RuleTeacher, Tokens, create_app  # noqa: E402

ADMIN = "admin-secret-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
SECRET_ID = "alice@example.com"


def _features(**over):
    out = {f: 0.5 for f in FEATURES}
    out.update(hour_of_day=10.0, consecutive_errors=1, items_in_session=3)
    out.update(over)
    return out


def _body(**over):
    return {**_features(), "learner_id": SECRET_ID, **over}


def _client(tmp_path, raise_server_exceptions=False, **serve):
    params = Params(root=tmp_path, serve=serve) if serve else Params(root=tmp_path)
    app = create_app(params, tokens=Tokens.of(admin=[ADMIN]))
    return TestClient(app, raise_server_exceptions=raise_server_exceptions)


def _raw(client, path, text, **headers):
    return client.post(
        path, content=text.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json", **headers},
    )  # fmt: skip


def _errors(client):
    text = client.get("/metrics").text
    return {
        line.split('kind="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("learnops_errors_total{")
    }


# --- item 1: request size limit, answered before parsing -----------------------------------


def test_serve_config_default_limit_and_unknown_keys(tmp_path):
    assert Params().serve.max_body_bytes == 65536
    f = tmp_path / "p.yaml"
    f.write_text("serve:\n  max_body_bytes: 2048\n")
    assert load_params(f).serve.max_body_bytes == 2048
    f.write_text("serve:\n  max_body_byte: 2048\n")
    with pytest.raises(ConfigError, match="max_body_byte"):
        load_params(f)
    f.write_text("serve:\n  max_body_bytes: 0\n")
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_params(f)


def test_oversized_body_gets_413_with_and_without_content_length(tmp_path):
    client = _client(tmp_path, max_body_bytes=4096)
    ok = client.post("/decide", json=_body())
    assert ok.status_code == 200, ok.text
    big = json.dumps(_body(learner_id="x" * 10_000))
    r = _raw(client, "/decide", big)  # with Content-Length
    assert r.status_code == 413, r.text
    assert SECRET_ID not in r.text and "xxxx" not in r.text
    # chunked (no Content-Length): the streamed bytes are counted
    chunks = [big[i : i + 1000].encode() for i in range(0, len(big), 1000)]
    r = client.post("/decide", content=iter(chunks), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    # also on the admin API, before authentication could even look at the body
    assert _raw(client, "/api/mlops/retrain", "[" * 5000, **AUTH).status_code == 413
    # the default limit (64 KB) lets normal bodies through and stops a 100 KB one
    default = _client(tmp_path / "d")
    assert default.post("/decide", json=_body()).status_code == 200
    assert _raw(default, "/decide", json.dumps(_body(pad="y" * 100_000))).status_code == 413


def test_413_is_sent_before_the_app_or_the_body_is_touched():
    from learnops.serve.middleware import BodyLimitMiddleware

    called, received, sent = [], [], []

    async def inner(scope, receive, send):  # pragma: no cover - must not run
        called.append(scope)

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def send(message):
        sent.append(message)

    mw = BodyLimitMiddleware(inner, max_body_bytes=65536)
    scope = {"type": "http", "method": "POST", "path": "/decide",
             "headers": [(b"content-length", b"5000000")]}  # fmt: skip
    asyncio.run(mw(scope, receive, send))
    assert called == [] and received == []
    assert sent[0]["status"] == 413
    # a streamed body stops being read as soon as it passes the limit
    scope["headers"] = [(b"transfer-encoding", b"chunked")]
    sent.clear()
    asyncio.run(mw(scope, receive, send))
    assert called == [] and len(received) == 66 and sent[0]["status"] == 413


def test_validation_errors_name_fields_but_never_echo_input(tmp_path):
    client = _client(tmp_path)
    missing = _body()
    del missing["engagement"]
    bad = [
        missing,
        _body(recent_accuracy=1.5),
        _body(bogus=SECRET_ID),
        {**_features(), "learner_id": 12345},
        _body(ab_group=[SECRET_ID]),
    ]
    for body in bad:
        r = client.post("/decide", json=body)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail and all(set(e) <= {"loc", "msg", "type"} for e in detail), detail
        assert SECRET_ID not in r.text and '"input"' not in r.text
    r = client.post("/decide", json=missing)
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "engagement"]]
    r = client.post("/outcomes", json={"decision_id": SECRET_ID, "next_accuracy": "high"})
    assert r.status_code == 422 and SECRET_ID not in r.text and "high" not in r.text


# --- item 4: NaN, Infinity, lone surrogates -> 422; every 5xx counted -----------------------


def _json_with(field, literal):
    """The JSON text of a valid body with ``field`` set to a non-JSON literal (NaN, ...)."""
    text = json.dumps(_body()).replace(f'"{field}": 0.5', f'"{field}": {literal}')
    assert literal in text
    return text


@pytest.mark.parametrize(
    "path,text",
    [
        ("/decide", _json_with("recent_accuracy", "NaN")),
        ("/decide", _json_with("engagement", "Infinity")),
        ("/decide", _json_with("ability", "-Infinity")),
        ("/decide", json.dumps(_body(learner_id="a\ud800b"))),
        ("/decide", json.dumps(_body(ab_test="t", ab_group="\udfff"))),
        ("/decide", json.dumps(_body(bogus=float("nan")))),
        ("/outcomes", '{"decision_id": "abc", "next_accuracy": NaN}'),
        ("/outcomes", '{"decision_id": "\\ud800", "next_accuracy": 0.5}'),
        ("/api/mlops/retrain", '{"limit": Infinity}'),
    ],
)
def test_nan_infinity_and_lone_surrogates_get_422(tmp_path, path, text):
    client = _client(tmp_path)
    r = _raw(client, path, text, **AUTH)
    assert r.status_code == 422, r.text
    assert '"input"' not in r.text and SECRET_ID not in r.text
    assert not any(k.startswith("http_5") for k in _errors(client))


def test_every_5xx_is_counted_in_the_errors_metric(tmp_path, monkeypatch):
    from learnops.serve import routes_decide

    class Broken:
        def decide(self, features):
            raise RuntimeError("teacher down")

    app = create_app(Params(root=tmp_path), tokens=Tokens.of(admin=[ADMIN]), fallback=Broken())
    client = TestClient(app)  # raise_server_exceptions=True: nothing may escape the app
    r = client.post("/decide", json=_body())
    assert r.status_code == 503
    monkeypatch.setattr(app.state.serve, "teacher", RuleTeacher())
    monkeypatch.setattr(routes_decide, "decision_row", lambda *a: 1 / 0)
    r = client.post("/decide", json=_body())
    assert r.status_code == 500
    assert r.json()["detail"] == "internal server error"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert SECRET_ID not in r.text
    errors = _errors(client)
    assert errors["http_503"] == 1 and errors["http_500"] == 1


# --- item 5: request ids; logs carry ids and field names, never bodies or learner ids -------


def test_every_response_carries_a_request_id(tmp_path):
    client = _client(tmp_path, max_body_bytes=2048)
    responses = [
        client.post("/decide", json=_body()),
        client.post("/decide", json=_body(recent_accuracy=2)),
        _raw(client, "/decide", json.dumps(_body(pad="z" * 5000))),
        client.get("/health"),
        client.get("/nowhere"),
        client.get("/api/mlops/status"),
    ]
    assert [r.status_code for r in responses] == [200, 422, 413, 200, 404, 401]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)
    # a sane incoming id is kept (tracing through a proxy); anything else is replaced
    r = client.get("/health", headers={"X-Request-ID": "trace-42.a_b"})
    assert r.headers["x-request-id"] == "trace-42.a_b"
    r = client.get("/health", headers={"X-Request-ID": SECRET_ID})
    assert r.headers["x-request-id"] != SECRET_ID and "@" not in r.headers["x-request-id"]


def test_logs_carry_request_ids_and_field_names_only(tmp_path, monkeypatch, caplog):
    from learnops.serve import routes_decide

    client = _client(tmp_path, raise_server_exceptions=True)
    caplog.set_level(logging.DEBUG)
    ids = []
    bad = [
        _body(recent_accuracy=7.0),
        {k: v for k, v in _body().items() if k != "engagement"},
        _body(learner_id=" "),
    ]
    for body in bad:
        r = client.post("/decide", json=body)
        assert r.status_code == 422
        ids.append(r.headers["x-request-id"])
    r = _raw(client, "/decide", _json_with("hint_rate", "NaN"))
    assert r.status_code == 422
    ids.append(r.headers["x-request-id"])

    def leak(learner_id, features, decision, **kw):  # an error whose message carries the body
        raise ValueError(f"cannot log decision of {learner_id}: {dict(features)}")

    monkeypatch.setattr(routes_decide, "decision_row", leak)
    r = client.post("/decide", json=_body())  # raises in the test client if it escapes the app
    assert r.status_code == 500
    ids.append(r.headers["x-request-id"])
    text = caplog.text
    for rid in ids:
        assert rid in text
    assert "recent_accuracy" in text and "engagement" in text and "learner_id" in text
    assert "ValueError" in text
    assert SECRET_ID not in text and "alice" not in text and "7.0" not in text


# --- item 13 (HTTP): strict types, no blank ids, no control characters ----------------------


@pytest.mark.parametrize(
    "path,body",
    [
        ("/decide", _body(recent_accuracy="0.5")),
        ("/decide", _body(engagement=True)),
        ("/decide", _body(hour_of_day="10")),
        ("/decide", _body(learner_id=" ")),
        ("/decide", _body(learner_id="\t\n")),
        ("/decide", _body(learner_id="al\x00ice")),
        ("/decide", _body(ab_test="t", ab_group="m\x00l")),
        ("/decide", _body(ab_test="t\x1b[31m", ab_group="ml")),
        ("/decide", _body(ab_test="t", ab_group=" ")),
        ("/outcomes", {"decision_id": "abc", "session_completed": "yes"}),
        ("/outcomes", {"decision_id": "abc", "session_completed": 1}),
        ("/outcomes", {"decision_id": "abc", "next_accuracy": "0.5"}),
        ("/outcomes", {"decision_id": " ", "next_accuracy": 0.5}),
        ("/outcomes", {"decision_id": "ab\x00c", "next_accuracy": 0.5}),
        ("/outcomes", {"decision_id": "abc"}),
        ("/outcomes", {"decision_id": "abc", "next_accuracy": None}),
        ("/api/mlops/retrain", {"autoDeploy": "yes"}),
        ("/api/mlops/retrain", {"limit": "10"}),
        ("/api/mlops/retrain", {"limit": 10.5}),
    ],
)
def test_lax_input_is_rejected(tmp_path, path, body):
    client = _client(tmp_path)
    r = client.post(path, json=body, headers=AUTH)
    assert r.status_code == 422, (body, r.status_code, r.text)
    detail = r.json()["detail"]  # the validation-error shape of the OpenAPI schema
    assert isinstance(detail, list) and all({"loc", "msg", "type"} == set(e) for e in detail)


def test_strict_types_still_accept_what_json_means(tmp_path):
    client = _client(tmp_path)
    # integers are numbers; unicode ids and arms are fine
    r = client.post("/decide", json=_body(consecutive_errors=3, learner_id="José Ünïcødé"))
    assert r.status_code == 200, r.text
    r = client.post("/decide", json=_body(ab_test="decision_policy_v1", ab_group="ml"))
    assert r.status_code == 200, r.text
    did = r.json()["decision_id"]
    outcome = {"session_completed": True, "next_accuracy": 1, "total_session_time_ms": 1200}
    r = client.post("/outcomes", json={"decision_id": did, **outcome})
    assert r.status_code == 200, r.text
    from learnops.serve.schemas import RetrainRequest

    req = RetrainRequest.model_validate({"since": "2026-01-01", "limit": 5, "autoDeploy": False})
    assert str(req.since) == "2026-01-01" and req.limit == 5 and req.auto_deploy is False
