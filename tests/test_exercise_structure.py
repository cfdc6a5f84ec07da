"""Structure checks shared by every solution notebook and every wrong-answer fixture."""

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("ex*.ipynb"))
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "wrong_answers").glob("*/*.json"))


def _tagged(notebook, tag):
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


def _answer_cells(notebook):
    return {cell.metadata["fedmed_lab"]["question"]: cell for cell in _tagged(notebook, "answer")}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_metadata_and_parameters(path):
    notebook = nbformat.read(path, as_version=4)
    chapter = int(re.match(r"ex(\d\d)_", path.stem).group(1))
    assert notebook.metadata["fedmed_lab"] == {"exercise": path.stem, "chapter": chapter}

    parameters = _tagged(notebook, "parameters")
    assert len(parameters) == 1
    assert parameters[0].source.startswith("seed = ")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_answer_cells_have_solution_markers(path):
    notebook = nbformat.read(path, as_version=4)
    for question, cell in _answer_cells(notebook).items():
        assert cell.id == f"{question}-answer"
        assert cell.source.count("# BEGIN SOLUTION") == cell.source.count("# END SOLUTION") >= 1


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_test_cells_name_question_and_points(path):
    notebook = nbformat.read(path, as_version=4)
    test_cells = _tagged(notebook, "tests")
    assert {cell.metadata["fedmed_lab"]["question"] for cell in test_cells} == set(_answer_cells(notebook))
    for cell in test_cells:
        assert cell.metadata["fedmed_lab"]["points"] > 0
        assert cell.id.startswith(cell.metadata["fedmed_lab"]["question"])
        assert cell.id.endswith("-tests")


@pytest.mark.parametrize("fixture_path", FIXTURES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_fixture_replaces_existing_answers(fixture_path):
    notebook = nbformat.read(ROOT / "solutions" / f"{fixture_path.parent.name}.ipynb", as_version=4)
    answers = _answer_cells(notebook)
    fixture = json.loads(fixture_path.read_text())

    assert set(fixture) == {"mistake", "answers", "expected_feedback"}
    assert fixture["expected_feedback"]
    for question, source in fixture["answers"].items():
        assert question in answers, f"{fixture_path.name}: no answer cell for {question}"
        assert "BEGIN SOLUTION" not in source
        assert source.strip() != answers[question].source.strip()
