"""The SQLite gradebook and its CSV export.

One row per (exercise, submission id) in ``submissions`` and one per
question in ``questions``. Each submission is written in its own
transaction, so a batch killed midway keeps every result finished before
the kill. Manual questions are stored with ``points`` NULL, never as zero,
and the student's written answer in ``answer_text``. Their status is
``awaiting-grader`` for a real answer, ``unanswered`` for an empty answer or
the untouched template text, and ``not-run`` when the submission never ran.
"""

from __future__ import annotations

import csv
import datetime
import sqlite3
from pathlib import Path

from fedmed_lab.grading.scoring import GRADER_VERSION, SubmissionResult, unscored_label

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    exercise TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    points REAL NOT NULL,
    max_points REAL NOT NULL,
    awaiting_grader TEXT NOT NULL,
    seconds REAL NOT NULL,
    graded_at TEXT NOT NULL,
    grader_version TEXT NOT NULL,
    PRIMARY KEY (exercise, submission_id)
);
CREATE TABLE IF NOT EXISTS questions (
    exercise TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    question TEXT NOT NULL,
    points REAL,
    max_points REAL NOT NULL,
    status TEXT NOT NULL,
    feedback TEXT NOT NULL,
    answer_text TEXT NOT NULL,
    PRIMARY KEY (exercise, submission_id, question)
);
"""


class Gradebook:
    """A gradebook file; open it with ``with Gradebook(path) as book:``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(self.path)
        self.connection.executescript(SCHEMA)

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def is_graded(self, exercise: str, submission_id: str, content_hash: str, source_hash: str) -> bool:
        """Return True when this exact submission was graded against this exact solution."""
        row = self.connection.execute(
            "SELECT 1 FROM submissions WHERE exercise = ? AND submission_id = ? AND content_hash = ? "
            "AND source_hash = ?", (exercise, submission_id, content_hash, source_hash)).fetchone()
        return row is not None

    def record(self, result: SubmissionResult, source_hash: str) -> None:
        """Store one submission's result, replacing an older one, in a single transaction."""
        graded_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        key = (result.exercise, result.submission_id)
        with self.connection:
            self.connection.execute("DELETE FROM questions WHERE exercise = ? AND submission_id = ?", key)
            self.connection.execute(
                "INSERT OR REPLACE INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, result.content_hash, source_hash, result.status, result.message, result.points,
                 result.max_points, ",".join(result.awaiting), round(result.seconds, 3), graded_at,
                 GRADER_VERSION))
            self.connection.executemany(
                "INSERT INTO questions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*key, q.question, q.points, q.max_points, q.status, q.feedback, q.answer_text)
                 for q in result.questions])

    def rows(self, exercise: str) -> list[dict]:
        """Return every submission of ``exercise`` with its questions, sorted by submission id."""
        self.connection.row_factory = sqlite3.Row
        try:
            submissions = self.connection.execute(
                "SELECT * FROM submissions WHERE exercise = ? ORDER BY submission_id", (exercise,)).fetchall()
            rows = []
            for submission in submissions:
                questions = self.connection.execute(
                    "SELECT * FROM questions WHERE exercise = ? AND submission_id = ? ORDER BY question",
                    (exercise, submission["submission_id"])).fetchall()
                rows.append({**dict(submission), "questions": [dict(q) for q in questions]})
            return rows
        finally:
            self.connection.row_factory = None

    def export_csv(self, exercise: str, path: Path) -> int:
        """Write the exercise's grades as CSV, one row per submission sorted by id; return the row count.

        Columns: submission_id, status, points, max_points, one column per
        question (points, or for a written question "awaiting grader",
        "unanswered" or "not run"), message. Timing columns are
        left out so the file is the same for the same grades.
        """
        rows = self.rows(exercise)
        questions = sorted({q["question"] for row in rows for q in row["questions"]})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["submission_id", "exercise", "status", "points", "max_points", *questions, "message"])
            for row in rows:
                by_question = {q["question"]: q for q in row["questions"]}
                cells = []
                for question in questions:
                    q = by_question.get(question)
                    if q is None:
                        cells.append("")
                    else:
                        cells.append(unscored_label(q["points"], q["status"]) or f"{q['points']:g}")
                writer.writerow([row["submission_id"], exercise, row["status"], f"{row['points']:g}",
                                 f"{row['max_points']:g}", *cells, row["message"]])
        return len(rows)
