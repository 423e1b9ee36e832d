"""``GET /learners/{learner_id}/ability``: the production learner model's ability of one learner
from the store, equal to ``learner_models.ability.ability_asof`` for the same learner and time;
the prior without a deployed model or for a new learner; client auth like ``/decide``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_IRT

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.data.store import EventStore  # noqa: E402
from learnops.hashing import learner_hash  # noqa: E402
from learnops.lifecycle.registry import Registry  # noqa: E402
from learnops.serve import Tokens, create_app  # noqa: E402

FAST = {"bootstrap": 50, "elo_alpha": [0.4, 0.8], "elo_beta": [0.0, 0.05]}
USER = "user-secret-token"


@pytest.fixture(scope="module")
def responses() -> pd.DataFrame:
    """Simulated answers, stored format (hashed learner, response id), timestamps to the µs."""
    from learnops.config import SimulateConfig
    from learnops.data.simulate import simulate

    cfg = SimulateConfig(
        n_learners=60, n_items=25, n_modules=3, sessions_per_learner=3, items_per_session=8
    )
    out = simulate(cfg, seed=5).responses.reset_index(drop=True)
    # the raw ids the simulator hashed (the server hashes a client's id with the same salt)
    ids = [f"sim-learner-{j:06d}" for j in range(cfg.n_learners)]
    assert {learner_hash(i) for i in ids} == set(out["learner_hash"])
    out.attrs["ids"] = ids
    return out


def _params(tmp_path):
    from learnops.config import Params

    return Params(root=tmp_path, irt=TINY_IRT, learner_models=FAST)


def _deploy(params, model) -> str:
    from learnops.learner_models.artifact import save

    store = EventStore(params.db_url)
    try:
        art = save(model, params.path(params.paths.models_dir) / "learner")
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        v = reg.start("learner", data_count=1)
        reg.complete("learner", v.version, art, {"log_loss": 0.5})
        reg.deploy("learner", v.version)
        return v.version
    finally:
        store.dispose()


def _fill(params, responses) -> None:
    store = EventStore(params.db_url)
    try:
        store.claim_salt()
        store.insert_responses(responses)
    finally:
        store.dispose()


def _client(params, **kwargs) -> TestClient:
    kwargs.setdefault("tokens", Tokens.of(admin=["admin-token"]))
    return TestClient(create_app(params, **kwargs))


@pytest.mark.parametrize("name", ["irt", "elo"])
def test_ability_equals_ability_asof(tmp_path, responses, name):
    from learnops.learner_models.ability import ability_asof, fit_ability_model

    params = _params(tmp_path)
    model = fit_ability_model(name, responses, params)
    version = _deploy(params, model)
    _fill(params, responses)
    ids = responses.attrs["ids"][:4]
    rng = np.random.default_rng(0)
    queries = []
    for lid in ids:
        ts = responses.loc[responses["learner_hash"] == learner_hash(lid), "timestamp"]
        # before any answer, exactly at an answer (it does not count), between, after the last
        picks = [ts.min() - pd.Timedelta(hours=1), ts.iloc[len(ts) // 2]]
        picks += [ts.iloc[int(rng.integers(1, len(ts)))] + pd.Timedelta(microseconds=1)]
        picks += [ts.max() + pd.Timedelta(days=1)]
        queries += [(lid, t) for t in picks]
    hashes = [learner_hash(x) for x, _ in queries]
    q = pd.DataFrame({"learner_hash": hashes, "timestamp": [t for _, t in queries]})
    want = ability_asof(model, responses, q)  # every learner's answers, in one table
    with _client(params) as client:
        for (lid, t), (_, row) in zip(queries, want.iterrows(), strict=True):
            r = client.get(f"/learners/{lid}/ability", params={"asOf": t.isoformat()})
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["model"] == name and got["version"] == version
            np.testing.assert_allclose(got["ability"], row["ability"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(got["ability_se"], row["ability_se"], rtol=1e-9, atol=1e-9)
            lh = learner_hash(lid)
            n = int(((responses["learner_hash"] == lh) & (responses["timestamp"] < t)).sum())
            assert got["nResponses"] == n
            assert pd.Timestamp(got["asOf"]) == t
        # the answers move the estimate: not the prior after many answers
        last = client.get(f"/learners/{ids[0]}/ability").json()
        assert last["nResponses"] == int((responses["learner_hash"] == learner_hash(ids[0])).sum())
        assert last["ability_se"] < 0.9


def test_new_learner_gets_the_model_prior_and_no_model_gives_the_prior(tmp_path, responses):
    from learnops.learner_models.ability import fit_ability_model

    params = _params(tmp_path)
    _fill(params, responses)
    with _client(params) as client:  # nothing deployed: the N(0, 1) prior, version null
        got = client.get(f"/learners/{responses.attrs['ids'][0]}/ability").json()
        assert got["ability"] == 0.0 and got["ability_se"] == 1.0
        assert got["version"] is None and got["nResponses"] == 0
        assert got["model"] == params.irt.ability_model and "no production" in got["note"]
    version = _deploy(params, fit_ability_model("irt", responses, params))
    with _client(params) as client:
        got = client.get("/learners/someone-new/ability").json()
        assert got["version"] == version and got["nResponses"] == 0 and "prior" in got["note"]
        assert abs(got["ability"]) < 0.05 and 0.9 < got["ability_se"] < 1.05  # EAP of N(0, 1)
        assert client.get("/learners/x/ability", params={"asOf": "yesterday"}).status_code == 422
        # a newly deployed learner model is served once the holder looks again (hot swap)
        v2 = _deploy(params, fit_ability_model("elo", responses, params))
        client.app.state.serve.learners.refresh()
        got = client.get(f"/learners/{responses.attrs['ids'][0]}/ability").json()
        assert (got["model"], got["version"]) == ("elo", v2) and got["nResponses"] > 0


def test_client_token_is_required_when_configured(tmp_path):
    params = _params(tmp_path)
    tokens = Tokens.of(admin=["admin-token"], user=[USER])
    with _client(params, tokens=tokens) as client:
        assert client.get("/learners/a/ability").status_code == 401
        ok = client.get("/learners/a/ability", headers={"Authorization": f"Bearer {USER}"})
        assert ok.status_code == 200 and ok.json()["nResponses"] == 0


def test_learner_ability_equals_ability_asof_for_best_lr(tmp_path, responses):
    """The one-learner replay (no server) against the table-wide computation, with answers to an
    item the model does not know left out and counted."""
    from learnops.learner_models.ability import ability_asof, fit_ability_model, learner_ability

    model = fit_ability_model("best_lr", responses, _params(tmp_path))
    lh = learner_hash(responses.attrs["ids"][1])
    hist = responses.loc[responses["learner_hash"] == lh].reset_index(drop=True)
    at = hist["timestamp"].iloc[len(hist) // 3] + pd.Timedelta(microseconds=1)
    want = ability_asof(model, responses, pd.DataFrame({"learner_hash": [lh], "timestamp": [at]}))
    stranger = hist.iloc[[0]].assign(item_id="never-seen", response_id="x")
    got = learner_ability(model, pd.concat([hist, stranger], ignore_index=True), at)
    n = int((hist["timestamp"] < at).sum())
    assert got[2:] == (n, 1)
    np.testing.assert_allclose(got[:2], want.iloc[0].to_numpy(float), rtol=1e-9, atol=1e-9)
