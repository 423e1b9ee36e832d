"""Reproducibility across machines (issue 21).

- The environment is pinned: ``requirements.lock`` (hashes; written by ``make lock``) satisfies
  every requirement of ``pyproject.toml`` and its dev extras, leaves torch to plain pip (the CPU
  wheel of 2.13.0), and ``environment.yml`` pins the same versions.
- Metrics and plot data are written with 10 significant digits (``learnops.io.METRIC_DIGITS``), so
  last-bit differences between CPUs (SIMD exp/log, BLAS kernels) don't reach ``dvc metrics diff``.
- The CI-size pipeline's metrics equal the committed reference ``tests/data/ci_metrics.json``
  to a relative 1e-6 (:data:`CROSS_MACHINE_RTOL`): on the machine that wrote it they agree at all
  10 digits, but a value from an iterative fit (temperature, IRT likelihood, a baseline) can move
  beyond the 10th digit on another CPU (measured: up to 2e-5 absolute on the logistic baseline's
  log-loss before its tolerance was tightened). A change of code or params that moves a metric
  fails here:
  if the change is meant, regenerate the reference with ``make ci-metrics``
  (``python tests/test_reproducible.py --write tests/data/ci_metrics.json``) and commit it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from learnops.io import METRIC_DIGITS, round_sig

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "ci_metrics.json"
LOCK = ROOT / "requirements.lock"
REGENERATE = "make ci-metrics"


# -- the CI-size pipeline and its metrics ---------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"LEARNOPS_DB_URL", "MPLBACKEND"}}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return env


def run_ci_pipeline(work: Path) -> Path:
    """``dvc repro`` of the repository's pipeline at CI size in ``work`` (no git; ``src`` linked),
    as tests/test_pipeline_reports.py runs it. Returns ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", work / "dvc.yaml")
    shutil.copy(ROOT / "params.ci.yaml", work / "params.yaml")
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    (work / "src").symlink_to(ROOT / "src", target_is_directory=True)
    for folder in ("data/raw", "data/processed", "models", "reports"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    for cmd in (["dvc", "init", "--no-scm", "-q"], ["dvc", "repro"]):
        done = subprocess.run(
            cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=1800
        )
        if done.returncode != 0:
            tail = done.stdout[-3000:] + done.stderr[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{tail}")
    return work


def _complete(work: Path) -> bool:
    """Whether ``work`` holds a finished CI-size run of every stage of dvc.yaml."""
    lock, params = work / "dvc.lock", work / "params.yaml"
    if not (lock.is_file() and params.is_file()):
        return False
    if params.read_bytes() != (ROOT / "params.ci.yaml").read_bytes():
        return False
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    locked = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return set(stages) <= set(locked)


def read_metrics(root: Path) -> dict[str, Any]:
    """``{stage: contents of reports/metrics/<stage>.json}`` of a pipeline run in ``root``."""
    files = sorted((root / "reports" / "metrics").glob("*.json"))
    return {p.stem: json.loads(p.read_text()) for p in files}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"stage.key.0.sub": leaf}``; floats rounded to METRIC_DIGITS significant digits."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}.{i}"))
        return out
    if isinstance(obj, float) and math.isfinite(obj):
        return {prefix: round_sig(obj, METRIC_DIGITS)}
    return {prefix: obj}


#: Relative difference of a float metric that counts as a change (CPU noise stays far below).
CROSS_MACHINE_RTOL = 1e-6


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=CROSS_MACHINE_RTOL, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def metric_differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """One line per metric that is missing, new or different (floats: beyond a relative
    :data:`CROSS_MACHINE_RTOL` after rounding to METRIC_DIGITS digits)."""
    g, w = flatten(got), flatten(want)
    lines = []
    for key in sorted(g.keys() | w.keys()):
        if key not in g:
            lines.append(f"{key}: missing (reference {w[key]!r})")
        elif key not in w:
            lines.append(f"{key}: new ({g[key]!r})")
        elif not _same(g[key], w[key]):
            lines.append(f"{key}: {g[key]!r} != reference {w[key]!r}")
    return lines


@pytest.fixture(scope="module")
def ci_pipeline(tmp_path_factory) -> Path:
    """A finished CI-size ``dvc repro``: the one tests/test_pipeline_reports.py ran earlier in
    this session when there is one (same dvc.yaml, params and code), else a new run."""
    base = tmp_path_factory.getbasetemp()
    for candidate in sorted(base.glob("pipeline*")):
        if _complete(candidate):
            return candidate
    return run_ci_pipeline(tmp_path_factory.mktemp("reproducible"))


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ci_metrics_equal_the_committed_reference(ci_pipeline):
    """Same code + params + seed ⇒ the same metrics (to a relative 1e-6), on any machine."""
    assert REFERENCE.is_file(), f"no reference: run `{REGENERATE}` and commit {REFERENCE.name}"
    got = read_metrics(ci_pipeline)
    want = json.loads(REFERENCE.read_text())
    diff = metric_differences(got, want)
    assert not diff, (
        f"{len(diff)} CI-size metric(s) differ from tests/data/ci_metrics.json; if the change is "
        f"meant, run `{REGENERATE}` and commit the reference:\n" + "\n".join(diff[:60])
    )


