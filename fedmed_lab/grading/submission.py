"""Read a submitted notebook and assemble the notebook the grader executes.

Reading never raises for bad input: an empty file, an HTML page saved as
``.ipynb``, invalid JSON, an old notebook format or a notebook for another
exercise each become a :class:`SubmissionProblem` with a status and a
message for the student.

Assembly takes every protected cell (parameters, given code, tests with
their hidden part, markdown) from the solution and only the answer cells
from the student. Cells are matched by id first and by tag and
``fedmed_lab.question`` metadata second, never by position.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import nbformat
from papermill.translators import translate_parameters

from fedmed_lab.kernel import KERNEL_NAME
from fedmed_lab.exercises import (
    ANSWER_TAG,
    GIVEN_TAG,
    MANUAL_ANSWER_TAG,
    PARAMETERS_TAG,
    RUBRIC_TAG,
    TESTS_TAG,
    ExerciseSpec,
    cell_info,
    cell_tags,
    exercise_name,
)

# Metadata key of the role the grader gives each cell it executes.
ROLE_KEY = "fedmed_grader"


@dataclass(frozen=True)
class SubmissionProblem(Exception):
    """A submission that cannot be graded: its status and a message for the student."""

    status: str
    message: str


def read_submission(data: bytes, exercise: str) -> nbformat.NotebookNode:
    """Parse submitted bytes into a version-4 notebook of ``exercise``.

    Raises
    ------
    SubmissionProblem
        With status ``invalid-file``, ``old-format`` or ``wrong-exercise``.
    """
    if not data.strip():
        raise SubmissionProblem("invalid-file", "the file is empty: save the notebook in Jupyter and submit again")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SubmissionProblem("invalid-file", f"the file is not UTF-8 text (byte {error.start}): "
                                "submit the .ipynb file itself, not an archive or a PDF") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        if re.match(r"\s*<(!doctype|html|\?xml)", text, re.IGNORECASE):
            raise SubmissionProblem("invalid-file", "the file is an HTML page, not a notebook: download it "
                                    "from Jupyter with File > Download (.ipynb)") from None
        raise SubmissionProblem("invalid-file", f"the file is not valid JSON (line {error.lineno}, column "
                                f"{error.colno}: {error.msg}): it may have been edited outside Jupyter") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise SubmissionProblem("invalid-file", "the file is JSON but not a Jupyter notebook (no cell list)")
    version = raw.get("nbformat")
    if not isinstance(version, int) or version < 4:
        raise SubmissionProblem("old-format", f"the notebook has format version {version!r}, expected 4: open the "
                                "exercise notebook in a current Jupyter and copy your answers into it")
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:  # noqa: BLE001 - nbformat raises several types for malformed notebooks
        raise SubmissionProblem("invalid-file", f"the notebook could not be read: {type(error).__name__}: "
                                f"{str(error)[:200]}") from None
    name = exercise_name(notebook)
    if name is not None and name != exercise:
        raise SubmissionProblem("wrong-exercise", f"this notebook is exercise {name!r}, but it was submitted "
                                f"for {exercise!r}")
    return notebook


@dataclass
class AssembledNotebook:
    """The notebook to execute, plus what assembly found wrong with the submission's cells."""

    notebook: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)
    missing_answers: list[str] = field(default_factory=list)


def _role(cell, role: str, **details) -> nbformat.NotebookNode:
    cell.metadata[ROLE_KEY] = {"role": role, **details}
    return cell


def _code(source: str, role: str, **details) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    return _role(cell, role, **details)


def _student_answer_question(cell, answer_ids: dict[str, str]) -> str | None:
    """Return the question a student's cell answers, by id first, then by tag and metadata."""
    if cell.get("id") in answer_ids:
        return answer_ids[cell["id"]]
    question = cell_info(cell).get("question")
    if (ANSWER_TAG in cell_tags(cell) or MANUAL_ANSWER_TAG in cell_tags(cell)) and isinstance(question, str):
        return question
    return None


def _classify_student_cells(solution, submission, spec: ExerciseSpec, notes: list[str]):
    """Group the student's cells: answer cells per question and extra code cells before each answer."""
    answer_ids = {cell.id: cell_info(cell)["question"] for cell in solution.cells
                  if ANSWER_TAG in cell_tags(cell) or MANUAL_ANSWER_TAG in cell_tags(cell)}
    protected_ids = {cell.id for cell in solution.cells} - set(answer_ids)
    protected_tags = {PARAMETERS_TAG, GIVEN_TAG, TESTS_TAG, RUBRIC_TAG}
    answers: dict[str, list] = {}
    extra_before: dict[str, list] = {}
    pending_extra: list = []
    for cell in submission.cells:
        question = _student_answer_question(cell, answer_ids)
        if question is not None and question in spec.questions:
            answers.setdefault(question, []).append(cell)
            if pending_extra:
                extra_before.setdefault(question, []).extend(pending_extra)
                pending_extra = []
            continue
        if cell.get("id") in protected_ids:
            continue
        if protected_tags & set(cell_tags(cell)):
            if not cell.get("id"):
                # Notebooks of format 4.4 and older have no cell ids: this is the original cell.
                continue
            notes.append(f"removed a copy of a protected cell (tags {', '.join(cell_tags(cell))}); "
                         "the grader runs the original")
            continue
        if cell.cell_type == "code" and cell.source.strip():
            pending_extra.append(cell)
    if pending_extra:
        notes.append(f"{len(pending_extra)} code cell(s) after the last answer were not run")
    return answers, extra_before


