"""The ``fedmed-lab`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedmed_lab import course
from fedmed_lab.kernel import KERNEL_NAME, install_kernel


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _cmd_install_kernel(args: argparse.Namespace) -> int:
    path = install_kernel(args.prefix)
    print(f"installed kernel {KERNEL_NAME!r} in {path}")
    return 0


def _cmd_run_course(args: argparse.Namespace) -> int:
    notebooks = [Path(p) for p in args.notebooks] or course.find_chapter_notebooks(Path(args.notebook_dir))
    if not notebooks:
        print(f"no chapter notebooks found in {args.notebook_dir}", file=sys.stderr)
        return 2
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        print(f"notebook not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = course.run_course(notebooks, Path(args.output_dir), jobs=args.jobs, cell_timeout=args.cell_timeout)
    print(course.format_results(results))
    failed = [r for r in results if r.status != "ok"]
    print(f"\n{len(results) - len(failed)} of {len(results)} notebooks ran; executed copies are in {args.output_dir}/")
    return 1 if failed else 0


def _cmd_execute_notebooks(args: argparse.Namespace) -> int:
    if not args.in_place:
        print("execute-notebooks overwrites the notebooks it runs; pass --in-place to confirm", file=sys.stderr)
        return 2
    for name in args.notebooks:
        print(f"executing {name}", flush=True)
        course.execute_in_place(Path(name), cell_timeout=args.cell_timeout)
    return 0


def _cmd_build_exercises(args: argparse.Namespace) -> int:
    from fedmed_lab import exercises

    try:
        changed = exercises.build_all(Path(args.solutions_dir), Path(args.exercises_dir), check=args.check)
    except exercises.ExerciseFormatError as error:
        print(f"invalid solution notebook: {error}", file=sys.stderr)
        return 2
    if args.check:
        if changed:
            print("out of date (run 'fedmed-lab build-exercises'): " + ", ".join(changed), file=sys.stderr)
            return 1
        print(f"exercises in {args.exercises_dir}/ are up to date")
        return 0
    for name in changed:
        print(f"updated {name}")
    print(f"{len(changed)} exercise file(s) changed in {args.exercises_dir}/")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from fedmed_lab import grading

    solution = Path(args.solutions_dir) / f"{args.exercise}.ipynb"
    if not solution.is_file():
        print(f"exercise {args.exercise!r} not found: no {solution}", file=sys.stderr)
        return 2
    try:
        submissions = grading.collect_submissions(args.submissions)
    except ValueError as error:
        for problem in str(error).splitlines():
            print(f"cannot grade: {problem}", file=sys.stderr)
        print("nothing was graded; check the submission paths", file=sys.stderr)
        return 2
    limits = grading.Limits(cell_timeout=args.cell_timeout, total_timeout=args.timeout,
                            memory_bytes=args.memory_limit * 1024**2, output_bytes=args.output_limit * 1024)
    gradebook = Path(args.gradebook)
    try:
        report = grading.grade_batch(args.exercise, solution, submissions, gradebook, limits=limits,
                                     jobs=args.jobs, seed=args.seed, force=args.force,
                                     feedback_dir=Path(args.feedback) if args.feedback else None,
                                     progress=sys.stderr)
    except ValueError as error:
        for problem in str(error).splitlines():
            print(f"cannot grade: {problem}", file=sys.stderr)
        return 2
    print(grading.format_summary(report))
    print(f"gradebook: {gradebook}")
    if args.csv:
        with grading.Gradebook(gradebook) as book:
            count = book.export_csv(args.exercise, Path(args.csv))
        print(f"CSV with {count} row(s): {args.csv}")
    if args.feedback:
        print(f"feedback notebooks: {args.feedback}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedmed-lab", description="Run and check the fedmed-lab course.")
    commands = parser.add_subparsers(dest="command", required=True)

    kernel = commands.add_parser("install-kernel", help=f"register the {KERNEL_NAME!r} Jupyter kernel")
    kernel.add_argument("--prefix", help="environment prefix to install into (default: the running Python's)")
    kernel.set_defaults(handler=_cmd_install_kernel)

    run = commands.add_parser("run-course", help="execute every chapter notebook and print a results table")
    run.add_argument("notebooks", nargs="*", help="notebooks to run (default: every numbered notebook)")
    run.add_argument("--notebook-dir", default="notebooks", help="folder of chapter notebooks (default: notebooks)")
    run.add_argument("--output-dir", default="build/course", help="where executed copies go (default: build/course)")
    run.add_argument("--jobs", type=_positive_int, help="notebooks run at once (default: one per core)")
    run.add_argument("--cell-timeout", type=_positive_int, default=course.DEFAULT_CELL_TIMEOUT,
                     help="seconds one cell may run before it fails (default: %(default)s)")
    run.set_defaults(handler=_cmd_run_course)

    execute = commands.add_parser("execute-notebooks", help="re-execute notebooks and store their outputs in place")
    execute.add_argument("notebooks", nargs="+", help="notebook files to re-execute")
    execute.add_argument("--in-place", action="store_true", help="overwrite each notebook with its executed version")
    execute.add_argument("--cell-timeout", type=_positive_int, default=course.DEFAULT_CELL_TIMEOUT,
                         help="seconds one cell may run before it fails (default: %(default)s)")
    execute.set_defaults(handler=_cmd_execute_notebooks)

    build = commands.add_parser("build-exercises", help="generate the student exercises from the solution notebooks")
    build.add_argument("--solutions-dir", default="solutions", help="folder of solution notebooks (default: solutions)")
    build.add_argument("--exercises-dir", default="exercises", help="folder to write exercises to (default: exercises)")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 when an exercise is out of date")
    build.set_defaults(handler=_cmd_build_exercises)

    grade = commands.add_parser("grade", help="grade student submissions of one exercise into a gradebook")
    grade.add_argument("exercise", help="exercise file stem, for example ex01_weighted_aggregation")
    grade.add_argument("submissions", nargs="+", help="submitted .ipynb files, or folders of them")
    grade.add_argument("--jobs", type=_positive_int, default=1, help="submissions graded at once (default: 1)")
    grade.add_argument("--cell-timeout", type=_positive_int, default=30,
                       help="seconds one cell may run before it is interrupted (default: %(default)s)")
    grade.add_argument("--timeout", type=_positive_int, default=120,
                       help="seconds one submission may run in total (default: %(default)s)")
    grade.add_argument("--memory-limit", type=_positive_int, default=2048,
                       help="address-space limit of each kernel in MiB (default: %(default)s)")
    grade.add_argument("--output-limit", type=_positive_int, default=1024,
                       help="output kept per submission in KiB; more ends with status output-limit "
                            "(default: %(default)s)")
    grade.add_argument("--seed", type=int, default=2024, help="seed injected into every submission "
                       "(default: %(default)s)")
    grade.add_argument("--gradebook", default="grades/gradebook.sqlite",
                       help="SQLite gradebook file (default: %(default)s)")
    grade.add_argument("--csv", help="also export the exercise's grades to this CSV file")
    grade.add_argument("--feedback", help="write one feedback notebook per submission into this folder")
    grade.add_argument("--solutions-dir", default="solutions", help="folder of solution notebooks "
                       "(default: solutions)")
    grade.add_argument("--force", action="store_true", help="grade again even when a submission is unchanged")
    grade.set_defaults(handler=_cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
