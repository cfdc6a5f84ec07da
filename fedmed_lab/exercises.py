"""Exercise notebooks: find their cells and generate student versions from solutions.

A solution notebook ``solutions/exNN_slug.ipynb`` is the single source of an
exercise. ``fedmed-lab build-exercises`` writes ``exercises/exNN_slug.ipynb``
from it: the code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` becomes a
``raise NotImplementedError`` naming the exercise and question, the code
between ``# BEGIN HIDDEN TESTS`` and ``# END HIDDEN TESTS`` is removed, rubric
cells are dropped, and outputs are cleared. Everything else is kept, cell ids
included, so the grader can match a student's cells to the source.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

SOLUTION_BEGIN = "# BEGIN SOLUTION"
SOLUTION_END = "# END SOLUTION"
HIDDEN_BEGIN = "# BEGIN HIDDEN TESTS"
HIDDEN_END = "# END HIDDEN TESTS"
# Source of a test cell whose every line is hidden, in the exercise and in feedback.
HIDDEN_PLACEHOLDER = "# The grader runs hidden tests for this question here."

PARAMETERS_TAG = "parameters"
GIVEN_TAG = "given"
ANSWER_TAG = "answer"
TESTS_TAG = "tests"
MANUAL_ANSWER_TAG = "manual-answer"
RUBRIC_TAG = "rubric"

EXERCISE_NAME = re.compile(r"^ex\d\d_[a-z0-9_]+$")


class ExerciseFormatError(ValueError):
    """A solution notebook that does not follow the exercise format."""


def cell_tags(cell) -> list[str]:
    """Return the cell's tags (an empty list when it has none)."""
    tags = cell.get("metadata", {}).get("tags", [])
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def cell_info(cell) -> dict:
    """Return the cell's ``fedmed_lab`` metadata (an empty dict when it has none)."""
    info = cell.get("metadata", {}).get("fedmed_lab", {})
    return info if isinstance(info, dict) else {}


def exercise_name(notebook) -> str | None:
    """Return the exercise name stored in the notebook metadata, or None."""
    info = notebook.get("metadata", {}).get("fedmed_lab", {})
    name = info.get("exercise") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None


def _marked_regions(source: str, begin: str, end: str, where: str) -> list[tuple[int, int, str]]:
    """Return ``(begin_line, end_line, indent)`` of each marked region, line numbers 0-based.

    Raises ExerciseFormatError when markers are nested, unpaired or out of order.
    """
    regions = []
    start = None
    indent = ""
    for number, line in enumerate(source.splitlines()):
        stripped = line.strip()
        if stripped == begin:
            if start is not None:
                raise ExerciseFormatError(f"{where}: {begin!r} on line {number + 1} before the previous {end!r}")
            start, indent = number, line[: len(line) - len(line.lstrip())]
        elif stripped == end:
            if start is None:
                raise ExerciseFormatError(f"{where}: {end!r} on line {number + 1} without a {begin!r} before it")
            regions.append((start, number, indent))
            start = None
    if start is not None:
        raise ExerciseFormatError(f"{where}: {begin!r} on line {start + 1} has no {end!r}")
    return regions


def split_marked(source: str, begin: str, end: str, where: str = "cell") -> tuple[list[str], list[str]]:
    """Split ``source`` into the lines outside and the lines inside the marked regions."""
    lines = source.splitlines()
    inside: set[int] = set()
    for first, last, _ in _marked_regions(source, begin, end, where):
        inside.update(range(first, last + 1))
    outside_lines = [line for number, line in enumerate(lines) if number not in inside]
    inside_lines = [line for number, line in enumerate(lines) if number in inside]
    return outside_lines, inside_lines


def stub_solutions(source: str, message: str, where: str = "cell") -> str:
    """Replace each solution region of ``source`` with ``raise NotImplementedError(message)``."""
    lines = source.splitlines()
    regions = _marked_regions(source, SOLUTION_BEGIN, SOLUTION_END, where)
    for first, last, indent in reversed(regions):
        lines[first : last + 1] = [f"{indent}raise NotImplementedError({message!r})"]
    return "\n".join(lines)


