"""Run a parameterized notebook with papermill and render it to HTML without code cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnops.io import write_text


def render_html(executed: str | Path, html_out: str | Path) -> Path:
    """Render an executed notebook to HTML with inputs and prompts hidden (atomic write)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(nb)
    write_text(html_out, body)
    return Path(html_out)


def run_notebook(
    notebook: str | Path,
    html_out: str | Path,
    executed_dir: str | Path = "reports/executed",
    parameters: dict[str, Any] | None = None,
    kernel: str = "python3",
) -> Path:
    """Execute ``notebook`` (cwd = its folder) into ``executed_dir`` and render ``html_out``."""
    import papermill as pm

    nb = Path(notebook).resolve()
    executed = Path(executed_dir) / nb.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.name}.tmp.ipynb")
    try:
        pm.execute_notebook(
            str(nb),
            str(tmp),
            parameters=parameters or {},
            kernel_name=kernel,
            cwd=str(nb.parent),
            progress_bar=False,
            log_output=False,
        )
        tmp.replace(executed)
    finally:
        if tmp.exists():
            tmp.unlink()
    return render_html(executed, html_out)
