"""Grade one submission: read it, assemble it, run it, score each question, write feedback.

:func:`grade_submission` is what a batch worker calls. Every problem of a
submission, and any fault of the grader while grading it, ends as a
:class:`SubmissionResult` status with a message.

Submission statuses, worst first: ``invalid-file``, ``old-format``,
``wrong-exercise`` (not run at all); ``kernel-died``, ``timeout``,
``memory``, ``output-limit`` (run, and the questions scored up to the
failure keep their points); ``grader-error`` (a fault in the grader itself);
``ok``.
"""

from __future__ import annotations

import ast
import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

import fedmed_lab
from fedmed_lab import logger
from fedmed_lab.exercises import (
    ANSWER_TAG,
    HIDDEN_BEGIN,
    HIDDEN_END,
    HIDDEN_PLACEHOLDER,
    MANUAL_ANSWER_TAG,
    TESTS_TAG,
    ExerciseSpec,
    cell_info,
    cell_tags,
    read_spec,
    split_marked,
    strip_hidden_tests,
)
from fedmed_lab.grading import runner
from fedmed_lab.grading.submission import ROLE_KEY, SubmissionProblem, assemble, read_submission

GRADER_VERSION = f"fedmed-lab {fedmed_lab.__version__} grader 2"
DEFAULT_SEED = 2024

# Question statuses. A written (manual) question is ``awaiting-grader`` only
# when it contains a real answer: ``unanswered`` when its text is empty or still
# the exercise's template text, ``not-run`` when the submission never ran.
PASSED, PARTIAL, FAILED, NOT_RUN, AWAITING = "passed", "partial", "failed", "not-run", "awaiting-grader"
UNANSWERED = "unanswered"

# Labels that the CSV and the feedback table show for a question without points.
UNSCORED_LABELS = {AWAITING: "awaiting grader", UNANSWERED: "unanswered", NOT_RUN: "not run"}

REDACTED = "[output removed by the grader: it contained test code]"


@dataclass
class QuestionResult:
    """Points and feedback for one question; ``points`` is None for a written question, which no test scores."""

    question: str
    points: float | None
    max_points: float
    status: str
    feedback: str
    test_outcomes: dict[str, tuple[bool, str]] = field(default_factory=dict)
    answer_text: str = ""


@dataclass
class SubmissionResult:
    """The grade of one submission, as stored in the gradebook."""

    submission_id: str
    exercise: str
    content_hash: str
    status: str
    message: str
    questions: list[QuestionResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def points(self) -> float:
        return sum(q.points for q in self.questions if q.points is not None)

    @property
    def max_points(self) -> float:
        """Points of the autograded questions; manual ones are added once a grader scores them."""
        return sum(q.max_points for q in self.questions if q.points is not None)

    @property
    def awaiting(self) -> list[str]:
        return [q.question for q in self.questions if q.status == AWAITING]


@dataclass(frozen=True)
class GradeJob:
    """Everything a worker needs to grade one submission (picklable)."""

    exercise: str
    solution_path: str
    submission_path: str
    submission_id: str
    content_hash: str
    limits: runner.Limits
    seed: int = DEFAULT_SEED
    feedback_dir: str | None = None


def content_hash(data: bytes) -> str:
    """Return the SHA-256 hex digest of a submission's bytes."""
    return hashlib.sha256(data).hexdigest()


def hidden_lines(spec: ExerciseSpec) -> list[str]:
    """Return the lines of hidden tests long enough to recognise in an output (at least 12 characters)."""
    lines = []
    for test in spec.tests:
        _, inside = split_marked(test.source, HIDDEN_BEGIN, HIDDEN_END)
        lines.extend(line.strip() for line in inside if len(line.strip()) >= 12 and "HIDDEN TESTS" not in line)
    return lines


def solution_imports(solution) -> str:
    """Return the top-level import statements of the solution's protected code cells, one per line."""
    statements = []
    for cell in solution.cells:
        tags = set(cell_tags(cell))
        if cell.cell_type != "code" or tags & {ANSWER_TAG, TESTS_TAG}:
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        statements.extend(ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))
    return "\n".join(statements)


def written_templates(solution) -> dict[str, str]:
    """Return the template text of each written question: its manual-answer cell as the exercise ships it."""
    return {cell_info(cell)["question"]: cell.source for cell in solution.cells
            if MANUAL_ANSWER_TAG in cell_tags(cell)}


def redact(text: str, secret: list[str]) -> str:
    """Return ``text``, or a notice in its place when it contains a line of hidden test code."""
    return REDACTED if any(line in text for line in secret) else text


