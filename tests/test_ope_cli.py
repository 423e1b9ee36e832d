"""`learnops ope`: the JSON document, --where, registry versions, refusals (missing propensities,
uncovered target policies), and the served policy's argmax being the server's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from learnops.contracts import ACTIONS, FEATURES, LOGGING_PROB_COLUMNS
from learnops.errors import LearnopsError
from learnops.lifecycle.ope_cli import ope_command
from learnops.lifecycle.retrain import served_policy

runner = CliRunner()
app = typer.Typer()
app.command("ope")(ope_command)


@app.callback()
def _root() -> None:
    """A group, so that `ope` is a subcommand as in `learnops ope`."""


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_project, own_store):
    """The tiny project: exported decisions (with propensities and p_<action>) and a trained
    models/mlp; its test decisions are the whole export."""
    p = tiny_project(tmp_path_factory.mktemp("ope_cli"), trained=True)
    decisions = p.path(p.paths.processed_dir) / "decisions.parquet"
    assert set(LOGGING_PROB_COLUMNS) <= set(pd.read_parquet(decisions).columns)
    return p


def _paths(p):
    return (
        p.path(p.paths.processed_dir) / "decisions.parquet",
        p.path(p.paths.models_dir) / "mlp",
        p.root / "params.yaml",
    )


def _ope(args, expect_ok=True):
    res = runner.invoke(app, ["ope", *map(str, args)])
    if expect_ok:
        assert res.exit_code == 0, (res.output, res.exception)
    return res


def test_json_document_and_console_table(project, tmp_path):
    decisions, model, params = _paths(project)
    out = tmp_path / "ope.json"
    res = _ope([decisions, "--model", model, "--params", params, "--json", out])
    doc = json.loads(out.read_text())
    required = {"n", "n_learners", "estimates", "ess", "max_weight"}
    assert required <= set(doc)
    assert set(doc["estimates"]) == {"ips", "snips", "dr"}
    for est in doc["estimates"].values():
        assert set(est) == {"value", "se", "ci_low", "ci_high"}
        assert est["ci_low"] < est["value"] < est["ci_high"]
    table = pd.read_parquet(decisions)
    assert doc["n"] == len(table) and doc["n_learners"] == table["learner_hash"].nunique()
    assert doc["epsilon"] == project.serve.epsilon and doc["reward"] == "next_engagement"
    assert 0 < doc["ess"] <= doc["n"] and doc["max_weight"] > 0
    assert doc["observed_mean"]["value"] == pytest.approx(table["next_engagement"].mean())
    assert doc["dropped_missing_reward"] == 0
    for word in ("ips", "snips", "dr", "logged", "ess", "max weight", "95% CI"):
        assert word in res.output
    # deterministic (seeded by params.seed), and the exploration changes the policy evaluated
    again = tmp_path / "again.json"
    _ope([decisions, "--model", model, "--params", params, "--json", again])
    assert json.loads(again.read_text()) == doc
    res = _ope([decisions, "--model", model, "--params", params, "--epsilon", "0.5"])
    assert "epsilon=0.5" in res.output


def test_where_filters_rows_and_missing_rewards_are_dropped(project, tmp_path):
    decisions, model, params = _paths(project)
    table = pd.read_parquet(decisions)
    group = table["ab_group"].dropna().iloc[0]
    out = tmp_path / "ope.json"
    _ope([decisions, "--model", model, "--params", params, "--where", f"ab_group={group}",
          "--json", out])  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["n"] == int((table["ab_group"] == group).sum())
    assert doc["where"] == [f"ab_group={group}"]
    # two conditions combine; a reward not posted yet is dropped and counted
    keep = (table["ab_group"] == group) & ~table["explored"].astype(bool)
    table.loc[table.index[keep][:7], "next_engagement"] = np.nan
    csv = tmp_path / "decisions.csv"
    table.to_csv(csv, index=False)
    res = _ope([csv, "--model", model, "--params", params, "--json", out,
                "--where", "explored=false", "--where", f"ab_group={group}"])  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["n"] == int(keep.sum()) - 7
    assert doc["dropped_missing_reward"] == 7
    assert "dropped 7 without next_engagement yet" in res.output


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("nope=1", "no column 'nope'"),
        ("ab_group", "COL=VALUE"),
        ("ab_group=martians", "no decision matches"),
    ],
)
def test_where_errors(project, where, match):
    decisions, model, params = _paths(project)
    res = _ope([decisions, "--model", model, "--params", params, "--where", where], False)
    assert isinstance(res.exception, LearnopsError) and match in str(res.exception)


def test_registry_versions_resolve_to_their_artifacts(project, tmp_path):
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry

    decisions, model, params = _paths(project)
    store = EventStore(project.db_url)
    try:
        reg = Registry(store, project.path(project.paths.models_dir) / "registry")
        v = reg.start("mlp", config={"seed": project.seed}, data_count=1)
        reg.complete("mlp", v.version, model, {"accuracy": 0.5})
        failed = reg.start("mlp").version
        reg.fail("mlp", failed, "boom")
    finally:
        store.dispose()
    by_dir, by_version = tmp_path / "dir.json", tmp_path / "version.json"
    _ope([decisions, "--model", model, "--params", params, "--json", by_dir])
    _ope([decisions, "--model", v.version, "--params", params, "--json", by_version])
    a, b = json.loads(by_dir.read_text()), json.loads(by_version.read_text())
    assert b["model"] == v.version and "registry" in b["model_path"]
    assert a["estimates"] == b["estimates"]
    for bad, match in (("v99", "unknown mlp version 'v99'"), (failed, "has no artifacts"),
                       ("no/such/dir", "no such model directory")):  # fmt: skip
        res = _ope([decisions, "--model", bad, "--params", params], False)
        assert isinstance(res.exception, LearnopsError), res.output
        assert match in str(res.exception)


def test_missing_propensities_exit_2_and_write_nothing(project, tmp_path):
    decisions, model, params = _paths(project)
    table = pd.read_parquet(decisions)
    table.loc[table.index[[0, 5, 9]], "propensity"] = np.nan
    bad = tmp_path / "old.parquet"
    table.to_parquet(bad, index=False)
    out = tmp_path / "ope.json"
    args = ["ope", str(bad), "--model", str(model), "--params", str(params), "--json", str(out)]
    code = f"import sys; sys.argv = ['learnops', *{args!r}]\nfrom learnops.cli import main\nmain()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"3 of {len(table)} decision(s) have no propensity" in lines[0]
    assert not out.exists() and not list(tmp_path.glob("ope.json*"))


def test_uncovered_target_policy_is_refused(project, tmp_path):
    """Logs without exploration (the logging policy one-hot on the action it took): the model's
    argmax differs from the logged action somewhere, so neither ε = 0 nor ε > 0 is covered."""
    decisions, model, params = _paths(project)
    table = pd.read_parquet(decisions)
    onehot = np.eye(len(ACTIONS))[[ACTIONS.index(a) for a in table["action"]]]
    table[list(LOGGING_PROB_COLUMNS)] = onehot
    table["propensity"] = 1.0
    path = tmp_path / "greedy.parquet"
    table.to_parquet(path, index=False)
    for eps in ("0", "0.05"):
        res = _ope([path, "--model", model, "--params", params, "--epsilon", eps], False)
        assert isinstance(res.exception, LearnopsError), res.output
        msg = str(res.exception)
        assert "not covered by the logging policy" in msg and "rows" in msg
    # restricted to the rows where the logging choice is the model's argmax, ε = 0 is covered
    from learnops.mlp import load, predict_batch

    agree = predict_batch(load(model), table)["action"].to_numpy() == table["action"].to_numpy()
    assert 0 < agree.sum() < len(table)
    sub = tmp_path / "agree.parquet"
    table[agree].to_parquet(sub, index=False)
    out = tmp_path / "ope.json"
    _ope([sub, "--model", model, "--params", params, "--epsilon", "0", "--json", out])
    doc = json.loads(out.read_text())
    # every weight is 1 and the target is the logging policy: IPS = the observed mean
    assert doc["max_weight"] == pytest.approx(1.0)
    assert doc["estimates"]["ips"]["value"] == pytest.approx(doc["observed_mean"]["value"])


def test_served_policy_is_the_servers_argmax_mixed_with_epsilon(project):
    from learnops.mlp import load, predict

    decisions, model_dir, _ = _paths(project)
    table = pd.read_parquet(decisions).head(400)
    model = load(model_dir)
    pi = served_policy(model, table, 0.1)
    served = [predict(model, row).action for row in table[list(FEATURES)].to_dict("records")]
    assert [ACTIONS[i] for i in pi.argmax(axis=1)] == served
    assert np.allclose(pi.max(axis=1), 0.9 + 0.02) and np.allclose(pi.sum(axis=1), 1.0)
    assert np.allclose(np.sort(pi, axis=1)[:, :-1], 0.02)


def test_the_command_module_imports_only_typer():
    code = (
        "import sys\nimport learnops.lifecycle.ope_cli\n"
        "heavy=[m for m in ('torch','pandas','numpy','sklearn','scipy','sqlalchemy')"
        " if m in sys.modules]\nprint('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "HEAVY []" in out
