"""The CLI: help, contract commands of the foundation, one-line errors for user mistakes."""

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from learnops.cli import _register_subapps, app

runner = CliRunner()
_register_subapps()


def test_help_lists_the_contract_commands():
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("simulate", "export", "notebook", "store", "irt", "mlp", "ab"):
        assert cmd in out


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys, runpy; sys.argv=['learnops','--help']\n"
        "try:\n    runpy.run_module('learnops.cli', run_name='__main__')\nexcept SystemExit: pass\n"
        "from learnops.cli import main\n"
        "try:\n    main()\nexcept SystemExit: pass\n"
        "heavy=[m for m in ('torch','pandas','papermill','sklearn','scipy','sqlalchemy')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "HEAVY []" in out


def _write_params(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "seed: 3\nsimulate:\n  n_learners: 60\n  n_items: 20\n  n_modules: 2\n  days: 20\n"
        "export:\n  last_days: 30\n  min_data_points: 10\n"
    )
    return tmp_path / "params.yaml"


def test_simulate_then_export(tmp_path, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    params = _write_params(tmp_path)
    r = runner.invoke(app, ["simulate", "--params", str(params)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "data/raw/events.db").is_file()
    assert (tmp_path / "data/raw/truth/items.csv").is_file()
    r = runner.invoke(app, ["export", "--params", str(params), "--limit", "100"])
    assert r.exit_code == 0, r.output
    assert len(pd.read_parquet(tmp_path / "data/processed/responses.parquet")) == 100
    r = runner.invoke(app, ["store", "info", "--params", str(params)])
    assert "responses:" in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["export", "--since", "2001-01-01", "--until", "2001-01-02"],
            "No training data available",
        ),
        (["export", "--since", "yesterday"], "expected a date"),
        (["export", "--params", "nope.yaml"], "params file not found"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    params = _write_params(tmp_path)
    runner.invoke(app, ["simulate", "--params", str(params)])
    monkeypatch.chdir(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "learnops", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_stage_runs_a_pipeline_stage_without_its_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    params = _write_params(tmp_path)
    for name in ("simulate", "export"):
        r = runner.invoke(app, ["stage", name, "--params", str(params)])
        assert r.exit_code == 0, r.output
        assert f"stage {name}: done" in r.output
    assert (tmp_path / "data/processed/decisions.parquet").is_file()
    assert (tmp_path / "reports/metrics/export.json").is_file()
    assert not (tmp_path / "reports/export.html").exists()  # no notebook, no report


@pytest.mark.parametrize(
    "args, message",
    [
        (["stage", "nope"], "unknown stage 'nope'"),
        (["stage", "export", "--params", "missing.yaml"], "params file not found"),
    ],
)
def test_stage_user_errors_are_one_line(args, message):
    code = f"import sys; sys.argv = ['learnops', *{args!r}]\nfrom learnops.cli import main\nmain()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


# --- issue 22: `store salt-fingerprint`, `store import --hashed-with` (6), one-line errors ---


def _learnops(args, tmp_path, **env):
    import os

    code = f"import sys; sys.argv = ['learnops', *{args!r}]\nfrom learnops.cli import main\nmain()"
    full_env = {**os.environ, "LEARNOPS_DB_URL": f"sqlite:///{tmp_path / 'ev.db'}", **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=full_env
    )


def test_salt_fingerprint_names_the_salt_without_revealing_it(tmp_path):
    from learnops.hashing import salt_fingerprint

    a = _learnops(["store", "salt-fingerprint"], tmp_path, LEARNOPS_SALT="s3cret")
    b = _learnops(["store", "salt-fingerprint"], tmp_path, LEARNOPS_SALT="other")
    assert a.returncode == 0, a.stderr
    fp = a.stdout.strip()
    assert len(fp) == 16 and fp == salt_fingerprint(b"s3cret") and "s3cret" not in a.stdout
    assert b.stdout.strip() != fp


def test_store_import_hashed_with(tmp_path, small_sim):
    from learnops.hashing import learner_hash

    salt = {"LEARNOPS_SALT": "s3cret"}
    fp = _learnops(["store", "salt-fingerprint"], tmp_path, **salt).stdout.strip()
    df = small_sim.responses.iloc[:6].drop(columns=["learner_hash"])
    df["learner_hash"] = [learner_hash(f"u{i}", b"s3cret") for i in range(6)]
    f = tmp_path / "pre.csv"
    df.to_csv(f, index=False)
    imp = ["store", "import", str(f), "--kind", "responses"]
    for args, env, message in [
        (imp, salt, "only with --hashed-with FINGERPRINT"),
        ([*imp, "--hashed-with", fp], {"LEARNOPS_SALT": "other"}, "not this store's salt"),
    ]:
        done = _learnops(args, tmp_path, **env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith("error: ") and message in lines[0]
    done = _learnops([*imp, "--hashed-with", fp], tmp_path, **salt)
    assert done.returncode == 0, done.stderr
    assert "imported 6 rows" in done.stdout


def test_export_prints_the_inclusive_window(tmp_path, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    params = _write_params(tmp_path)
    assert runner.invoke(app, ["simulate", "--params", str(params)]).exit_code == 0
    r = runner.invoke(
        app,
        ["export", "--params", str(params), "--since", "2026-10-10", "--until", "2026-10-15",
         "--out", str(tmp_path / "ex"), "--min-data-points", "1"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "(2026-10-10 .. 2026-10-15, inclusive)" in r.output
