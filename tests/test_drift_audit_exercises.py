"""Structure checks for the chapter 9 and 10 exercise notebooks and their wrong-answer fixtures."""

import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = {"ex09_drift_psi": 9, "ex10_audit_chain": 10}


def _answer_cells(notebook):
    return {cell.metadata["fedmed_lab"]["question"]: cell for cell in notebook.cells
            if "answer" in cell.metadata.get("tags", [])}


@pytest.mark.parametrize("exercise, chapter", EXERCISES.items())
def test_exercise_metadata_and_parameters(exercise, chapter):
    notebook = nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)
    assert notebook.metadata["fedmed_lab"] == {"exercise": exercise, "chapter": chapter}
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert parameters[0].source.startswith("seed = ")


@pytest.mark.parametrize("exercise", EXERCISES)
def test_answer_cells_have_solution_markers(exercise):
    notebook = nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)
    for question, cell in _answer_cells(notebook).items():
        assert cell.id == f"{question}-answer"
        assert cell.source.count("# BEGIN SOLUTION") == cell.source.count("# END SOLUTION") >= 1


@pytest.mark.parametrize("exercise", EXERCISES)
def test_test_cells_name_question_and_points(exercise):
    notebook = nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)
    answers = _answer_cells(notebook)
    test_cells = [cell for cell in notebook.cells if "tests" in cell.metadata.get("tags", [])]
    assert {cell.metadata["fedmed_lab"]["question"] for cell in test_cells} == set(answers)
    for cell in test_cells:
        assert cell.metadata["fedmed_lab"]["points"] > 0
        assert cell.id.startswith(cell.metadata["fedmed_lab"]["question"])


@pytest.mark.parametrize("exercise", EXERCISES)
def test_fixtures_replace_existing_answers(exercise):
    notebook = nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)
    answers = _answer_cells(notebook)
    fixtures = sorted((ROOT / "tests" / "fixtures" / "wrong_answers" / exercise).glob("*.json"))
    assert len(fixtures) >= 2
    for path in fixtures:
        fixture = json.loads(path.read_text())
        assert set(fixture) == {"mistake", "answers", "expected_feedback"}
        assert set(fixture["answers"]) <= set(answers)
        for question, source in fixture["answers"].items():
            assert "# BEGIN SOLUTION" not in source
            assert source.strip() != answers[question].source.strip()