def unscored_label(points: float | None, status: str) -> str:
    """Return how a question without points reads in the CSV and the feedback table, or "" when it has points."""
    if points is not None:
        return ""
    return UNSCORED_LABELS.get(status, status)


def _unrun_questions(spec: ExerciseSpec, message: str) -> list[QuestionResult]:
    results = []
    for question in spec.questions:
        if question in spec.manual_questions:
            results.append(QuestionResult(question, None, spec.max_points(question), NOT_RUN,
                                          f"written answer not read because the submission was not run: {message}"))
        else:
            results.append(QuestionResult(question, 0.0, spec.max_points(question), NOT_RUN, message))
    return results


def _test_outcome(test, report: runner.ExecutionReport, cell_id: str | None, secret: list[str]) -> tuple[bool, str]:
    """Return (passed, message) for one test cell from the results file, never from outputs."""
    records = report.records.get(test.cell_id, [])
    if cell_id not in report.completed_cells:
        # A record for a cell that never finished was written by other code.
        records = []
    if len(records) > 1:
        return False, f"{test.cell_id}: {len(records)} results recorded for one run; counted as failed"
    if not records:
        if cell_id is not None and cell_id in report.timed_out_cells:
            return False, f"{test.cell_id}: timed out"
        if report.kernel_died_at is not None:
            return False, f"{test.cell_id}: not run because the kernel died earlier"
        if report.total_timeout_at is not None:
            return False, f"{test.cell_id}: not run because the notebook reached its time limit"
        return False, f"{test.cell_id}: no result recorded"
    record = records[0]
    if record.get("passed") is True:
        return True, f"{test.cell_id}: passed"
    error, message = str(record.get("error", "")), str(record.get("message", ""))
    if error == "KeyboardInterrupt" and cell_id in report.timed_out_cells:
        return False, f"{test.cell_id}: timed out"
    if error == "AssertionError":
        detail = message or "a test failed"
    else:
        detail = f"{error}: {message}" if message else error
    return False, redact(f"{test.cell_id}: {detail}", secret)


def _normalized(text: str) -> str:
    return " ".join(text.split())


def score_written_answer(question: str, max_points: float, answer_text: str, template: str,
                         missing: bool) -> QuestionResult:
    """Return a written question's result: ``awaiting-grader`` for a real answer, else ``unanswered``.

    An answer is unanswered when it is empty or, ignoring whitespace, still
    the template text the exercise notebook gave the student. Neither case
    gets points here: a grader scores the question.
    """
    if missing:
        feedback = "written answer missing (the answer cell was deleted or retyped)"
    elif not answer_text.strip():
        feedback = "written answer left empty"
    elif _normalized(answer_text) == _normalized(template):
        feedback = "written answer left as the exercise's template text"
    else:
        return QuestionResult(question, None, max_points, AWAITING, "written answer: awaiting a grader",
                              answer_text=answer_text)
    return QuestionResult(question, None, max_points, UNANSWERED, feedback, answer_text=answer_text)


def answer_cell_problem(question: str, cells: list[tuple[str, str]], report: runner.ExecutionReport) -> str:
    """Return what went wrong while the question's own code cells ran, or "" when they ran normally.

    ``cells`` lists (cell id, role) of the answer cells and of the extra code
    cells the student placed before them, in run order.
    """
    for cell_id, role in cells:
        what = f"your {question} answer cell" if role == "answer" else f"a code cell you added before {question}"
        if cell_id in report.output_interrupted_cells:
            return f"{what} was interrupted for printing past the output limit"
        if cell_id in report.timed_out_cells:
            seconds = report.cell_timeouts.get(cell_id)
            return f"{what} timed out after {seconds:g} s" if seconds is not None else f"{what} timed out"
        if cell_id == report.kernel_died_at:
            return f"the kernel died while {what} ran (the code exited, crashed or was killed)"
        if cell_id in report.memory_error_cells:
            return f"{what} hit the memory limit (MemoryError)"
        if cell_id == report.total_timeout_at:
            return f"the notebook reached its total time limit before {what} ran"
    return ""


