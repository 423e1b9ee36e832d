"""Run a stage notebook with papermill and render it to HTML without code cells.

``python -m learnops.stages.notebook NOTEBOOK --report HTML [--params P]`` is the command of every
DVC stage (the same as ``learnops notebook``, without loading the CLI, so that a stage depends on
this runner and not on the whole command line).

The kernel always draws with matplotlib's inline backend, whatever ``MPLBACKEND`` the caller has
(a non-interactive backend such as ``Agg`` in the kernel's environment would leave every report
without figures). Wall-clock metadata (papermill timings, execution timestamps) is dropped from
the executed notebook so that a rerun on the same inputs writes the same file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from learnops.errors import LearnopsError
from learnops.io import write_text

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

#: Kernel command-line options: log only errors (ipykernel warns on every start that its
#: loopback TCP sockets are not encrypted, which says nothing about the notebook).
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]

#: Page style added to every report: wide tables scroll inside their cell instead of overflowing
#: the page, and figures scale down to the page width.
REPORT_CSS = """
<style>
  .jp-OutputArea-output { overflow-x: auto; }
  .jp-RenderedHTMLCommon table { font-size: 12px; margin-left: 0; }
  .jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { padding: 2px 6px; }
  .jp-RenderedImage img, .jp-OutputArea-output img { max-width: 100%; height: auto; }
  body { max-width: 1400px; margin: 0 auto; }
</style>
"""


def render_html(executed: str | Path, html_out: str | Path) -> Path:
    """Render an executed notebook to HTML with inputs and prompts hidden (atomic write)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(nb)
    body = body.replace("</head>", REPORT_CSS + "</head>", 1)
    write_text(html_out, body)
    return Path(html_out)


def count_images(notebook: Any) -> int:
    """Number of image outputs (PNG, SVG, JPEG) in an executed notebook (a path or a node)."""
    import nbformat

    nb = notebook
    if isinstance(notebook, (str, Path)):
        nb = nbformat.read(str(notebook), as_version=4)
    return sum(
        1
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if any(k.startswith("image/") for k in out.get("data", {}))
    )


def skip_messages(notebook: Any) -> list[str]:
    """The messages of the stages a notebook (a path or a node) reports as skipped: outputs whose
    metadata carries ``{"learnops": {"message": …}}`` (what ``learnops.stages.Skipped`` shows),
    so that the runner can print them where ``dvc repro`` shows them."""
    import nbformat

    nb = notebook
    if isinstance(notebook, (str, Path)):
        nb = nbformat.read(str(notebook), as_version=4)
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {})
            for m in [meta, *(v for v in meta.values() if isinstance(v, dict))]:
                note = m.get("learnops")
                if isinstance(note, dict) and note.get("message") and note["message"] not in found:
                    found.append(str(note["message"]))
    return found


def strip_wall_clock(nb: Any) -> Any:
    """Drop papermill's timings and absolute paths, the kernel's execution timestamps and the
    random id of the injected-parameters cell (in place), so that a rerun, in this checkout or
    another one, writes the same notebook."""
    for key in ("start_time", "end_time", "duration", "input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        pm = cell.metadata.get("papermill")
        if pm is not None:
            for key in ("start_time", "end_time", "duration"):
                pm.pop(key, None)
    return nb


@contextmanager
def _inline_backend() -> Iterator[None]:
    """Start kernels with the inline matplotlib backend, restoring the caller's setting."""
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old


def run_notebook(
    notebook: str | Path,
    html_out: str | Path,
    executed_dir: str | Path = "reports/executed",
    parameters: dict[str, Any] | None = None,
    kernel: str = "python3",
) -> Path:
    """Execute ``notebook`` (cwd = its folder) into ``executed_dir`` and render ``html_out``."""
    import nbformat
    import papermill as pm

    nb = Path(notebook).resolve()
    executed = Path(executed_dir) / nb.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.name}.tmp.ipynb")
    try:
        with _inline_backend():
            result = pm.execute_notebook(
                str(nb),
                str(tmp),
                parameters=parameters or {},
                kernel_name=kernel,
                cwd=str(nb.parent),
                progress_bar=False,
                log_output=False,
                extra_arguments=KERNEL_ARGS,
            )
        nbformat.write(strip_wall_clock(result), str(tmp))
        tmp.replace(executed)
    finally:
        if tmp.exists():
            tmp.unlink()
    return render_html(executed, html_out)


def render_report(
    notebook: str | Path,
    report: str | Path,
    params: str | Path = "params.yaml",
    executed_dir: str | Path = "reports/executed",
) -> Path:
    """Run a stage notebook with ``params_path`` set to ``params`` and write its HTML report.

    ``params_path`` is given relative to the notebook's folder (the kernel's working directory),
    so the executed notebook is the same wherever the repository is checked out. A failing cell
    raises a LearnopsError naming the cell's error.
    """
    nb = Path(notebook)
    if not nb.is_file():
        raise LearnopsError(f"notebook not found: {nb}")
    if not Path(params).is_file():
        raise LearnopsError(f"params file not found: {params}")
    params_path = os.path.relpath(Path(params).resolve(), nb.resolve().parent)
    try:
        return run_notebook(nb, report, executed_dir, parameters={"params_path": params_path})
    except Exception as exc:  # papermill wraps the cell error; show its last line
        if type(exc).__name__ == "PapermillExecutionError":
            raise LearnopsError(
                f"{nb} failed in a cell: {exc.ename}: {exc.evalue} "
                f"(executed copy in {executed_dir})"
            ) from None
        raise


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m learnops.stages.notebook``: user errors print one line and exit 2."""
    parser = argparse.ArgumentParser(prog="python -m learnops.stages.notebook")
    parser.add_argument("notebook", help="notebook to run")
    parser.add_argument("--report", required=True, help="HTML report to write (no code cells)")
    parser.add_argument("--params", default="params.yaml", help="passed as params_path")
    parser.add_argument("--executed-dir", default="reports/executed")
    args = parser.parse_args(argv)
    try:
        out = render_report(args.notebook, args.report, args.params, args.executed_dir)
    except LearnopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for message in skip_messages(Path(args.executed_dir) / Path(args.notebook).name):
        print(f"note: {message}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
