"""Time `make course` several times and report wall and CPU seconds with their medians.

CPU seconds are user + system time of `make` and every process it waits for
(kernels included), from getrusage(RUSAGE_CHILDREN).

Usage: python benchmarks/bench_course.py [--runs 5]   (run `make install` first)
"""

import argparse
import resource
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_once() -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["make", "-s", "course"], cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="number of timed runs (default: 5)")
    args = parser.parse_args()
    walls, cpus = [], []
    for run in range(1, args.runs + 1):
        wall, cpu = time_once()
        walls.append(wall)
        cpus.append(cpu)
        print(f"run {run}: wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)
    print(f"median of {args.runs} runs: wall {statistics.median(walls):.2f} s, cpu {statistics.median(cpus):.2f} s")


if __name__ == "__main__":
    main()