def score_questions(spec: ExerciseSpec, report: runner.ExecutionReport, test_cell_ids: dict[str, str],
                    missing: list[str], secret: list[str], *, written_answers: dict[str, str] | None = None,
                    templates: dict[str, str] | None = None,
                    answer_cells: dict[str, list[tuple[str, str]]] | None = None) -> list[QuestionResult]:
    """Score every question on its own from the recorded test results.

    ``written_answers`` and ``templates`` map each written question to the
    student's text and the exercise's template text. ``answer_cells`` maps
    each autograded question to its code cells as (cell id, role), so a
    timeout, memory error or kernel death in them leads its feedback.
    """
    written_answers, templates, answer_cells = written_answers or {}, templates or {}, answer_cells or {}
    results = []
    for question in spec.questions:
        if question in spec.manual_questions:
            results.append(score_written_answer(question, spec.max_points(question),
                                                written_answers.get(question, ""), templates.get(question, ""),
                                                question in missing))
            continue
        points, messages, outcomes = 0.0, [], {}
        tests = [t for t in spec.tests if t.question == question]
        for test in tests:
            passed, message = _test_outcome(test, report, test_cell_ids.get(test.cell_id), secret)
            outcomes[test.cell_id] = (passed, message)
            points += test.points if passed else 0.0
            if not passed:
                messages.append(message)
        max_points = spec.max_points(question)
        if points == max_points:
            status = PASSED
        elif points > 0:
            status = PARTIAL
        elif all(not report.records.get(t.cell_id) for t in tests):
            status = NOT_RUN
        else:
            status = FAILED
        if question in missing:
            messages.insert(0, f"no answer cell for {question} was found")
        feedback = "; ".join(messages) if messages else "all tests passed"
        problem = answer_cell_problem(question, answer_cells.get(question, []), report)
        if problem and messages:
            ran = any(report.records.get(t.cell_id) for t in tests)
            feedback = f"{problem}; " + ("the tests then failed with: " if ran else "then: ") + feedback
        elif problem:
            feedback = f"{problem}; all tests passed all the same"
        results.append(QuestionResult(question, points, max_points, status, feedback, outcomes))
    return results


def submission_status(report: runner.ExecutionReport) -> tuple[str, str]:
    """Return the submission status and message from what happened during execution."""
    if report.kernel_died_at is not None:
        return "kernel-died", "the kernel stopped (the code exited, crashed or was killed); later cells did not run"
    if report.total_timeout_at is not None:
        return "timeout", "the notebook reached the total time limit; later cells did not run"
    # A cell interrupted for flooding the output can also report a timeout.
    timeouts = [cell for cell in report.timed_out_cells if cell not in report.output_interrupted_cells]
    if timeouts:
        return "timeout", f"{len(timeouts)} cell(s) exceeded the cell time limit and were interrupted"
    if report.memory_error_cells:
        return "memory", f"{len(report.memory_error_cells)} cell(s) exceeded the memory limit (MemoryError)"
    if report.output_limited:
        return "output-limit", "the notebook printed more than the output limit; the rest of its output was dropped"
    return "ok", ""


def feedback_notebook(executed, spec: ExerciseSpec, result: SubmissionResult, secret: list[str],
                      seed: int) -> nbformat.NotebookNode:
    """Build the student's feedback: a score table on top and each test cell's result under it.

    Test cells show only their visible part; any output that contains a line
    of hidden test code is replaced by a notice.
    """
    tests = {t.cell_id: t for t in spec.tests}
    rows = ["| question | points | status | feedback |", "|---|---|---|---|"]
    for q in result.questions:
        points = unscored_label(q.points, q.status) or f"{q.points:g} / {q.max_points:g}"
        rows.append(f"| {q.question} | {points} | {q.status} | {q.feedback.replace('|', '/')} |")
    summary = [f"# Feedback: {spec.name}, submission {result.submission_id}", "",
               f"Status: **{result.status}**. Autograded points: **{result.points:g} of {result.max_points:g}** "
               f"(graded with seed {seed}).", ""]
    if result.message:
        summary += [result.message.replace("\n", " "), ""]
    cells = [nbformat.v4.new_markdown_cell("\n".join(summary + rows))]
    outcomes = {q.question: q for q in result.questions}
    for cell in executed.cells:
        role = cell.metadata.get(ROLE_KEY, {})
        if role.get("role") == "setup":
            continue
        new = nbformat.v4.new_markdown_cell(cell.source) if cell.cell_type == "markdown" else None
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(cell.source)
            new.outputs = [_redact_output(output, secret) for output in cell.get("outputs", [])]
        if role.get("role") == "test":
            test = tests[role["test"]]
            question = outcomes[test.question]
            new.source = strip_hidden_tests(test.source) or HIDDEN_PLACEHOLDER
            passed, message = question.test_outcomes.get(test.cell_id, (False, f"{test.cell_id}: not run"))
            earned = test.points if passed else 0.0
            text = f"{message} ({earned:g} of {test.points:g} point(s))\n"
            new.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        cells.append(new)
    for number, cell in enumerate(cells):
        cell.id = f"feedback-{number:03d}"
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"fedmed_lab": {"exercise": spec.name}})
    return notebook


