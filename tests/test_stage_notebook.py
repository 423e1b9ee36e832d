"""The report runner: inline figures whatever MPLBACKEND says, stable executed notebooks, one-line
errors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from learnops.stages.notebook import count_images, render_report, strip_wall_clock


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell('params_path = "../params.yaml"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
def test_inline_figures_under_agg_and_identical_reruns_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # what the old Makefile exported: no figures at all
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    nb = _notebook(
        tmp_path / "notebooks" / "plot.ipynb",
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1], [1, 0]);",
        "print(open(params_path).read())",
    )
    executed = tmp_path / "executed"
    html = render_report(nb, tmp_path / "plot.html", tmp_path / "params.yaml", executed)
    first = (executed / "plot.ipynb").read_bytes()
    assert count_images(executed / "plot.ipynb") == 1
    assert html.read_text().count("<img") == 1
    assert "seed: 1" in html.read_text()  # params_path reached the kernel (relative path)
    render_report(nb, tmp_path / "plot.html", tmp_path / "params.yaml", executed)
    assert (executed / "plot.ipynb").read_bytes() == first
    other = tmp_path / "elsewhere"  # the same project checked out somewhere else
    shutil.copytree(tmp_path / "notebooks", other / "notebooks")
    shutil.copy(tmp_path / "params.yaml", other / "params.yaml")
    render_report(
        other / "notebooks" / "plot.ipynb", other / "plot.html", other / "params.yaml", other / "ex"
    )
    assert (other / "ex" / "plot.ipynb").read_bytes() == first


def test_strip_wall_clock_removes_timings_paths_and_the_random_parameters_id():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["injected-parameters"]
    cell.metadata["execution"] = {"iopub.execute_input": "2026-12-04T00:00:00Z"}
    cell.metadata["papermill"] = {"start_time": "t0", "end_time": "t1", "duration": 1.0}
    nb.cells = [cell]
    nb.metadata["papermill"] = {"start_time": "t0", "end_time": "t1", "duration": 1.0, "x": 1}
    nb.metadata["papermill"] |= {"input_path": "/a/n.ipynb", "output_path": "/a/out/n.ipynb"}
    strip_wall_clock(nb)
    assert nb.metadata["papermill"] == {"x": 1}
    assert "execution" not in cell.metadata and cell.metadata["papermill"] == {}
    assert cell["id"] == "injected-parameters"


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.ipynb", "--report", "x.html"], "notebook not found: missing.ipynb"),
        (["{nb}", "--report", "x.html", "--params", "nope.yaml"], "params file not found"),
    ],
)
def test_runner_user_errors_are_one_line(tmp_path, args, message):
    nb = _notebook(tmp_path / "n.ipynb", "x = 1")
    args = [a.format(nb=nb) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "learnops.stages.notebook", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
