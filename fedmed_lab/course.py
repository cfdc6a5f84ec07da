"""Run the chapter notebooks: ``fedmed-lab run-course`` and ``fedmed-lab execute-notebooks``.

Each chapter notebook declares its headline result in a code cell tagged
``headline``: the last line that cell prints is reported in the course table.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from fedmed_lab import logger
from fedmed_lab.kernel import KERNEL_NAME

HEADLINE_TAG = "headline"
DEFAULT_CELL_TIMEOUT = 300


@dataclass(frozen=True)
class NotebookResult:
    """Outcome of executing one notebook."""

    notebook: str
    status: str
    seconds: float
    headline: str = ""
    error: str = ""


def find_chapter_notebooks(directory: Path) -> list[Path]:
    """Return the numbered chapter notebooks in ``directory``, in chapter order."""
    return sorted(p for p in Path(directory).glob("[0-9][0-9]_*.ipynb"))


def read_headline(notebook: nbformat.NotebookNode) -> str:
    """Return the last printed line of the cell tagged ``headline``, or '' when there is none."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and HEADLINE_TAG in cell.get("metadata", {}).get("tags", []):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if not lines:
                return ""
            # A cell may label its line "Headline: ...", which the table's column header repeats.
            last = lines[-1]
            return last[len("headline:"):].strip() if last.lower().startswith("headline:") else last
    return ""


def describe_failure(notebook: nbformat.NotebookNode) -> str:
    """Name the first cell with an error output: its id, its position among code cells and the error."""
    code_index = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return (f"cell {cell.get('id', '?')} (code cell {code_index}: {first_line[:40]!r}): "
                        f"{output.get('ename')}: {output.get('evalue')}")
    return "no cell reported an error"


def _ipc_kernel_manager(socket_dir: str):
    """Return an unstarted course kernel manager that talks over IPC sockets in ``socket_dir``.

    With IPC the kernel opens no TCP port at all, and ipykernel does not warn
    about unencrypted TCP traffic on every start. nbclient does not shut down
    a kernel whose manager it was given, so callers pass the manager to
    :func:`_shutdown` when the notebook has run.
    """
    from jupyter_client import KernelManager

    return KernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=os.path.join(socket_dir, "kernel"))


def _shutdown(manager, socket_dir: str) -> None:
    """Stop the manager's kernel, if it started, and delete its socket folder."""
    try:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


def execute_one(source: Path, destination: Path, cell_timeout: int = DEFAULT_CELL_TIMEOUT) -> NotebookResult:
    """Execute ``source`` with papermill on the course kernel into ``destination``."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    destination.parent.mkdir(parents=True, exist_ok=True)
    socket_dir = tempfile.mkdtemp(prefix="fedmed-kernel-")
    manager = _ipc_kernel_manager(socket_dir)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source),
            str(destination),
            kernel_name=KERNEL_NAME,
            cwd=str(source.parent),
            progress_bar=False,
            execution_timeout=cell_timeout,
            km=manager,
        )
    except PapermillExecutionError:
        seconds = time.perf_counter() - start
        executed = nbformat.read(destination, as_version=4)
        return NotebookResult(source.name, "failed", seconds, error=describe_failure(executed))
    except Exception as error:  # noqa: BLE001 - a dead kernel or timeout must not stop the other notebooks
        seconds = time.perf_counter() - start
        logger.error("notebook %s could not be executed: %s", source.name, error)
        return NotebookResult(source.name, "error", seconds, error=f"{type(error).__name__}: {error}")
    finally:
        _shutdown(manager, socket_dir)
    seconds = time.perf_counter() - start
    executed = nbformat.read(destination, as_version=4)
    return NotebookResult(source.name, "ok", seconds, headline=read_headline(executed))


def run_course(notebooks: list[Path], output_dir: Path, *, jobs: int | None = None,
               cell_timeout: int = DEFAULT_CELL_TIMEOUT) -> list[NotebookResult]:
    """Execute ``notebooks`` into ``output_dir``, up to ``jobs`` at a time (default: one per core).

    Results come back in the order of ``notebooks``.
    """
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(notebooks) or 1))
    destinations = [Path(output_dir) / nb.name for nb in notebooks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(execute_one, nb, out, cell_timeout) for nb, out in zip(notebooks, destinations)]
        return [future.result() for future in futures]


def format_results(results: list[NotebookResult]) -> str:
    """Format the course table: notebook, status, seconds, and headline or failure."""
    header = ("notebook", "status", "seconds", "headline result / failure")
    rows = [(r.notebook, r.status, f"{r.seconds:.1f}", r.headline if r.status == "ok" else r.error) for r in results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def execute_in_place(path: Path, cell_timeout: int = DEFAULT_CELL_TIMEOUT) -> None:
    """Re-execute a committed notebook and overwrite it with fresh, deterministic outputs.

    Uses nbclient directly, so no papermill metadata or timestamps are stored;
    widget state is saved so the default view renders without a kernel.
    """
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    socket_dir = tempfile.mkdtemp(prefix="fedmed-kernel-")
    manager = _ipc_kernel_manager(socket_dir)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name=KERNEL_NAME,
        timeout=cell_timeout,
        resources={"metadata": {"path": str(Path(path).parent)}},
        record_timing=False,
        store_widget_state=True,
    )
    try:
        client.execute()
    finally:
        _shutdown(manager, socket_dir)
    notebook.metadata.pop("papermill", None)
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3 (fedmed-lab)", "language": "python"}
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
