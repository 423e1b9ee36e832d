"""The README runs as written: every ``bash`` block, in order, in one shell, in a scratch copy of
the repository at CI size (``params.ci.yaml`` as ``params.yaml``), with the venv *not* on the
PATH (the README says to activate it).

A block preceded by ``<!-- readme-test: skip (reason) -->`` is not run (long-running servers,
root-only commands, the pipeline itself); there must be few of them, each with a reason. Other
fenced blocks must be ``text``, ``ini`` or ``cron`` (synopses and config files, not commands).
The only rewrite of the commands: port 8000 becomes a free port (concurrent test runs).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_RE = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+(?:\([^)]*\)[^)]*)*)\)\s*-->")
FENCE_RE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
MAX_SKIPPED = 6
NON_COMMAND_LANGS = {"text", "ini", "cron"}
#: What a copy of the repository needs for the blocks (no data, models or venv).
COPY = ("notebooks", "examples", "data/examples", "src", "docs", "dvc.yaml", "README.md")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the reason, when marked


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of the README, with their skip markers."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m["lang"]
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = SKIP_RE.search(prev)
        code = "\n".join(lines[start + 1 : j])
        blocks.append(Block(start + 1, lang, code, marker["reason"] if marker else None))
        i = j + 1
    return blocks


def readme_script(blocks: list[Block], port: int) -> str:
    """One bash script of the README's runnable blocks, each announced on stderr."""
    # a block that fails stops the script: its background servers are stopped with it (they would
    # hold the output pipe open, and the next block's server would find the port taken)
    parts = ["set -eo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for b in blocks:
        if b.lang != "bash" or b.skip:
            continue
        parts.append(f"echo '>>> README.md line {b.line}' >&2")
        parts.append(re.sub(r"\b8000\b", str(port), b.code))
    return "\n".join(parts) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_blocks_are_commands_or_marked():
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    langs = {b.lang for b in blocks}
    assert langs <= {"bash"} | NON_COMMAND_LANGS, f"unexpected fence languages: {langs}"
    skipped = [b for b in blocks if b.skip]
    assert all(b.lang == "bash" for b in skipped)
    assert all(len(b.skip.strip()) > 10 for b in skipped), "every skip needs a reason"
    assert len(skipped) <= MAX_SKIPPED, [b.line for b in skipped]
    run = [b for b in blocks if b.lang == "bash" and not b.skip]
    assert len(run) >= 5
    text = "\n".join(b.code for b in run)
    for needed in ("activate", "store import", "retrain", "/decide", "/outcomes"):
        assert needed in text


def test_marker_parsing():
    text = (
        "a\n<!-- readme-test: skip (needs root (and systemd)) -->\n"
        "```bash\nls\n```\n```text\nx\n```\n"
    )
    b1, b2 = readme_blocks(text)
    assert b1.skip == "needs root (and systemd)" and b1.code == "ls" and b1.line == 3
    assert b2.skip is None and b2.lang == "text"


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file() or shutil.which("curl") is None:
        pytest.skip("needs the project venv (bin/activate) and curl")
    project = tmp_path / "project"
    project.mkdir()
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, project / name)
    shutil.copy2(ROOT / "params.ci.yaml", project / "params.yaml")
    (project / ".venv").symlink_to(venv, target_is_directory=True)
    script = readme_script(readme_blocks(README.read_text(encoding="utf-8")), _free_port())
    (project / "readme.sh").write_text(script)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEARNOPS_", "MPLBACKEND"))}
    venv_bin = str(venv / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen(
        ["bash", "readme.sh"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail("README blocks did not finish in 10 minutes:\n" + out[-4000:])
    finally:
        with contextlib.suppress(ProcessLookupError):  # a server a failed block left running
            os.killpg(proc.pid, signal.SIGTERM)
    last = [ln for ln in out.splitlines() if ln.startswith(">>> README.md line")]
    assert proc.returncode == 0, (
        f"README block failed ({last[-1] if last else 'before the first block'}):\n{out[-4000:]}"
    )
    assert "Traceback" not in out, out[-4000:]
    assert "running over TCP without encryption" not in out
    assert "(2026-" in out and ", inclusive)" in out  # the export message's inclusive window
    assert "skipped 80 row(s) already in the store" in out
    assert '"status":"recorded"' in out.replace(" ", "")