def test_a_changed_metric_is_reported():
    want = {"evaluate": {"accuracy": 0.8123456789, "n": 10, "ci": [0.1, 0.2]}}
    assert metric_differences(want, want) == []
    # the 16th digit (the cross-machine noise) is not a change; the 10th is
    noisy = {"evaluate": {"accuracy": 0.8123456789000001, "n": 10, "ci": [0.1, 0.2]}}
    assert metric_differences(noisy, want) == []
    moved = {"evaluate": {"accuracy": 0.8123446789, "n": 10, "ci": [0.1, 0.2]}}
    assert metric_differences(moved, want) == [
        "evaluate.accuracy: 0.8123446789 != reference 0.8123456789"
    ]
    gone = {"evaluate": {"n": 11, "ci": [0.1, 0.2], "new": None}}
    assert metric_differences(gone, want) == [
        "evaluate.accuracy: missing (reference 0.8123456789)",
        "evaluate.n: 11 != reference 10",
        "evaluate.new: new (None)",
    ]


def test_metrics_and_plot_data_are_written_with_10_significant_digits(tmp_path):
    import numpy as np
    import pandas as pd

    from learnops.config import load_params
    from learnops.stages import write_metrics, write_plot_data

    (tmp_path / "params.yaml").write_text("seed: 1\n")
    params = load_params(tmp_path / "params.yaml")
    noisy = 0.1 + 0.2  # 0.30000000000000004
    path = write_metrics(
        params,
        "demo",
        {"a": noisy, "b": np.float64(2 / 3), "c": [np.float32(0.1), 7], "d": -0.0, "e": 1e-20 / 3},
    )
    assert json.loads(path.read_text()) == {
        "a": 0.3,
        "b": 0.6666666667,
        "c": [0.1000000015, 7],
        "d": 0.0,
        "e": 3.333333333e-21,
    }
    # a last-bit difference (another CPU's exp/log) writes the same bytes
    again = write_metrics(params, "demo2", {"a": np.nextafter(0.3, 1.0), "b": 2 / 3 - 1e-17})
    assert json.loads(again.read_text()) == {"a": 0.3, "b": 0.6666666667}
    table = pd.DataFrame({"x": [noisy, 1 / 3], "n": [1, 2], "s": ["a", "b"]})
    csv = write_plot_data(params, "demo", "curve", table).read_text()
    assert csv == "x,n,s\n0.3,1,a\n0.3333333333,2,b\n"


def test_write_json_rounds_only_when_asked(tmp_path):
    from learnops.io import write_json

    write_json(tmp_path / "full.json", {"x": 1 / 3})
    write_json(tmp_path / "short.json", {"x": 1 / 3}, digits=4)
    assert json.loads((tmp_path / "full.json").read_text()) == {"x": 1 / 3}
    assert json.loads((tmp_path / "short.json").read_text()) == {"x": 0.3333}


# -- the pinned environment -----------------------------------------------------------------------

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = _PIN.match(line)
        if m:
            pins[_canon(m.group(1))] = m.group(2)
    return pins


def test_the_lock_pins_every_requirement_of_pyproject_with_hashes():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock_pins()
    text = LOCK.read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split("==")[0] for b in blocks if _PIN.match(b) and "--hash=sha256:" not in b]
    assert not unhashed, f"pins without hashes in requirements.lock: {unhashed}"
    assert "torch" not in pins, "torch comes from plain pip (the local CPU wheel), not the lock"
    cuda = [n for n in pins if n.startswith(("nvidia-cu", "nvidia-nccl", "triton"))]
    assert not cuda, f"CUDA packages in the lock: {cuda}"
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    reqs = [Requirement(r) for r in declared]
    wrong = []
    for req in reqs:
        name = _canon(req.name)
        if name == "torch":
            assert str(req.specifier) == "==2.13.0", "torch stays pinned to 2.13.0"
            continue
        if name not in pins or not req.specifier.contains(pins[name], prereleases=True):
            wrong.append(f"{req} (lock: {pins.get(name, 'absent')})")
    assert not wrong, f"requirements.lock is out of step with pyproject.toml: {wrong}: `make lock`"


def test_environment_yml_pins_the_locked_versions():
    spec = importlib.util.spec_from_file_location("sync_env", ROOT / "scripts/sync_environment.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    expected = sync.render(LOCK)
    assert (ROOT / "environment.yml").read_text() == expected, "run `make lock`"
    env = yaml.safe_load(expected)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[0] == "torch==2.13.0" and pip[-1] == "-e ."


# -- `make ci-metrics` -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CI-size pipeline in a scratch folder and write its metrics to ``--write``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", type=Path, default=REFERENCE, help="reference file to write")
    parser.add_argument("--from", dest="source", type=Path, help="a finished run: don't rerun")
    args = parser.parse_args(argv)
    if args.source is not None:
        metrics = read_metrics(args.source)
    else:
        with tempfile.TemporaryDirectory(prefix="learnops-ci-metrics-") as tmp:
            metrics = read_metrics(run_ci_pipeline(Path(tmp) / "pipeline"))
    if not metrics:
        print("error: the pipeline wrote no metrics", file=sys.stderr)
        return 1
    from learnops.io import write_json

    write_json(args.write, metrics, digits=METRIC_DIGITS)
    print(f"wrote {args.write} ({', '.join(metrics)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