def strip_hidden_tests(source: str, where: str = "cell") -> str:
    """Remove each hidden-test region of ``source``, markers included."""
    outside, _ = split_marked(source, HIDDEN_BEGIN, HIDDEN_END, where)
    return "\n".join(outside).strip("\n")


@dataclass(frozen=True)
class TestCell:
    """One test cell of a solution: its id, question, points and full source."""

    cell_id: str
    question: str
    points: float
    source: str


@dataclass(frozen=True)
class ExerciseSpec:
    """The structure of a solution notebook, as the grader and the builder read it."""

    name: str
    parameters_id: str
    answer_questions: tuple[str, ...]
    manual_questions: dict[str, float]
    tests: tuple[TestCell, ...]

    @property
    def questions(self) -> tuple[str, ...]:
        """Every question, autograded and manual, in notebook order."""
        ordered: list[str] = []
        for question in [*self.answer_questions, *(t.question for t in self.tests), *self.manual_questions]:
            if question not in ordered:
                ordered.append(question)
        return tuple(ordered)

    def max_points(self, question: str) -> float:
        """Return the points a question is worth."""
        if question in self.manual_questions:
            return self.manual_questions[question]
        return sum(t.points for t in self.tests if t.question == question)

    @property
    def autograded_points(self) -> float:
        return sum(t.points for t in self.tests)


def read_spec(solution) -> ExerciseSpec:
    """Read and check the exercise structure of a solution notebook.

    Raises ExerciseFormatError naming the first cell that breaks the format.
    """
    name = exercise_name(solution)
    if not name or not EXERCISE_NAME.match(name):
        raise ExerciseFormatError(f"notebook metadata 'fedmed_lab.exercise' must name the exercise (exNN_slug), "
                                  f"got {name!r}")
    parameters = [cell for cell in solution.cells if PARAMETERS_TAG in cell_tags(cell)]
    if len(parameters) != 1 or parameters[0].cell_type != "code":
        raise ExerciseFormatError(f"{name}: needs exactly one code cell tagged 'parameters', found {len(parameters)}")
    if not re.search(r"^seed\s*=", parameters[0].source, re.MULTILINE):
        raise ExerciseFormatError(f"{name}: the parameters cell must assign 'seed'")

    answers: list[str] = []
    manual: dict[str, float] = {}
    tests: list[TestCell] = []
    seen_ids: set[str] = set()
    for cell in solution.cells:
        cell_id = cell.get("id")
        if not cell_id or cell_id in seen_ids:
            raise ExerciseFormatError(f"{name}: every cell needs a unique id, found {cell_id!r} twice or missing")
        seen_ids.add(cell_id)
        tags = cell_tags(cell)
        info = cell_info(cell)
        where = f"{name} cell {cell_id}"
        if ANSWER_TAG in tags:
            question = info.get("question")
            if cell.cell_type != "code" or not question:
                raise ExerciseFormatError(f"{where}: an answer cell must be code with metadata fedmed_lab.question")
            if not _marked_regions(cell.source, SOLUTION_BEGIN, SOLUTION_END, where):
                raise ExerciseFormatError(f"{where}: an answer cell needs a {SOLUTION_BEGIN!r} region")
            answers.append(question)
        elif TESTS_TAG in tags:
            question, points = info.get("question"), info.get("points")
            if cell.cell_type != "code" or not question or not isinstance(points, (int, float)) or points <= 0:
                raise ExerciseFormatError(f"{where}: a test cell must be code with fedmed_lab.question and "
                                          f"positive fedmed_lab.points, got {info!r}")
            _marked_regions(cell.source, HIDDEN_BEGIN, HIDDEN_END, where)
            tests.append(TestCell(cell_id, question, float(points), cell.source))
        elif MANUAL_ANSWER_TAG in tags:
            question, points = info.get("question"), info.get("points")
            if cell.cell_type != "markdown" or not question or not isinstance(points, (int, float)):
                raise ExerciseFormatError(f"{where}: a manual answer must be markdown with fedmed_lab.question "
                                          f"and fedmed_lab.points, got {info!r}")
            manual[question] = float(points)
        elif cell.cell_type == "code" and SOLUTION_BEGIN in cell.source:
            raise ExerciseFormatError(f"{where}: solution markers outside a cell tagged 'answer'")
    missing_tests = [q for q in answers if q not in {t.question for t in tests}]
    if missing_tests:
        raise ExerciseFormatError(f"{name}: answer questions without a test cell: {', '.join(missing_tests)}")
    return ExerciseSpec(name, parameters[0].id, tuple(answers), manual, tuple(tests))


