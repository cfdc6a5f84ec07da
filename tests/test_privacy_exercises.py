"""Run the chapter 6 and 8 solution notebooks on the course kernel and check their wrong-answer fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = {"ex06_reconstruct_record": 6, "ex08_clip_noise_epsilon": 8}


def _answer_cells(notebook) -> dict[str, nbformat.NotebookNode]:
    return {cell.metadata["fedmed_lab"]["question"]: cell for cell in notebook.cells
            if "answer" in cell.metadata.get("tags", [])}


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_solution_metadata_and_cells(exercise):
    notebook = nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)
    assert notebook.metadata["fedmed_lab"] == {"exercise": exercise, "chapter": EXERCISES[exercise]}

    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert parameters[0].source.startswith("seed = ")

    for question, cell in _answer_cells(notebook).items():
        assert cell.id == f"{question}-answer"
        assert "# BEGIN SOLUTION" in cell.source
        assert "# END SOLUTION" in cell.source
    test_cells = [c for c in notebook.cells if "tests" in c.metadata.get("tags", [])]
    assert all(c.id.endswith("-tests") and c.metadata["fedmed_lab"]["points"] > 0 for c in test_cells)


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_fixtures_replace_existing_answers(exercise):
    notebook = nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)
    answers = _answer_cells(notebook)
    fixtures = sorted((ROOT / "tests" / "fixtures" / "wrong_answers" / exercise).glob("*.json"))
    assert len(fixtures) >= 2

    for path in fixtures:
        fixture = json.loads(path.read_text())
        assert fixture["expected_feedback"]
        for question, source in fixture["answers"].items():
            assert question in answers, f"{path.name}: no answer cell for {question}"
            assert "BEGIN SOLUTION" not in source
            assert source.strip() != answers[question].source.strip()


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_solution_executes_with_papermill(exercise, tmp_path):
    output = tmp_path / f"{exercise}.ipynb"
    papermill.execute_notebook(str(ROOT / "solutions" / f"{exercise}.ipynb"), str(output), kernel_name="fedmed-lab",
                               parameters={"seed": 3}, progress_bar=False, cwd=str(tmp_path))
    executed = nbformat.read(output, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
