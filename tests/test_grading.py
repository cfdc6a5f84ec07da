"""Tests for fedmed_lab.grading: real kernels, real files, short limits."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from fedmed_lab import exercises
from fedmed_lab.grading import Gradebook, Limits, format_summary, grade_batch
from fedmed_lab.grading.scoring import hidden_lines, score_written_answer
from fedmed_lab.grading.submission import SubmissionProblem, read_submission

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = exercises.find_solutions(ROOT / "solutions")
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "wrong_answers").glob("*/*.json"))
EX01 = "ex01_weighted_aggregation"

pytestmark = pytest.mark.notebooks
EX01_SOLUTION = ROOT / "solutions" / f"{EX01}.ipynb"

# Short limits keep the bad-submission tests fast; the memory limit stays
# above the ~0.9 GB address space a kernel with numpy imported already uses.
TEST_LIMITS = Limits(cell_timeout=4, total_timeout=15, memory_bytes=1536 * 1024**2, output_bytes=64 * 1024)
# Solutions of every chapter must pass on a loaded machine, so they get room.
SOLUTION_LIMITS = Limits(cell_timeout=60, total_timeout=180, memory_bytes=4 * 1024**3, output_bytes=1024**2)


def _grade(exercise, solution, paths, tmp_path, *, jobs=2, name="gradebook", limits=TEST_LIMITS, **kwargs):
    gradebook = tmp_path / f"{name}.sqlite"
    report = grade_batch(exercise, solution, paths, gradebook, limits=limits, jobs=jobs, progress=None,
                         **kwargs)
    with Gradebook(gradebook) as book:
        rows = {row["submission_id"]: row for row in book.rows(exercise)}
    return report, rows


def _with_answers(solution_path: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """Return the solution notebook with the given answer cells' sources replaced, written answers included."""
    notebook = nbformat.read(solution_path, as_version=4)
    answer_tags = {exercises.ANSWER_TAG, exercises.MANUAL_ANSWER_TAG}
    for cell in notebook.cells:
        question = exercises.cell_info(cell).get("question")
        if answer_tags & set(exercises.cell_tags(cell)) and question in answers:
            cell.source = answers[question]
    return notebook


def _write(notebook, path: Path) -> Path:
    nbformat.write(notebook, path)
    return path


def _feedback_text(row) -> str:
    return " ".join(q["feedback"] for q in row["questions"]) + " " + row["message"]


# ---------------------------------------------------------------- reading input

@pytest.mark.parametrize("data, status, words", [
    (b"", "invalid-file", "empty"),
    (b"  \n", "invalid-file", "empty"),
    (b"<!DOCTYPE html><html><body>JupyterHub</body></html>", "invalid-file", "HTML page"),
    (b'{"cells": [', "invalid-file", "not valid JSON"),
    (b"\xff\xfe\x00binary", "invalid-file", "not UTF-8"),
    (b'{"hello": 1}', "invalid-file", "not a Jupyter notebook"),
    (b'{"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}}', "old-format", "version 3"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": [],
                 "metadata": {"fedmed_lab": {"exercise": "ex99_other"}}}).encode(), "wrong-exercise", "ex99_other"),
])
def test_read_submission_rejects(data, status, words):
    with pytest.raises(SubmissionProblem) as problem:
        read_submission(data, EX01)
    assert problem.value.status == status
    assert words in problem.value.message


def test_read_submission_accepts_solution():
    notebook = read_submission(EX01_SOLUTION.read_bytes(), EX01)
    assert exercises.exercise_name(notebook) == EX01


# ---------------------------------------------------------------- solutions, exercises, wrong answers