def build_exercise(solution) -> nbformat.NotebookNode:
    """Return the student version of a solution notebook (the input is not modified)."""
    spec = read_spec(solution)
    exercise = copy.deepcopy(solution)
    exercise.metadata.pop("papermill", None)
    kept = []
    for cell in exercise.cells:
        tags = cell_tags(cell)
        if RUBRIC_TAG in tags:
            continue
        where = f"{spec.name} cell {cell.id}"
        if ANSWER_TAG in tags:
            question = cell_info(cell)["question"]
            prompt = cell_info(cell).get("prompt", "write your answer here")
            cell.source = stub_solutions(cell.source, f"{spec.name} {question}: {prompt}", where)
        elif TESTS_TAG in tags:
            cell.source = strip_hidden_tests(cell.source, where)
            if not cell.source.strip():
                cell.source = HIDDEN_PLACEHOLDER
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "papermill"):
            cell.metadata.pop(key, None)
        kept.append(cell)
    exercise.cells = kept
    return exercise


def render(notebook) -> str:
    """Serialize a notebook the same way on every run (sorted keys, one trailing newline)."""
    return nbformat.writes(notebook).rstrip("\n") + "\n"


def secret_lines(solution) -> list[str]:
    """Return the solution and hidden-test lines that must never reach a student.

    A line counts when it is non-empty, is not a marker and does not also
    appear outside every marked region of the notebook (a shared line such as
    ``import numpy as np`` is not secret).
    """
    public: set[str] = set()
    secret: set[str] = set()
    for cell in solution.cells:
        if cell.cell_type != "code":
            public.update(line.strip() for line in cell.source.splitlines())
            continue
        outside, solution_lines = split_marked(cell.source, SOLUTION_BEGIN, SOLUTION_END)
        outside_text = "\n".join(outside)
        public_lines, hidden_lines = split_marked(outside_text, HIDDEN_BEGIN, HIDDEN_END)
        public.update(line.strip() for line in public_lines)
        secret.update(line.strip() for line in [*solution_lines, *hidden_lines])
    markers = {SOLUTION_BEGIN, SOLUTION_END, HIDDEN_BEGIN, HIDDEN_END, ""}
    return sorted(line for line in secret - public - markers if not line.startswith("#"))


def find_solutions(directory: Path) -> list[Path]:
    """Return the solution notebooks ``exNN_*.ipynb`` in ``directory``, in name order."""
    return sorted(Path(directory).glob("ex[0-9][0-9]_*.ipynb"))


def build_all(solutions_dir: Path, exercises_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check=True`` only compare) every exercise generated from ``solutions_dir``.

    Returns the exercise files that were out of date. With ``check=False``
    they are rewritten, and exercises without a solution are deleted.
    """
    exercises_dir = Path(exercises_dir)
    changed = []
    expected_names = set()
    for path in find_solutions(solutions_dir):
        solution = nbformat.read(path, as_version=4)
        if exercise_name(solution) != path.stem:
            raise ExerciseFormatError(f"{path}: metadata names exercise {exercise_name(solution)!r}, "
                                      f"expected the file stem {path.stem!r}")
        text = render(build_exercise(solution))
        target = exercises_dir / path.name
        expected_names.add(path.name)
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        changed.append(str(target))
        if not check:
            exercises_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if exercises_dir.is_dir():
        for stale in sorted(exercises_dir.glob("ex[0-9][0-9]_*.ipynb")):
            if stale.name in expected_names:
                continue
            changed.append(str(stale))
            if not check:
                stale.unlink()
    return changed
