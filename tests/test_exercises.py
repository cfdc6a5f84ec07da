"""Tests for fedmed_lab.exercises: the student notebooks generated from the solutions."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from fedmed_lab import exercises
from fedmed_lab.cli import main

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = exercises.find_solutions(ROOT / "solutions")


def _notebook(*cells, name="ex42_demo"):
    return nbformat.v4.new_notebook(cells=list(cells), metadata={"fedmed_lab": {"exercise": name}})


def _cell(kind, source, cell_id, tags=(), info=None):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    cell.id = cell_id
    if tags:
        cell.metadata["tags"] = list(tags)
    if info:
        cell.metadata["fedmed_lab"] = info
    return cell


def _demo_solution():
    return _notebook(
        _cell("code", "seed = 3", "parameters", ["parameters"]),
        _cell("code", "def area(r):\n    # BEGIN SOLUTION\n    return 3.14159 * r * r\n    # END SOLUTION",
              "q1-answer", ["answer"], {"question": "q1", "prompt": "compute the area"}),
        _cell("code", "assert area(0) == 0\n# BEGIN HIDDEN TESTS\nassert abs(area(2.0) - 12.566) < 1e-3\n"
              "# END HIDDEN TESTS", "q1-tests", ["tests"], {"question": "q1", "points": 2}),
        _cell("markdown", "_Write here._", "q2-answer", ["manual-answer"], {"question": "q2", "points": 1,
                                                                             "manual": True}),
        _cell("markdown", "Model answer: the secret rubric text", "q2-rubric", ["rubric"], {"question": "q2"}),
    )


def test_exercises_folder_up_to_date():
    changed = exercises.build_all(ROOT / "solutions", ROOT / "exercises", check=True)
    assert changed == [], "run 'fedmed-lab build-exercises' and commit exercises/"


@pytest.mark.parametrize("solution_path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_exercise_hides_solutions(solution_path):
    solution = nbformat.read(solution_path, as_version=4)
    exercise = nbformat.read(ROOT / "exercises" / solution_path.name, as_version=4)
    # Compare decoded cell sources line by line: the file's JSON escapes quotes.
    exercise_text = "\n".join(cell.source for cell in exercise.cells)
    exercise_lines = {line.strip() for line in exercise_text.splitlines()}
    leaked = [line for line in exercises.secret_lines(solution) if line in exercise_lines]
    assert leaked == []
    assert exercises.HIDDEN_BEGIN not in exercise_text
    assert exercises.SOLUTION_BEGIN not in exercise_text
    rubric_ids = [c.id for c in solution.cells if exercises.RUBRIC_TAG in exercises.cell_tags(c)]
    assert not set(rubric_ids) & {c.id for c in exercise.cells}
    for cell in exercise.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None


@pytest.mark.parametrize("solution_path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_exercise_stubs_name_question(solution_path):
    solution = nbformat.read(solution_path, as_version=4)
    spec = exercises.read_spec(solution)
    exercise = nbformat.read(ROOT / "exercises" / solution_path.name, as_version=4)
    stubs = {c.id: c.source for c in exercise.cells if exercises.ANSWER_TAG in exercises.cell_tags(c)}
    for question in spec.answer_questions:
        assert f'raise NotImplementedError("{spec.name} {question}:' in stubs[f"{question}-answer"].replace(
            "'", '"')


def test_build_replaces_markers():
    exercise = exercises.build_exercise(_demo_solution())
    sources = {cell.id: cell.source for cell in exercise.cells}
    assert sources["q1-answer"] == ("def area(r):\n    raise NotImplementedError('ex42_demo q1: compute the area')")
    assert sources["q1-tests"] == "assert area(0) == 0"
    assert "q2-rubric" not in sources
    assert sources["q2-answer"] == "_Write here._"


def test_build_is_deterministic():
    first = exercises.render(exercises.build_exercise(_demo_solution()))
    second = exercises.render(exercises.build_exercise(_demo_solution()))
    assert first == second


def test_build_leaves_solution_unchanged():
    solution = _demo_solution()
    before = nbformat.writes(solution)
    exercises.build_exercise(solution)
    assert nbformat.writes(solution) == before


def test_secret_lines_skip_shared_code():
    solution = _demo_solution()
    solution.cells[1].source = "def area(r):\n    # BEGIN SOLUTION\n    import math\n    return math.pi * r * r\n" \
                               "    # END SOLUTION"
    solution.cells[0].source = "import math\nseed = 3"
    assert exercises.secret_lines(solution) == [
        "assert abs(area(2.0) - 12.566) < 1e-3", "return math.pi * r * r"]


def test_unpaired_marker_rejected():
    solution = _demo_solution()
    solution.cells[1].source = "# BEGIN SOLUTION\nx = 1"
    with pytest.raises(exercises.ExerciseFormatError, match="has no '# END SOLUTION'"):
        exercises.build_exercise(solution)


def test_missing_parameters_rejected():
    solution = _demo_solution()
    solution.cells[0].metadata["tags"] = []
    with pytest.raises(exercises.ExerciseFormatError, match="exactly one code cell tagged 'parameters'"):
        exercises.read_spec(solution)


def test_answer_without_tests_rejected():
    solution = _demo_solution()
    del solution.cells[2]
    with pytest.raises(exercises.ExerciseFormatError, match="without a test cell: q1"):
        exercises.read_spec(solution)


def test_cli_check_reports_stale(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nbformat.write(_demo_solution(), solutions / "ex42_demo.ipynb")
    out = tmp_path / "exercises"
    assert main(["build-exercises", "--solutions-dir", str(solutions), "--exercises-dir", str(out), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["build-exercises", "--solutions-dir", str(solutions), "--exercises-dir", str(out)]) == 0
    assert main(["build-exercises", "--solutions-dir", str(solutions), "--exercises-dir", str(out), "--check"]) == 0
    (out / "ex43_orphan.ipynb").write_text("{}", encoding="utf-8")
    assert main(["build-exercises", "--solutions-dir", str(solutions), "--exercises-dir", str(out), "--check"]) == 1