@pytest.mark.parametrize("solution_path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_full_exercise_zero(solution_path, tmp_path):
    exercise = solution_path.stem
    solution_copy = tmp_path / "solution.ipynb"
    solution_copy.write_bytes(solution_path.read_bytes())
    blank_copy = tmp_path / "blank.ipynb"
    blank_copy.write_bytes((ROOT / "exercises" / solution_path.name).read_bytes())
    _, rows = _grade(exercise, solution_path, [solution_copy, blank_copy], tmp_path, limits=SOLUTION_LIMITS)

    solution_row, blank_row = rows["solution"], rows["blank"]
    assert solution_row["status"] == "ok", solution_row["message"]
    assert solution_row["max_points"] > 0
    assert solution_row["points"] == solution_row["max_points"], _feedback_text(solution_row)
    assert blank_row["status"] == "ok", blank_row["message"]
    assert blank_row["points"] == 0
    spec = exercises.read_spec(nbformat.read(solution_path, as_version=4))
    # Both still hold the template text of each written answer.
    for row in (solution_row, blank_row):
        manual = [q for q in row["questions"] if q["question"] in spec.manual_questions]
        assert all(q["points"] is None and q["status"] == "unanswered" for q in manual)
        assert row["awaiting_grader"] == ""


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f"{p.parent.name}-{p.stem}" for p in FIXTURES])
def test_wrong_answer_partial_credit(fixture, tmp_path):
    exercise = fixture.parent.name
    spec = json.loads(fixture.read_text(encoding="utf-8"))
    solution_path = ROOT / "solutions" / f"{exercise}.ipynb"
    submission = _write(_with_answers(solution_path, spec["answers"]), tmp_path / f"{fixture.stem}.ipynb")
    _, rows = _grade(exercise, solution_path, [submission], tmp_path, jobs=1, limits=SOLUTION_LIMITS)

    row = rows[fixture.stem]
    assert row["status"] == "ok", row["message"]
    assert 0 < row["points"] < row["max_points"], _feedback_text(row)
    assert spec["expected_feedback"].lower() in _feedback_text(row).lower()


def test_every_exercise_has_two_fixtures():
    for solution_path in SOLUTIONS:
        fixtures = list((ROOT / "tests" / "fixtures" / "wrong_answers" / solution_path.stem).glob("*.json"))
        assert len(fixtures) >= 2, f"{solution_path.stem} needs at least two wrong-answer fixtures"


# ---------------------------------------------------------------- bad submissions in one batch

Q1_CORRECT = ('def weighted_aggregate(vectors, num_examples):\n'
              '    sizes = np.asarray(num_examples, dtype=float)\n'
              '    return (sizes / sizes.sum()) @ np.vstack(vectors)')
Q1_UNWEIGHTED = ('def weighted_aggregate(vectors, num_examples):\n'
                 '    return np.mean(np.vstack(vectors), axis=0)')

# Reads the token and results path of an earlier test cell from the kernel's
# history, writes passing records for q2's tests, then exits before they run.
FORGE_RESULTS = r'''import json, os, re
history = "\n".join(In)
token = re.search(r"\"token\": '([0-9a-f]+)'", history).group(1)
path = re.search(r"open\('([^']+)'", history).group(1)
with open(path, "a") as results:
    for cell in ("q2a-tests", "q2b-tests"):
        results.write(json.dumps({"token": token, "cell": cell, "passed": True}) + "\n")
os._exit(0)'''

WRITTEN_ANSWER = ("Weighting by examples lets the large hospital dominate, so the global model fits its "
                  "patients best; the small sites pay for that in accuracy.")