def _redact_output(output, secret: list[str]):
    text = ""
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    elif output.get("output_type") in ("execute_result", "display_data"):
        text = str(output.get("data", {}).get("text/plain", "")) + str(output.get("data", {}).get("text/html", ""))
    elif output.get("output_type") == "error":
        text = "\n".join(output.get("traceback", [])) + output.get("evalue", "")
    if any(line in text for line in secret):
        return nbformat.v4.new_output("stream", name="stderr", text=REDACTED + "\n")
    return output


def _grade_readable(job: GradeJob, data: bytes, solution, spec: ExerciseSpec) -> SubmissionResult:
    submission = read_submission(data, job.exercise)
    secret = hidden_lines(spec)

    slots = runner.kernel_slots()
    slot = slots.take()
    try:
        shutil.copyfile(job.submission_path, slot.work_dir / Path(job.submission_path).name)
        token = runner.new_token()
        results_path = slot.results_dir / f"results-{token}.jsonl"
        imports = solution_imports(solution)
        assembled = assemble(solution, submission, spec, seed=job.seed,
                             setup_source=runner.setup_source(job.limits),
                             wrap_test=lambda test: runner.wrap_test_source(test, results_path, token, imports))
        report = runner.execute(assembled.notebook, slot, slots, results_path, token, job.limits)
    finally:
        slots.release(slot)

    test_cell_ids = {cell.metadata[ROLE_KEY]["test"]: cell.id for cell in assembled.notebook.cells
                     if cell.metadata.get(ROLE_KEY, {}).get("role") == "test"}
    status, message = submission_status(report)
    message = "; ".join(part for part in [message, *assembled.notes] if part)
    written: dict[str, list[str]] = {}
    answer_cells: dict[str, list[tuple[str, str]]] = {}
    for cell in assembled.notebook.cells:
        role = cell.metadata.get(ROLE_KEY, {})
        if role.get("role") == "manual-answer":
            written.setdefault(role["question"], []).append(cell.source)
        elif role.get("role") in ("answer", "extra"):
            answer_cells.setdefault(role["question"], []).append((cell.id, role["role"]))
    questions = score_questions(spec, report, test_cell_ids, assembled.missing_answers, secret,
                                written_answers={q: "\n\n".join(texts) for q, texts in written.items()},
                                templates=written_templates(solution), answer_cells=answer_cells)
    result = SubmissionResult(job.submission_id, job.exercise, job.content_hash, status, message, questions)

    if job.feedback_dir:
        feedback = feedback_notebook(assembled.notebook, spec, result, secret, job.seed)
        target = Path(job.feedback_dir) / f"{job.submission_id}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(feedback, target)
    return result


def grade_submission(job: GradeJob) -> SubmissionResult:
    """Grade one submission in a fresh kernel.

    Every failure, of the submission or of the grader, becomes the returned
    result's status. The solution notebook must be valid (the batch checks it
    before starting), because the questions to report come from it.
    """
    start = time.monotonic()
    solution = nbformat.read(job.solution_path, as_version=4)
    spec = read_spec(solution)
    try:
        try:
            data = Path(job.submission_path).read_bytes()
        except OSError as error:
            raise SubmissionProblem("invalid-file", f"the file could not be read: {error.strerror}") from None
        result = _grade_readable(job, data, solution, spec)
    except SubmissionProblem as problem:
        result = SubmissionResult(job.submission_id, job.exercise, job.content_hash, problem.status,
                                  problem.message, _unrun_questions(spec, problem.message))
    except Exception as error:  # noqa: BLE001 - one submission's grader fault must not stop the batch
        logger.exception("grading %s failed", job.submission_id)
        message = f"the grader failed on this submission: {type(error).__name__}: {error}"
        result = SubmissionResult(job.submission_id, job.exercise, job.content_hash, "grader-error",
                                  message, _unrun_questions(spec, "not graded: grader error"))
    result.seconds = time.monotonic() - start
    if job.feedback_dir and result.status in ("invalid-file", "old-format", "wrong-exercise", "grader-error"):
        _write_problem_feedback(job, spec, result)
    return result


def _write_problem_feedback(job: GradeJob, spec: ExerciseSpec, result: SubmissionResult) -> None:
    text = (f"# Feedback: {spec.name}, submission {result.submission_id}\n\n"
            f"Status: **{result.status}**. {result.message}\n\nNo question was graded.")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)],
                                        metadata={"fedmed_lab": {"exercise": spec.name}})
    notebook.cells[0].id = "feedback-000"
    target = Path(job.feedback_dir) / f"{job.submission_id}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
