"""Run the chapter 6 and 8 solution notebooks on the course kernel at a seed of their own."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = {"ex06_reconstruct_record": 6, "ex08_clip_noise_epsilon": 8}


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_solution_executes_with_papermill(exercise, tmp_path):
    output = tmp_path / f"{exercise}.ipynb"
    papermill.execute_notebook(str(ROOT / "solutions" / f"{exercise}.ipynb"), str(output), kernel_name="fedmed-lab",
                               parameters={"seed": 3}, progress_bar=False, cwd=str(tmp_path))
    executed = nbformat.read(output, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
