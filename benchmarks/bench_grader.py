"""Measure grading throughput: correct submissions of one exercise per minute.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_grader.py --submissions 40 --jobs 2 --batches 3

Each batch copies the solution notebook to N submission files, grades them
into a fresh gradebook with ``--force`` semantics (nothing is skipped) and
times the whole batch, pool start and kernel starts included. It also sums
the CPU seconds of the grader, its workers and their kernels (the pool and
the kernels are reaped inside the batch, so ``RUSAGE_CHILDREN`` counts
them). CPU time does not depend on other jobs sharing the machine, so
``cores * 60 / CPU seconds per submission`` is the throughput of an
otherwise idle machine. The script prints each batch and the medians, and
exits 1 if any submission did not earn full points.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fedmed_lab.grading import Limits, grade_batch

ROOT = Path(__file__).resolve().parent.parent


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_batch(exercise: str, count: int, jobs: int) -> tuple[float, float, int]:
    """Grade ``count`` copies of the solution; return (wall seconds, CPU seconds, submissions with full points)."""
    solution = ROOT / "solutions" / f"{exercise}.ipynb"
    with tempfile.TemporaryDirectory(prefix="fedmed-bench-") as scratch:
        paths = []
        for number in range(count):
            path = Path(scratch) / f"student{number:03d}.ipynb"
            path.write_bytes(solution.read_bytes())
            paths.append(path)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        report = grade_batch(exercise, solution, paths, Path(scratch) / "gradebook.sqlite", limits=Limits(),
                             jobs=jobs, force=True, progress=None)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    full = sum(1 for result in report.graded if result.points == result.max_points and result.status == "ok")
    return seconds, cpu, full


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="ex01_weighted_aggregation", help="exercise file stem")
    parser.add_argument("--submissions", type=int, default=40, help="submissions per batch (default: 40)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs (default: 2)")
    parser.add_argument("--batches", type=int, default=3, help="batches to time (default: 3)")
    args = parser.parse_args()

    rates, per_submission, cpu_per_submission, all_full = [], [], [], True
    print(f"{args.submissions} correct submissions of {args.exercise}, --jobs {args.jobs}, "
          f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    for batch in range(1, args.batches + 1):
        seconds, cpu, full = run_batch(args.exercise, args.submissions, args.jobs)
        rate = args.submissions / seconds * 60
        rates.append(rate)
        per_submission.append(seconds / args.submissions)
        cpu_per_submission.append(cpu / args.submissions)
        all_full &= full == args.submissions
        print(f"batch {batch}: {seconds:.1f} s wall, {cpu:.1f} s CPU, {rate:.1f} submissions/minute, "
              f"{full}/{args.submissions} full points, load average {os.getloadavg()[0]:.2f}")
    cpu_median = statistics.median(cpu_per_submission)
    print(f"median: {statistics.median(rates):.1f} submissions/minute, "
          f"{statistics.median(per_submission):.2f} s wall and {cpu_median:.2f} s CPU per submission; "
          f"CPU-bound limit on {args.jobs} idle cores: {args.jobs * 60 / cpu_median:.0f} submissions/minute")
    return 0 if all_full else 1


if __name__ == "__main__":
    sys.exit(main())