STUDENT_CODE = {
    "infinite_loop": {"q2": "while True:\n    pass"},
    "ignores_interrupt": {"q2": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"},
    "memory_bomb": {"q2": "hoard = []\nwhile True:\n    hoard.append(bytearray(50 * 1024**2))"},
    "output_flood": {"q2": "while True:\n    print('x' * 1000)"},
    "one_big_print": {"q1": Q1_CORRECT + "\nprint('y' * 200_000)"},
    "kernel_exits": {"q2": "import os\nos._exit(3)"},
    "kernel_killed": {"q2": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"},
    "deletes_files": {"q1": Q1_CORRECT + "\nimport os\nfor name in os.listdir('.'):\n    os.remove(name)",
                      "q3": WRITTEN_ANSWER},
    "reads_hidden_tests": {"q2": (
        "import glob\n"
        "for path in glob.glob('*.ipynb') + glob.glob('../**/*.ipynb', recursive=True):\n"
        "    print(open(path).read())\n"
        "print('\\n'.join(In))\n"
        "weighted_error = 0.0\nunweighted_error = 0.5")},
    "fakes_passed": {"q1": (Q1_UNWEIGHTED + "\nget_ipython().showtraceback = lambda *args, **kwargs: None\n"
                           "print('q1: the two-site check passed')\nprint('All tests passed')")},
    "overrides_checks": {"q1": (Q1_UNWEIGHTED + "\ncheck_array = lambda *args, **kwargs: None\n"
                                "import fedmed_lab.checking\n"
                                "fedmed_lab.checking.check_array = lambda *args, **kwargs: None"),
                         "q3": "  \n"},
    "forges_results": {"q2": FORGE_RESULTS},
    "claims_equality": {
        "q1": ("class Anything(float):\n    def __eq__(self, other):\n        return True\n"
               "    __ne__ = lambda self, other: False\n"
               "def weighted_aggregate(vectors, num_examples):\n    return Anything(0.0)"),
        "q2": "weighted_error = unweighted_error = Anything(0.0)"},
}


def _structural_cases(tmp_path: Path) -> dict[str, Path]:
    """Duplicated, deleted and retyped answer cells, and a deleted test cell."""
    paths = {}
    notebook = nbformat.read(EX01_SOLUTION, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if c.id == "q1-answer")
    duplicate = nbformat.v4.new_code_cell(notebook.cells[index].source, metadata=dict(notebook.cells[index].metadata))
    notebook.cells[index].source = Q1_UNWEIGHTED
    notebook.cells.insert(index + 1, duplicate)
    paths["duplicated_answer"] = _write(notebook, tmp_path / "duplicated_answer.ipynb")

    notebook = nbformat.read(EX01_SOLUTION, as_version=4)
    notebook.cells = [c for c in notebook.cells if c.id != "q2-answer"]
    paths["deleted_answer"] = _write(notebook, tmp_path / "deleted_answer.ipynb")

    notebook = nbformat.read(EX01_SOLUTION, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if c.id == "q1-answer")
    retyped = nbformat.v4.new_markdown_cell(notebook.cells[index].source, metadata=notebook.cells[index].metadata)
    retyped.id = "q1-answer"
    notebook.cells[index] = retyped
    paths["retyped_answer"] = _write(notebook, tmp_path / "retyped_answer.ipynb")

    notebook = nbformat.read(EX01_SOLUTION, as_version=4)
    notebook.cells = [c for c in notebook.cells if c.id != "q1a-tests"]
    paths["deleted_test"] = _write(notebook, tmp_path / "deleted_test.ipynb")

    raw = json.loads(EX01_SOLUTION.read_text(encoding="utf-8"))
    raw["nbformat_minor"] = 4
    for cell in raw["cells"]:
        del cell["id"]
    paths["without_cell_ids"] = tmp_path / "without_cell_ids.ipynb"
    paths["without_cell_ids"].write_text(json.dumps(raw), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Grade every bad submission in one batch with two jobs and feedback notebooks."""
    tmp_path = tmp_path_factory.mktemp("corpus")
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    paths = {
        "empty": submissions / "empty.ipynb",
        "html_page": submissions / "html_page.ipynb",
        "invalid_json": submissions / "invalid_json.ipynb",
        "old_format": submissions / "old_format.ipynb",
        "wrong_exercise": submissions / "wrong_exercise.ipynb",
    }
    paths["empty"].write_bytes(b"")
    paths["html_page"].write_text("<!DOCTYPE html>\n<html><head><title>JupyterHub</title></head></html>\n")
    paths["invalid_json"].write_text(EX01_SOLUTION.read_text(encoding="utf-8")[:500])
    paths["old_format"].write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                                               "worksheets": [{"cells": []}]}))
    unrelated = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    paths["unrelated_notebook"] = _write(unrelated, submissions / "unrelated_notebook.ipynb")
    other = nbformat.read(EX01_SOLUTION, as_version=4)
    other.metadata["fedmed_lab"]["exercise"] = "ex02_renormalize"
    _write(other, paths["wrong_exercise"])
    for name, answers in STUDENT_CODE.items():
        paths[name] = _write(_with_answers(EX01_SOLUTION, answers), submissions / f"{name}.ipynb")
    paths.update(_structural_cases(submissions))

    feedback = tmp_path / "feedback"
    start = time.monotonic()
    report, rows = _grade(EX01, EX01_SOLUTION, list(paths.values()), tmp_path, feedback_dir=feedback)
    return {"report": report, "rows": rows, "paths": paths, "feedback": feedback, "tmp": tmp_path,
            "seconds": time.monotonic() - start}


def _question(row, question):
    return next(q for q in row["questions"] if q["question"] == question)


EXPECTED_STATUS = {
    "empty": "invalid-file", "html_page": "invalid-file", "invalid_json": "invalid-file",
    "old_format": "old-format", "wrong_exercise": "wrong-exercise",
    "unrelated_notebook": "wrong-exercise",
    "infinite_loop": "timeout", "ignores_interrupt": "timeout", "memory_bomb": "memory", "output_flood": "output-limit", "one_big_print": "output-limit",
    "kernel_exits": "kernel-died", "kernel_killed": "kernel-died", "deletes_files": "ok",
    "reads_hidden_tests": "ok", "fakes_passed": "ok", "claims_equality": "ok", "overrides_checks": "ok",
    "forges_results": "kernel-died",
    "duplicated_answer": "ok", "deleted_answer": "ok", "retyped_answer": "ok", "deleted_test": "ok",
    "without_cell_ids": "ok",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_corpus_status(corpus, name):
    row = corpus["rows"][name]
    assert row["status"] == EXPECTED_STATUS[name], row["message"]
    assert row["message"] or row["status"] == "ok"


def test_corpus_one_row_each(corpus):
    assert sorted(corpus["rows"]) == sorted(corpus["paths"])
    for row in corpus["rows"].values():
        assert [q["question"] for q in row["questions"]] == ["q1", "q2", "q3"]
    assert corpus["seconds"] < 150


def test_written_answer_stored(corpus):
    row = corpus["rows"]["deletes_files"]
    q3 = _question(row, "q3")
    assert q3["answer_text"] == WRITTEN_ANSWER
    assert q3["points"] is None
    assert q3["status"] == "awaiting-grader"
    assert row["awaiting_grader"] == "q3"
    assert _question(row, "q1")["answer_text"] == ""


def test_template_answer_unanswered(corpus):
    q3 = _question(corpus["rows"]["reads_hidden_tests"], "q3")
    assert q3["status"] == "unanswered"
    assert q3["points"] is None
    assert q3["feedback"] == "written answer left as the exercise's template text"
    assert q3["answer_text"] == "_Write your answer here._"
    assert corpus["rows"]["reads_hidden_tests"]["awaiting_grader"] == ""


def test_empty_answer_unanswered(corpus):
    q3 = _question(corpus["rows"]["overrides_checks"], "q3")
    assert q3["status"] == "unanswered"
    assert q3["points"] is None
    assert q3["feedback"] == "written answer left empty"


@pytest.mark.parametrize("text, missing, status, feedback", [
    ("_Write your answer here._", False, "unanswered", "written answer left as the exercise's template text"),
    ("\n  _Write your answer\nhere._  \n", False, "unanswered", "written answer left as the exercise's template text"),
    ("", False, "unanswered", "written answer left empty"),
    ("", True, "unanswered", "written answer missing (the answer cell was deleted or retyped)"),
    ("_Write your answer here._ Large sites dominate.", False, "awaiting-grader", "written answer: awaiting a grader"),
])
def test_score_written_answer(text, missing, status, feedback):
    result = score_written_answer("q3", 2.0, text, "_Write your answer here._", missing)
    assert result.status == status
    assert result.feedback == feedback
    assert result.points is None
    assert result.answer_text == text


NOT_RUN_SUBMISSIONS = ["empty", "html_page", "invalid_json", "old_format", "wrong_exercise", "unrelated_notebook"]


@pytest.mark.parametrize("name", NOT_RUN_SUBMISSIONS)
def test_unrun_submission_questions_not_run(corpus, name):
    row = corpus["rows"][name]
    assert [q["status"] for q in row["questions"]] == ["not-run", "not-run", "not-run"]
    q3 = _question(row, "q3")
    assert q3["points"] is None
    assert q3["answer_text"] == ""
    assert q3["feedback"].startswith("written answer not read because the submission was not run: ")
    assert row["awaiting_grader"] == ""
    assert row["max_points"] == 6


def test_awaiting_query_lists_real_answers(corpus):
    # The query from docs/grading.md.
    with sqlite3.connect(corpus["tmp"] / "gradebook.sqlite") as connection:
        rows = connection.execute("SELECT submission_id, answer_text FROM questions "
                                  "WHERE status = 'awaiting-grader'").fetchall()
    assert rows == [("deletes_files", WRITTEN_ANSWER)]


def test_failure_keeps_other_questions(corpus):
    # q2 runs the bad code; q1's tests ran before it and keep their points.
    for name in ("infinite_loop", "ignores_interrupt", "memory_bomb", "output_flood", "kernel_exits", "kernel_killed"):
        row = corpus["rows"][name]
        assert _question(row, "q1")["points"] == 3, (name, _feedback_text(row))
        assert _question(row, "q2")["points"] == 0, name


ANSWER_CELL_FEEDBACK = {
    "infinite_loop": "your q2 answer cell timed out after 4 s; the tests then failed with: q2a-tests: NameError: ",
    # The kernel ignores the interrupt, so the test cells queued behind the loop time out too.
    "ignores_interrupt": "your q2 answer cell timed out after 4 s; then: q2a-tests: ",
    "memory_bomb": "your q2 answer cell hit the memory limit (MemoryError); the tests then failed with: "
                   "q2a-tests: NameError: ",
    "output_flood": "your q2 answer cell was interrupted for printing past the output limit; the tests then "
                    "failed with: q2a-tests: NameError: ",
    "kernel_exits": "the kernel died while your q2 answer cell ran (the code exited, crashed or was killed); "
                    "then: q2a-tests: not run because the kernel died earlier",
    "kernel_killed": "the kernel died while your q2 answer cell ran (the code exited, crashed or was killed); "
                     "then: q2a-tests: not run because the kernel died earlier",
}


@pytest.mark.parametrize("name", sorted(ANSWER_CELL_FEEDBACK))
def test_answer_cell_failure_leads_feedback(corpus, name):
    row = corpus["rows"][name]
    assert _question(row, "q2")["feedback"].startswith(ANSWER_CELL_FEEDBACK[name])
    assert _question(row, "q1")["feedback"] == "all tests passed"


def test_cheats_earn_nothing(corpus):
    assert _question(corpus["rows"]["fakes_passed"], "q1")["points"] == 0
    # weighted_error reuses the wrong weighted_aggregate, so only q2b (the unweighted error) passes.
    assert _question(corpus["rows"]["fakes_passed"], "q2")["points"] == 2
    assert corpus["rows"]["claims_equality"]["points"] == 0
    assert _question(corpus["rows"]["overrides_checks"], "q1")["points"] == 0
    assert _question(corpus["rows"]["forges_results"], "q2")["points"] == 0


def test_big_print_spares_tests(corpus):
    # The interrupt for the oversized output must not reach the test cells after it.
    assert corpus["rows"]["one_big_print"]["points"] == 6


def test_deleting_files_harmless(corpus):
    assert corpus["rows"]["deletes_files"]["points"] == 6


def test_structural_changes_reported(corpus):
    rows = corpus["rows"]
    assert rows["duplicated_answer"]["points"] == 6
    assert "duplicated" in rows["duplicated_answer"]["message"]
    assert _question(rows["deleted_answer"], "q1")["points"] == 3
    assert _question(rows["deleted_answer"], "q2")["points"] == 0
    assert "no answer cell found" in rows["deleted_answer"]["message"]
    assert _question(rows["retyped_answer"], "q1")["points"] == 0
    assert "retyped" in rows["retyped_answer"]["message"]
    assert rows["deleted_test"]["points"] == 6
    assert "restored deleted cell(s): q1a-tests" in rows["deleted_test"]["message"]
    assert rows["without_cell_ids"]["points"] == 6
    assert rows["without_cell_ids"]["message"] == ""


def test_feedback_never_shows_hidden_tests(corpus):
    secret = hidden_lines(exercises.read_spec(nbformat.read(EX01_SOLUTION, as_version=4)))
    assert secret
    files = sorted(corpus["feedback"].glob("*.ipynb"))
    assert sorted(p.stem for p in files) == sorted(corpus["paths"])
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not [line for line in secret if line in text], path.name
    for row in corpus["rows"].values():
        assert not [line for line in secret if line in _feedback_text(row)], row["submission_id"]


def test_feedback_shows_points(corpus):
    feedback = nbformat.read(corpus["feedback"] / "fakes_passed.ipynb", as_version=4)
    summary = feedback.cells[0].source
    assert "| q1 | 0 / 3 | failed |" in summary
    assert "| q3 | unanswered | unanswered | written answer left as the exercise's template text |" in summary
    assert "unweighted mean" in summary
    summary = nbformat.read(corpus["feedback"] / "deletes_files.ipynb", as_version=4).cells[0].source
    assert "| q3 | awaiting grader | awaiting-grader |" in summary
    summary = nbformat.read(corpus["feedback"] / "infinite_loop.ipynb", as_version=4).cells[0].source
    assert "| q2 | 0 / 3 | failed | your q2 answer cell timed out after 4 s;" in summary


def test_summary_counts_statuses(corpus):
    summary = format_summary(corpus["report"])
    assert "kernel-died 3" in summary
    assert "invalid-file 3" in summary
    assert "distribution:" in summary


def test_csv_export_sorted(corpus, tmp_path):
    with Gradebook(corpus["tmp"] / "gradebook.sqlite") as book:
        count = book.export_csv(EX01, tmp_path / "grades.csv")
    with (tmp_path / "grades.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert count == len(rows) == len(corpus["paths"])
    assert [r["submission_id"] for r in rows] == sorted(corpus["paths"])
    q3 = {r["submission_id"]: r["q3"] for r in rows}
    assert q3.pop("deletes_files") == "awaiting grader"
    for name in NOT_RUN_SUBMISSIONS:
        assert q3.pop(name) == "not run", name
    assert set(q3.values()) == {"unanswered"}
    assert {r["q1"] for r in rows if r["submission_id"] in NOT_RUN_SUBMISSIONS} == {"0"}


# ---------------------------------------------------------------- re-runs, kill and resume, --jobs

def test_rerun_skips_unchanged(tmp_path):
    first = tmp_path / "alice.ipynb"
    first.write_bytes(EX01_SOLUTION.read_bytes())
    report, _ = _grade(EX01, EX01_SOLUTION, [first], tmp_path, jobs=1)
    assert [r.submission_id for r in report.graded] == ["alice"]

    report, _ = _grade(EX01, EX01_SOLUTION, [first], tmp_path, jobs=1)
    assert report.graded == []
    assert report.skipped == ["alice"]

    _write(_with_answers(EX01_SOLUTION, {"q1": Q1_UNWEIGHTED}), first)
    report, rows = _grade(EX01, EX01_SOLUTION, [first], tmp_path, jobs=1)
    assert [r.submission_id for r in report.graded] == ["alice"]
    assert rows["alice"]["points"] == 2

    report, _ = _grade(EX01, EX01_SOLUTION, [first], tmp_path, jobs=1, force=True)
    assert [r.submission_id for r in report.graded] == ["alice"]


def test_missing_path_rejected(tmp_path):
    present = _write(nbformat.read(EX01_SOLUTION, as_version=4), tmp_path / "alice.ipynb")
    with pytest.raises(ValueError, match=r"^no such file or folder: .*bob\.ipynb$"):
        grade_batch(EX01, EX01_SOLUTION, [present, tmp_path / "bob.ipynb"], tmp_path / "g.sqlite", progress=None)
    assert not (tmp_path / "g.sqlite").exists()


def test_duplicate_ids_rejected(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="more than one file is named bob"):
        grade_batch(EX01, EX01_SOLUTION, [tmp_path / "a" / "bob.ipynb", tmp_path / "b" / "bob.ipynb"],
                    tmp_path / "g.sqlite", progress=None)


def _count_rows(gradebook: Path) -> int:
    if not gradebook.exists():
        return 0
    try:
        with sqlite3.connect(gradebook) as connection:
            return connection.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_then_resume(tmp_path):
    paths = []
    for number in range(6):
        path = tmp_path / f"student{number}.ipynb"
        path.write_bytes(EX01_SOLUTION.read_bytes())
        paths.append(path)
    gradebook = tmp_path / "gradebook.sqlite"
    command = [sys.executable, "-m", "fedmed_lab.cli", "grade", EX01, *map(str, paths), "--gradebook",
               str(gradebook), "--solutions-dir", str(ROOT / "solutions"), "--jobs", "1"]
    # The killed grader cannot delete its scratch folders; keep them under tmp_path.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 60
    while _count_rows(gradebook) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = _count_rows(gradebook)
    assert 2 <= finished < 6

    report, rows = _grade(EX01, ROOT / "solutions" / f"{EX01}.ipynb", paths, tmp_path, jobs=2)
    assert len(report.skipped) == finished
    assert len(report.graded) == 6 - finished
    assert sorted(rows) == [p.stem for p in paths]
    assert all(row["points"] == 6 for row in rows.values())


def test_result_independent_of_jobs(tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    paths = [_write(_with_answers(EX01_SOLUTION, json.loads(f.read_text())["answers"]), submissions / f"{f.stem}.ipynb")
             for f in FIXTURES if f.parent.name == EX01]
    paths.append(_write(_with_answers(EX01_SOLUTION, STUDENT_CODE["infinite_loop"]), submissions / "loop.ipynb"))
    (submissions / "empty.ipynb").write_bytes(b"")
    paths.append(submissions / "empty.ipynb")
    exports = []
    for jobs in (1, 2):
        _grade(EX01, EX01_SOLUTION, paths, tmp_path, jobs=jobs, name=f"jobs{jobs}")
        with Gradebook(tmp_path / f"jobs{jobs}.sqlite") as book:
            book.export_csv(EX01, tmp_path / f"jobs{jobs}.csv")
        exports.append((tmp_path / f"jobs{jobs}.csv").read_text(encoding="utf-8"))
    assert exports[0] == exports[1]
    assert exports[0].count("\n") == len(paths) + 1


# ---------------------------------------------------------------- command line

def test_cli_unknown_exercise(tmp_path, capsys):
    from fedmed_lab.cli import main

    assert main(["grade", "ex99_missing", str(tmp_path / "a.ipynb"), "--solutions-dir", str(ROOT / "solutions")]) == 2
    assert "exercise 'ex99_missing' not found" in capsys.readouterr().err


def test_cli_batch_summary_and_csv(tmp_path, capsys):
    from fedmed_lab.cli import main

    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "empty.ipynb").write_bytes(b"")
    (folder / "page.ipynb").write_text("<html></html>", encoding="utf-8")
    arguments = ["grade", EX01, str(folder), "--solutions-dir", str(ROOT / "solutions"), "--gradebook",
                 str(tmp_path / "g.sqlite"), "--csv", str(tmp_path / "g.csv"), "--feedback", str(tmp_path / "fb")]
    assert main(arguments) == 0
    captured = capsys.readouterr()
    assert "status: invalid-file 2" in captured.out
    assert "[2/2]" in captured.err
    assert (tmp_path / "g.csv").read_text(encoding="utf-8").splitlines()[1].startswith("empty,")
    assert sorted(p.name for p in (tmp_path / "fb").iterdir()) == ["empty.ipynb", "page.ipynb"]

    assert main(arguments) == 0
    assert "skipped 2 unchanged" in capsys.readouterr().err


def test_cli_rejects_missing_paths(tmp_path, capsys):
    from fedmed_lab.cli import main

    present = _write(nbformat.read(EX01_SOLUTION, as_version=4), tmp_path / "alice.ipynb")
    pattern, folder = tmp_path / "nofolder" / "*.ipynb", tmp_path / "nofolder"
    gradebook = tmp_path / "g.sqlite"
    arguments = ["grade", EX01, str(pattern), str(present), str(folder), "--solutions-dir", str(ROOT / "solutions"),
                 "--gradebook", str(gradebook)]
    assert main(arguments) == 2
    errors = capsys.readouterr().err.splitlines()
    assert f"cannot grade: no such file or folder: {pattern} (the shell left this pattern unexpanded because no " \
           "file matches it)" in errors
    assert f"cannot grade: no such file or folder: {folder}" in errors
    assert not gradebook.exists()


def test_cli_rejects_empty_folder(tmp_path, capsys):
    from fedmed_lab.cli import main

    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a notebook", encoding="utf-8")
    gradebook = tmp_path / "g.sqlite"
    arguments = ["grade", EX01, str(folder), "--solutions-dir", str(ROOT / "solutions"), "--gradebook", str(gradebook)]
    assert main(arguments) == 2
    errors = capsys.readouterr().err.splitlines()
    assert f"cannot grade: no submissions found in {folder} (it contains no .ipynb file)" in errors
    assert not gradebook.exists()
