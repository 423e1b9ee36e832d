"""The whole pipeline as a user runs it: ``dvc repro`` at CI size renders reports with figures.

A scratch copy of the repository's pipeline (dvc.yaml, notebooks, CI-size params as params.yaml;
``src`` linked, not copied) runs under DVC without git. Every stage's executed notebook must hold
figures (at least 1, at least 6 for ``evaluate``) and its HTML report must show them; a second
``dvc repro`` reruns nothing but the always-changed ``export``, whose outputs stay byte-identical;
a forced rerun of every stage reproduces every model, metric and plot file byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from learnops.stages import STAGES
from learnops.stages.notebook import count_images

ROOT = Path(__file__).resolve().parents[1]
MIN_FIGURES = {stage: 1 for stage in STAGES} | {"evaluate": 6}

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"LEARNOPS_DB_URL", "MPLBACKEND"}}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # a backend forced on the caller's side must not reach the report kernels
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pipeline")
    shutil.copy(ROOT / "dvc.yaml", work / "dvc.yaml")
    shutil.copy(ROOT / "params.ci.yaml", work / "params.yaml")
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    (work / "src").symlink_to(ROOT / "src", target_is_directory=True)
    for folder in ("data/raw", "data/processed", "models", "reports"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    assert _run(["dvc", "init", "--no-scm", "-q"], work).returncode == 0
    done = _run(["dvc", "repro"], work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_report_shows_its_figures(pipeline, stage):
    executed = pipeline / "reports" / "executed" / STAGES[stage]
    n = count_images(executed)
    assert n >= MIN_FIGURES[stage], f"{stage}: {n} figure(s) in {executed.name}"
    html = (pipeline / "reports" / f"{stage}.html").read_text()
    assert html.count("<img") >= MIN_FIGURES[stage]
    body = html.split("</head>", 1)[1]  # the page's CSS names every class; look at the content
    assert "jp-CodeMirrorEditor" not in body and "hl-ipython3" not in body, "code cells shown"


def test_second_repro_reruns_only_export_with_identical_outputs(pipeline):
    watched = [
        pipeline / "data" / "processed" / "decisions.parquet",
        pipeline / "data" / "processed" / "responses.parquet",
        pipeline / "reports" / "metrics" / "export.json",
    ]
    before = {p: _digest(p) for p in watched}
    lock_before = yaml.safe_load((pipeline / "dvc.lock").read_text())
    again = _run(["dvc", "repro"], pipeline)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: _digest(p) for p in watched} == before
    ran = [line for line in again.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'export':"], ran
    lock_after = yaml.safe_load((pipeline / "dvc.lock").read_text())
    assert lock_after == lock_before, "an unchanged export must leave dvc.lock unchanged"


def _outputs(root: Path) -> dict[str, str]:
    """Digest of every deterministic output: data, models, metrics, plot data."""
    folders = ["data/processed", "data/raw/truth", "models/mlp", "models/irt", "reports/metrics"]
    folders += ["reports/plots", "reports/ab", "reports/dvclive"]
    files = [p for f in folders for p in sorted((root / f).rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): _digest(p) for p in files}


def test_forced_rerun_reproduces_every_output_byte_for_byte(pipeline):
    """Same data + params + seed ⇒ same models and metrics, so `dvc metrics diff` is quiet."""
    before = _outputs(pipeline)
    assert any(k.startswith("models/mlp") for k in before)
    assert any(k.startswith("reports/metrics") for k in before)
    again = _run(["dvc", "repro", "-f"], pipeline)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _outputs(pipeline)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a forced rerun changed: {changed}"
