"""Seconds per round: the course simulator against Flower's runtimes, on the capstone task.

Measures, in one run:

- the course's start-up: a fresh Python process from its first import to
  the end of the first round (data generation included);
- the course simulator's seconds per round (median over repeats), and
  the same arithmetic in bare NumPy as a floor;
- Flower's simulation runtime: wall time of the whole child process
  (mostly Ray's start) and seconds per round from the server's clock,
  median over rounds 2..T (round 1 also starts the Ray actor);
- optionally Flower's deployment runtime (``--deployment-rounds``, 0 skips it);
- the largest parameter difference of each Flower run from the course model.

Usage::

    .venv/bin/python benchmarks/bench_flower.py --rounds 10 --deployment-rounds 3
    .venv/bin/python benchmarks/bench_flower.py --cohort-scale 0.05 --deployment-rounds 0

The second run shrinks every hospital to 5 % of its patients (926 in
all), where the course's round costs little more than its Python overhead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fedmed_lab.flower_app.deployment import LocalDeployment
from fedmed_lab.flower_app.runtime import run_simulation_process
from fedmed_lab.flower_app.server_app import read_result, read_round_seconds
from fedmed_lab.flower_app.task import CapstoneTask, make_cohorts, make_hospitals, run_course_simulator

STARTUP_CODE = """
import sys, time
start = time.perf_counter()
from fedmed_lab.flower_app.task import CapstoneTask, run_course_simulator
run_course_simulator(CapstoneTask(num_rounds=1, cohort_scale=float(sys.argv[1])))
print(time.perf_counter() - start)
"""


def course_startup_seconds(repeats: int, cohort_scale: float) -> list[float]:
    """Time a fresh interpreter from the first import to the end of round 1, ``repeats`` times."""
    command = [sys.executable, "-c", STARTUP_CODE, str(cohort_scale)]
    return [float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]


def course_seconds_per_round(task: CapstoneTask, repeats: int) -> list[float]:
    """Time whole course runs of ``task.num_rounds`` rounds (data drawn beforehand); return seconds per round."""
    hospitals = make_hospitals(task)
    per_round = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_course_simulator(task, hospitals)
        per_round.append((time.perf_counter() - start) / task.num_rounds)
    return per_round


def plain_numpy_rounds(task: CapstoneTask, repeats: int) -> tuple[list[float], np.ndarray]:
    """Run the same rounds as bare NumPy arithmetic on the pooled site arrays; return seconds per round and w_T.

    This is the floor under any runtime: the two gradient steps per site and
    the weighted average, without the course's validation, copies and records.
    """
    sites = [(c.X_train, c.y_train) for c in make_cohorts(task)]
    sizes = np.array([X.shape[0] for X, _ in sites], dtype=float)
    weights = sizes / sizes.sum()
    per_round = []
    for _ in range(repeats):
        start = time.perf_counter()
        w = np.zeros(sites[0][0].shape[1] + 1)
        for _ in range(task.num_rounds):
            local = []
            for X, y in sites:
                v = w.copy()
                for _ in range(task.epochs):
                    p = 1.0 / (1.0 + np.exp(-(X @ v[:-1] + v[-1])))
                    error = p - y
                    gradient = np.append(X.T @ error / X.shape[0] + task.l2 * v[:-1], error.mean())
                    v = v - task.learning_rate * gradient
                local.append(v)
            w = weights @ np.array(local)
        per_round.append((time.perf_counter() - start) / task.num_rounds)
    return per_round, w


def course_rounds(task: CapstoneTask) -> np.ndarray:
    history = run_course_simulator(task)
    return np.array([history.initial_parameters] + [r.parameters for r in history.rounds])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the simulation-runtime run")
    parser.add_argument("--deployment-rounds", type=int, default=3, help="rounds in the deployment runtime (0 skips)")
    parser.add_argument("--cohort-scale", type=float, default=1.0,
                        help="factor on every hospital's patient count (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each course measurement")
    parser.add_argument("--work-dir", type=Path, default=Path("build/flower/bench"), help="scratch folder")
    parser.add_argument("--json", type=Path, default=Path("build/flower/bench/results.json"), help="results file")
    args = parser.parse_args(argv)

    task = CapstoneTask(num_rounds=args.rounds, cohort_scale=args.cohort_scale)
    num_train = sum(h.num_examples for h in make_hospitals(task))
    results: dict[str, object] = {"rounds": args.rounds, "deployment_rounds": args.deployment_rounds,
                                  "cohort_scale": args.cohort_scale, "training_records": num_train}

    results["course_startup_s"] = course_startup_seconds(args.repeats, args.cohort_scale)
    results["course_round_s"] = course_seconds_per_round(task, args.repeats)
    results["numpy_round_s"], numpy_final = plain_numpy_rounds(task, args.repeats)
    results["numpy_max_diff"] = float(np.max(np.abs(numpy_final - course_rounds(task)[-1])))

    start = time.perf_counter()
    simulation_file = run_simulation_process(task, args.work_dir / "simulation")
    results["simulation_wall_s"] = time.perf_counter() - start
    results["simulation_round_s"] = read_round_seconds(simulation_file).tolist()
    results["simulation_max_diff"] = float(np.max(np.abs(read_result(simulation_file) - course_rounds(task))))

    if args.deployment_rounds > 0:
        deployment_task = CapstoneTask(num_rounds=args.deployment_rounds, cohort_scale=args.cohort_scale)
        start = time.perf_counter()
        with LocalDeployment(deployment_task, args.work_dir / "deployment") as deployment:
            deployment_file = deployment.run(timeout=60.0 * args.deployment_rounds + 120.0)
        results["deployment_wall_s"] = time.perf_counter() - start
        results["deployment_round_s"] = read_round_seconds(deployment_file).tolist()
        results["deployment_max_diff"] = float(
            np.max(np.abs(read_result(deployment_file) - course_rounds(deployment_task))))

    course_round = float(np.median(results["course_round_s"]))
    simulation_round = float(np.median(results["simulation_round_s"][1:]))
    print(f"task: 5 hospitals, {num_train:,} training records, cohort scale {args.cohort_scale}")
    print(f"course start-up, import to first round: median {np.median(results['course_startup_s']):.3f} s")
    numpy_round = float(np.median(results["numpy_round_s"]))
    print(f"course simulator: median {course_round * 1e6:.0f} us per round")
    print(f"plain NumPy, same arithmetic: median {numpy_round * 1e6:.0f} us per round, "
          f"max parameter difference from the course {results['numpy_max_diff']:.1e}")
    print(f"Flower simulation runtime: {results['simulation_wall_s']:.1f} s wall for {args.rounds} rounds, "
          f"median {simulation_round:.3f} s per round (rounds 2..{args.rounds}), "
          f"max parameter difference {results['simulation_max_diff']:.1e}")
    print(f"ratio, simulation runtime / course per round: {simulation_round / course_round:,.0f}x; "
          f"/ plain NumPy: {simulation_round / numpy_round:,.0f}x")
    if args.deployment_rounds > 0:
        deployment_round = float(np.median(results["deployment_round_s"]))
        print(f"Flower deployment runtime: {results['deployment_wall_s']:.1f} s wall for {args.deployment_rounds} "
              f"rounds, median {deployment_round:.2f} s per round, "
              f"max parameter difference {results['deployment_max_diff']:.1e}")
        print(f"ratio, deployment runtime / course per round: {deployment_round / course_round:,.0f}x")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
