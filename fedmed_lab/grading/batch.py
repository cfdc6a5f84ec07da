"""Grade a batch of submissions: skip unchanged ones, run the rest in parallel, record each at once.

Workers are processes of one pool started once per batch; each submission
gets its own kernel inside a worker. The parent process only hashes files,
writes the gradebook and prints progress, so a result is safe in the
gradebook as soon as its submission finishes.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import nbformat

from fedmed_lab.exercises import read_spec
from fedmed_lab.grading.gradebook import Gradebook
from fedmed_lab.grading.runner import Limits
from fedmed_lab.grading.scoring import (
    DEFAULT_SEED,
    GRADER_VERSION,
    GradeJob,
    SubmissionResult,
    content_hash,
    grade_submission,
)


@dataclass
class BatchReport:
    """Outcome of a batch: results graded now, ids skipped as unchanged, status and score of every submission."""

    graded: list[SubmissionResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def submission_id(path: Path) -> str:
    """Return a submission's id: its file name without the extension."""
    return Path(path).stem


def find_duplicate_ids(paths: list[Path]) -> list[str]:
    """Return submission ids that more than one of ``paths`` would share."""
    counts = Counter(submission_id(p) for p in paths)
    return sorted(name for name, count in counts.items() if count > 1)


def collect_submissions(arguments: list[str | Path]) -> list[Path]:
    """Expand the submission arguments of a batch into notebook paths, a folder into its ``.ipynb`` files.

    Raises ValueError, with one line per problem, when an argument does not
    exist (an unexpanded shell pattern such as ``dir/*.ipynb`` included) or
    names a folder without any ``.ipynb`` file.
    """
    paths: list[Path] = []
    problems: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(path.glob("*.ipynb"))
            if not found:
                problems.append(f"no submissions found in {path} (it contains no .ipynb file)")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            problems.append(_missing_path_problem(path))
    if problems:
        raise ValueError("\n".join(problems))
    return paths


def _missing_path_problem(path: Path) -> str:
    problem = f"no such file or folder: {path}"
    if any(character in str(path) for character in "*?["):
        problem += " (the shell left this pattern unexpanded because no file matches it)"
    return problem


def source_hash(solution_path: Path, seed: int) -> str:
    """Hash what a grade depends on besides the submission: the solution, the seed and the grader version."""
    digest = hashlib.sha256(Path(solution_path).read_bytes())
    digest.update(f"\nseed={seed}\n{GRADER_VERSION}".encode())
    return digest.hexdigest()


def _read_hash(path: Path) -> str:
    try:
        return content_hash(Path(path).read_bytes())
    except OSError:
        return ""


def _progress(done: int, total: int, failures: int, result: SubmissionResult, stream) -> None:
    score = f"{result.points:g}/{result.max_points:g}"
    print(f"[{done}/{total}] {result.submission_id}: {result.status} {score} "
          f"({total - done} remaining, {failures} not ok)", file=stream, flush=True)


def grade_batch(exercise: str, solution_path: Path, submissions: list[Path], gradebook_path: Path, *,
                limits: Limits = Limits(), jobs: int = 1, seed: int = DEFAULT_SEED, force: bool = False,
                feedback_dir: Path | None = None, progress: TextIO | None = None) -> BatchReport:
    """Grade ``submissions`` of ``exercise`` into the gradebook and return what happened.

    ``progress``, when given, receives one line per finished submission.

    Raises ValueError when two submissions share an id (the file name
    without extension), because the gradebook keeps one row per id, and
    ExerciseFormatError (a ValueError) when the solution notebook is invalid.
    Raises ValueError, naming each one, when a submission path does not
    exist; nothing is written to the gradebook then. A file that exists
    but cannot be read as a notebook is graded with status ``invalid-file``.
    """
    read_spec(nbformat.read(solution_path, as_version=4))
    duplicates = find_duplicate_ids(submissions)
    if duplicates:
        raise ValueError(f"submissions must have distinct file names; more than one file is named "
                         f"{', '.join(duplicates)}")
    missing = [Path(path) for path in submissions if not Path(path).exists()]
    if missing:
        raise ValueError("\n".join(_missing_path_problem(path) for path in missing))
    source = source_hash(solution_path, seed)
    report = BatchReport()
    pending: list[GradeJob] = []
    with Gradebook(gradebook_path) as book:
        for path in submissions:
            digest = _read_hash(path)
            sid = submission_id(path)
            if not force and digest and book.is_graded(exercise, sid, digest, source):
                report.skipped.append(sid)
                continue
            pending.append(GradeJob(exercise, str(solution_path), str(path), sid, digest, limits, seed,
                                    str(feedback_dir) if feedback_dir else None))
        if report.skipped and progress:
            print(f"skipped {len(report.skipped)} unchanged submission(s) already in the gradebook "
                  f"(pass --force to grade them again)", file=progress, flush=True)
        _run_jobs(pending, book, source, report, jobs, progress)
        for row in book.rows(exercise):
            if row["submission_id"] in {submission_id(p) for p in submissions}:
                report.statuses[row["submission_id"]] = row["status"]
                fraction = row["points"] / row["max_points"] if row["max_points"] else 0.0
                report.scores[row["submission_id"]] = fraction
    return report


def _run_jobs(pending: list[GradeJob], book: Gradebook, source: str, report: BatchReport, jobs: int,
              progress) -> None:
    total = len(pending)
    failures = 0
    attempts: Counter[str] = Counter()
    queue = list(pending)
    while queue:
        # A pool broken by a crashed worker is replaced; a submission that
        # breaks it twice is recorded as a grader error.
        with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(queue)))) as pool:
            futures = {pool.submit(grade_submission, job): job for job in queue}
            queue = []
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    job = futures.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        attempts[job.submission_id] += 1
                        if attempts[job.submission_id] < 2:
                            queue.append(job)
                            continue
                        result = SubmissionResult(job.submission_id, job.exercise, job.content_hash,
                                                  "grader-error", "the grading worker crashed twice on this "
                                                  "submission")
                    book.record(result, source)
                    report.graded.append(result)
                    failures += result.status != "ok"
                    if progress:
                        _progress(len(report.graded), total, failures, result, progress)


def format_summary(report: BatchReport) -> str:
    """Return the end-of-batch summary: count per status and the distribution of autograded scores."""
    lines = [f"graded {len(report.graded)}, skipped {len(report.skipped)} unchanged; "
             f"{len(report.statuses)} submission(s) in this batch"]
    counts = Counter(report.statuses.values())
    lines.append("status: " + (", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
                               or "no submissions"))
    scores = sorted(report.scores.values())
    if scores:
        lines.append(f"autograded score: min {scores[0]:.0%}, median {statistics.median(scores):.0%}, "
                     f"max {scores[-1]:.0%}")
        bins = Counter(min(int(score * 10), 9) for score in scores)
        lines.append("distribution: " + ", ".join(
            f"{10 * b}-{10 * b + 9 if b < 9 else 100}%: {bins[b]}" for b in range(10) if bins[b]))
    return "\n".join(lines)
