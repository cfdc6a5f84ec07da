"""The ex07 solution passes its own tests and each wrong-answer fixture fails only its question, by name.

Cells run in this process with ``exec`` in notebook order, which is enough
to check the authored answers and fixtures; the grader's own tests run
submissions in separate kernels.
"""

import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ex07_masks_and_shares.ipynb"
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "wrong_answers" / "ex07_masks_and_shares").glob("*.json"))


def run_cells(replacements):
    """Execute the code cells with answer sources replaced; return {question: error or None} per test cell."""
    notebook = nbformat.read(SOLUTION, as_version=4)
    namespace = {}
    outcomes = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        question = cell.metadata.get("fedmed_lab", {}).get("question")
        tags = cell.metadata.get("tags", [])
        source = replacements.get(question, cell.source) if "answer" in tags else cell.source
        if "tests" in tags:
            try:
                exec(compile(source, cell.id, "exec"), namespace)
            except AssertionError as error:
                outcomes[question] = str(error)
            else:
                outcomes[question] = None
        else:
            exec(compile(source, cell.id, "exec"), namespace)
    return outcomes


def test_solution_metadata_and_ids():
    notebook = nbformat.read(SOLUTION, as_version=4)
    ids = {cell.id for cell in notebook.cells}

    assert notebook.metadata["fedmed_lab"] == {"exercise": "ex07_masks_and_shares", "chapter": 7}
    assert {"parameters", "q1-answer", "q1-tests", "q2-answer", "q2-tests", "q3-answer", "q3-rubric"} <= ids


def test_solution_passes_every_test_cell(capsys):
    assert run_cells({}) == {"q1": None, "q2": None}


def test_at_least_two_wrong_answer_fixtures():
    assert len(FIXTURES) >= 2


@pytest.mark.parametrize("fixture_path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_wrong_answer_fails_its_question_with_feedback(fixture_path, capsys):
    fixture = json.loads(fixture_path.read_text())

    outcomes = run_cells(fixture["answers"])

    for question in ("q1", "q2"):
        if question in fixture["answers"]:
            assert outcomes[question] is not None, f"{fixture_path.stem} passed {question}"
            assert fixture["expected_feedback"].lower() in outcomes[question].lower()
        else:
            assert outcomes[question] is None