def _restored_protected_notes(solution, submission) -> list[str]:
    """Describe protected cells the student deleted, changed or retyped (they are restored)."""
    student = {cell.get("id"): cell for cell in submission.cells}
    if not any(student):
        # Without cell ids (format 4.4 and older) deletions cannot be told apart.
        return []
    deleted, changed = [], []
    for cell in solution.cells:
        tags = set(cell_tags(cell))
        if tags & {ANSWER_TAG, MANUAL_ANSWER_TAG, RUBRIC_TAG}:
            continue
        if not tags & {PARAMETERS_TAG, GIVEN_TAG, TESTS_TAG}:
            continue
        mine = student.get(cell.id)
        if mine is None:
            deleted.append(cell.id)
        elif mine.cell_type != cell.cell_type:
            changed.append(f"{cell.id} (changed to {mine.cell_type})")
    notes = []
    if deleted:
        notes.append(f"restored deleted cell(s): {', '.join(deleted)}")
    if changed:
        notes.append(f"restored retyped cell(s): {', '.join(changed)}")
    return notes


def assemble(solution, submission, spec: ExerciseSpec, *, seed: int, setup_source: str,
             wrap_test) -> AssembledNotebook:
    """Build the notebook to execute from the solution's protected cells and the student's answers.

    ``setup_source`` runs first (the grader's limits); ``wrap_test(test_cell)``
    returns the source that runs a restored test cell and records its result.
    The grading ``seed`` is injected right after the restored parameters cell.
    """
    notes = _restored_protected_notes(solution, submission)
    answers, extra_before = _classify_student_cells(solution, submission, spec, notes)
    if not any(answers.values()) and exercise_name(submission) is None:
        raise SubmissionProblem("wrong-exercise", f"the notebook has no exercise metadata and none of the answer "
                                f"cells of {spec.name!r}: was it submitted for the right exercise?")
    tests_by_id = {test.cell_id: test for test in spec.tests}
    cells = [_code(setup_source, "setup")]
    missing: list[str] = []
    for source_cell in solution.cells:
        tags = set(cell_tags(source_cell))
        if RUBRIC_TAG in tags:
            continue
        if PARAMETERS_TAG in tags:
            cells.append(_role(nbformat.v4.new_code_cell(source_cell.source), "parameters"))
            # papermill's own translator writes the injected cell, as `papermill -p seed N` would.
            injected = translate_parameters(KERNEL_NAME, "python", {"seed": int(seed)},
                                            "Parameters injected by the grader")
            cells.append(_code(injected, "injected-parameters"))
        elif ANSWER_TAG in tags or MANUAL_ANSWER_TAG in tags:
            question = cell_info(source_cell)["question"]
            manual = MANUAL_ANSWER_TAG in tags
            for extra in extra_before.get(question, []):
                cells.append(_code(extra.source, "extra", question=question))
            student_cells = answers.get(question, [])
            expected_type = "markdown" if manual else "code"
            usable = [cell for cell in student_cells if cell.cell_type == expected_type]
            if len(usable) < len(student_cells):
                notes.append(f"{question}: {len(student_cells) - len(usable)} answer cell(s) were retyped away from "
                             f"{expected_type} and not used")
            if len(usable) > 1:
                notes.append(f"{question}: {len(usable)} answer cells found (duplicated); all ran in order")
            if not usable:
                missing.append(question)
                notes.append(f"{question}: no answer cell found (deleted?); the question's tests ran without it")
            for cell in usable:
                if manual:
                    cells.append(_role(nbformat.v4.new_markdown_cell(cell.source), "manual-answer", question=question))
                else:
                    cells.append(_code(cell.source, "answer", question=question))
        elif TESTS_TAG in tags:
            test = tests_by_id[source_cell.id]
            cells.append(_code(wrap_test(test), "test", test=test.cell_id, question=test.question))
        elif source_cell.cell_type == "code":
            cells.append(_role(nbformat.v4.new_code_cell(source_cell.source), "given"))
        else:
            cells.append(_role(nbformat.v4.new_markdown_cell(source_cell.source), "markdown"))
    for number, cell in enumerate(cells):
        cell.id = f"graded-{number:03d}"
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"fedmed_lab": {"exercise": spec.name}})
    return AssembledNotebook(notebook, notes, missing)
