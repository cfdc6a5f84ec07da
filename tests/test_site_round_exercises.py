"""Structure and wrong-answer checks for exercises 2 and 3, run in this process without a kernel."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = {"ex02_site_metrics": 2, "ex03_round_loop": 3}


def _read(exercise):
    return nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)


def _tagged(notebook, tag):
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


def _run(notebook, answers=None, seed=None):
    """Execute the code cells in order; return {test cell id: error message or ''}."""
    answers = answers or {}
    namespace = {}
    outcomes = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        question = cell.metadata.get("fedmed_lab", {}).get("question")
        source = cell.source
        if "answer" in tags and question in answers:
            source = answers[question]
        if "parameters" in tags and seed is not None:
            source = f"seed = {seed}"
        with contextlib.redirect_stdout(io.StringIO()):
            if "tests" not in tags:
                exec(compile(source, cell.id, "exec"), namespace)
                continue
            try:
                exec(compile(source, cell.id, "exec"), namespace)
                outcomes[cell.id] = ""
            except AssertionError as error:
                outcomes[cell.id] = str(error)
    return outcomes


@pytest.mark.parametrize(("exercise", "chapter"), EXERCISES.items())
def test_exercise_metadata_and_cell_ids(exercise, chapter):
    notebook = _read(exercise)
    assert notebook.metadata["fedmed_lab"] == {"exercise": exercise, "chapter": chapter}
    (parameters,) = _tagged(notebook, "parameters")
    assert parameters.id == "parameters"
    assert parameters.source.startswith("seed = ")
    for cell in _tagged(notebook, "answer"):
        question = cell.metadata["fedmed_lab"]["question"]
        assert cell.id == f"{question}-answer"
        assert cell.source.count("# BEGIN SOLUTION") == 1
        assert cell.source.count("# END SOLUTION") == 1
    for cell in _tagged(notebook, "tests"):
        assert cell.id.startswith(cell.metadata["fedmed_lab"]["question"])
        assert cell.metadata["fedmed_lab"]["points"] > 0
    (manual,) = _tagged(notebook, "manual-answer")
    assert manual.metadata["fedmed_lab"]["manual"] is True
    (rubric,) = _tagged(notebook, "rubric")
    assert rubric.metadata["fedmed_lab"]["question"] == manual.metadata["fedmed_lab"]["question"]


@pytest.mark.parametrize("exercise", EXERCISES)
@pytest.mark.parametrize("seed", [0, 5, 17])
def test_solution_passes_every_test_cell(exercise, seed):
    outcomes = _run(_read(exercise), seed=seed)
    assert outcomes
    assert all(message == "" for message in outcomes.values()), outcomes


@pytest.mark.parametrize("exercise", EXERCISES)
def test_wrong_answers_earn_partial_credit(exercise):
    notebook = _read(exercise)
    points = {cell.id: cell.metadata["fedmed_lab"]["points"] for cell in _tagged(notebook, "tests")}
    fixtures = sorted((ROOT / "tests" / "fixtures" / "wrong_answers" / exercise).glob("*.json"))
    assert len(fixtures) >= 2
    for path in fixtures:
        fixture = json.loads(path.read_text(encoding="utf-8"))
        outcomes = _run(notebook, fixture["answers"])
        earned = sum(points[cell_id] for cell_id, message in outcomes.items() if message == "")
        feedback = " ".join(outcomes.values()).lower()
        assert 0 < earned < sum(points.values()), f"{path.name}: earned {earned}"
        assert fixture["expected_feedback"].lower() in feedback, f"{path.name}: {feedback}"
