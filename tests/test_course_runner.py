"""fedmed-lab run-course and execute-notebooks, on real kernels."""

import subprocess
import time
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from fedmed_lab.course import execute_in_place, execute_one, find_chapter_notebooks

pytestmark = pytest.mark.notebooks


def write_notebook(path: Path, sources, tags=None):
    cells = []
    for i, source in enumerate(sources):
        cell = new_code_cell(source)
        cell.id = f"cell-{i}"
        if tags and i in tags:
            cell.metadata["tags"] = tags[i]
        cells.append(cell)
    nbformat.write(new_notebook(cells=cells), path)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fedmed_lab.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_failing_notebook_exits_nonzero_and_names_cell(tmp_path):
    write_notebook(tmp_path / "01_good.ipynb", ["x = 2", "print('Headline: x is', x)"], tags={1: ["headline"]})
    write_notebook(tmp_path / "02_bad.ipynb", ["y = 1", "z = y / 0", "print('never')"])

    result = run_cli("run-course", "--notebook-dir", str(tmp_path), "--output-dir", str(tmp_path / "out"))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "01_good.ipynb" in result.stdout
    good_line = next(line for line in result.stdout.splitlines() if line.startswith("01_good.ipynb"))
    assert good_line.endswith("  x is 2")
    bad_line = next(line for line in result.stdout.splitlines() if line.startswith("02_bad.ipynb"))
    assert "failed" in bad_line
    assert "cell cell-1" in bad_line
    assert "ZeroDivisionError" in bad_line
    assert "1 of 2 notebooks ran" in result.stdout


def test_committed_notebooks_left_untouched(tmp_path):
    source = tmp_path / "01_only.ipynb"
    write_notebook(source, ["print('Headline: ok')"], tags={0: ["headline"]})
    before = source.read_bytes()

    result = run_cli("run-course", "--notebook-dir", str(tmp_path), "--output-dir", str(tmp_path / "out"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert source.read_bytes() == before
    executed = nbformat.read(tmp_path / "out" / "01_only.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "Headline: ok\n"


def test_missing_notebook_reported(tmp_path):
    result = run_cli("run-course", str(tmp_path / "nope.ipynb"))
    assert result.returncode == 2
    assert "notebook not found" in result.stderr


def test_execute_in_place_stores_no_timestamps(tmp_path):
    path = tmp_path / "01_timing.ipynb"
    write_notebook(path, ["print(1 + 1)"])
    execute_in_place(path)
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].outputs[0]["text"] == "2\n"
    assert "execution" not in notebook.cells[0].metadata
    assert notebook.metadata["kernelspec"]["name"] == "fedmed-lab"


def test_chapter_notebooks_found_in_order():
    names = [p.name for p in find_chapter_notebooks(Path(__file__).parents[1] / "notebooks")]
    assert names[0] == "01_pooled_objective.ipynb"
    assert names == sorted(names)


def test_every_chapter_declares_one_headline():
    for path in find_chapter_notebooks(Path(__file__).parents[1] / "notebooks"):
        notebook = nbformat.read(path, as_version=4)
        tagged = [c for c in notebook.cells if "headline" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} has {len(tagged)} cells tagged 'headline'"


def test_kernel_stopped_after_notebook(tmp_path):
    write_notebook(tmp_path / "01_pid.ipynb", ["import os\nprint(os.getpid())"])
    result = execute_one(tmp_path / "01_pid.ipynb", tmp_path / "out" / "01_pid.ipynb")
    assert result.status == "ok"

    executed = nbformat.read(tmp_path / "out" / "01_pid.ipynb", as_version=4)
    kernel_pid = int(executed.cells[0].outputs[0]["text"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{kernel_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{kernel_pid}").exists(), "the notebook's kernel outlived its run"
