"""Every user mistake of the first hour is one ``error:`` line and exit status 2 (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(args, cwd, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEARNOPS_")}
    base["LEARNOPS_SALT"] = "test-salt"
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "learnops", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(proc, *fragments):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    return tmp_path


def test_clear_text_admin_token(project):
    line = one_error_line(
        run(["serve", "--port", "8123"], project, LEARNOPS_ADMIN_TOKENS="s3cret"),
        "LEARNOPS_ADMIN_TOKENS",
        "SHA-256",
        "hash_token",
    )
    assert "s3cret" not in line


def test_unreachable_postgres(project):
    url = "postgresql+psycopg://user:pw@127.0.0.1:1/nope"
    for args in (["store", "info"], ["models", "list"], ["export"]):
        line = one_error_line(run(args, project, LEARNOPS_DB_URL=url), "127.0.0.1")
        assert ":pw@" not in line


def test_reimport_is_idempotent(project):
    args = ["store", "import", str(EXAMPLES / "responses.csv"), "--kind", "responses"]
    first = run(args, project)
    assert first.returncode == 0 and "imported 80 rows" in first.stdout, first.stderr
    again = run(args, project)
    assert again.returncode == 0, again.stderr
    assert "imported 0 rows" in again.stdout and "skipped 80" in again.stdout


def _csv(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def test_empty_learner_id_cell(project):
    f = _csv(
        project,
        "r.csv",
        "response_id,learner_id,item_id,correct,timestamp\n"
        "r1,a,q1,1,2026-09-01T10:00:00Z\nr2,,q1,0,2026-09-01T10:01:00Z\n",
    )
    proc = run(["store", "import", f, "--kind", "responses"], project)
    lines = proc.stderr.strip().splitlines()  # the error, then the bad rows by line number
    assert proc.returncode == 2 and lines[0].startswith("error: ") and "1 of 2 row" in lines[0]
    assert lines[1:] == ["  line 3: learner_id is empty"], proc.stderr


@pytest.mark.parametrize("bad_line", [2, 3])
def test_csv_row_with_too_many_fields(project, bad_line):
    rows = ["r1,a,q1,1,2026-09-01T10:00:00Z", "r2,b,q1,0,2026-09-01T10:01:00Z"]
    rows[bad_line - 2] = rows[bad_line - 2].replace(",q1,", ",q1,x,")
    header = "response_id,learner_id,item_id,correct,timestamp\n"
    f = _csv(project, "r.csv", header + "\n".join(rows))
    line = one_error_line(
        run(["store", "import", f, "--kind", "responses"], project), "too many fields"
    )
    assert f"line {bad_line}" in line and "binary" not in line


def test_missing_columns_are_listed(project):
    f = _csv(project, "r.csv", "learner_id,item_id\na,q1\n")
    one_error_line(
        run(["store", "import", f, "--kind", "responses"], project),
        "missing column(s) correct; a responses table needs learner_id (or learner_hash), "
        "item_id, correct",
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["export", "--last-days", "0"], "--last-days"),
        (["serve", "--port", "70000"], "--port"),
        (["notebook", "missing.ipynb", "--report", "x.html"], "missing.ipynb"),
        (["store", "import"], "Missing argument"),
        (["stor"], "No such command"),
    ],
)
def test_usage_errors_are_one_line(project, args, fragment):
    one_error_line(run(args, project), fragment)


def test_store_info_refuses_a_mistyped_sqlite_path(project):
    url = "sqlite:///typo/events.db"
    one_error_line(run(["store", "info", "--db-url", url], project), "--create")
    assert not (project / "typo").exists()
    ok = run(["store", "info", "--db-url", url, "--create"], project)
    assert ok.returncode == 0 and "decisions: 0" in ok.stdout, ok.stderr


def test_import_warns_about_the_demo_salt(project):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNOPS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "learnops", "store", "import", str(EXAMPLES / "training.json"),
         "--kind", "mongo"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "warning: LEARNOPS_SALT is not set: learner ids are hashed with the public demo salt"
    ]
