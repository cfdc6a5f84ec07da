"""Benchmark one secure-aggregation round against the number of sites K, complete against sparse graph.

Run from the repository root:

    .venv/bin/python benchmarks/bench_secagg.py

It prints a Markdown table: per K and graph, the degree, bytes per site, total
bytes, median site CPU seconds per site and median coordinator CPU seconds
over ``--repeats`` rounds, then the growth ratios between the smallest and
largest K. Everything runs in this one process, so seconds are CPU time of
the simulation on this machine, with no network time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np

from fedmed_lab.secagg_experiments import measure_cost


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200, 500],
                        help="numbers of sites K to measure (default: %(default)s)")
    parser.add_argument("--vector-length", type=int, default=100, help="length p of each update (default: 100)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per K and graph; medians are reported (default: 3)")
    parser.add_argument("--dropout-fraction", type=float, default=0.05,
                        help="fraction of sites that drop before sending their input (default: 0.05)")
    parser.add_argument("--seed", type=int, default=2017, help="seed of the numpy generator for data, graph and drops")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}; "
          f"p = {args.vector_length}, t = ceil(2K/3), {args.dropout_fraction:.0%} of sites drop before upload, "
          f"median of {args.repeats} rounds\n")
    print("| K | graph | degree | bytes per site | total MB | site CPU s per site | coordinator CPU s | rounds aborted |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    medians = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    for num_sites in args.sizes:
        for graph in ("complete", "harary"):
            records = [measure_cost(num_sites, graph=graph, vector_length=args.vector_length, rng=rng,
                                    dropout_fraction=args.dropout_fraction) for _ in range(args.repeats)]
            finished = [r for r in records if not r.aborted]
            aborted = len(records) - len(finished)
            if not finished:
                print(f"| {num_sites} | {graph} | {records[0].degree} | - | - | - | - | {aborted} |")
                continue
            site_seconds = statistics.median(r.site_seconds_per_site for r in finished)
            coordinator_seconds = statistics.median(r.coordinator_seconds for r in finished)
            bytes_per_site = statistics.median(r.bytes_per_site for r in finished)
            total_bytes = statistics.median(r.bytes_total for r in finished)
            medians[num_sites, graph] = (bytes_per_site, site_seconds, coordinator_seconds)
            print(f"| {num_sites} | {graph} | {finished[0].degree} | {bytes_per_site:,.0f} | {total_bytes / 1e6:.3f} | "
                  f"{site_seconds:.4f} | {coordinator_seconds:.4f} | {aborted} |", flush=True)

    low, high = min(args.sizes), max(args.sizes)
    print(f"\ngrowth from K={low} to K={high} ({high / low:.0f}x sites):")
    for graph in ("complete", "harary"):
        if (low, graph) in medians and (high, graph) in medians:
            ratios = [b / a for a, b in zip(medians[low, graph], medians[high, graph])]
            print(f"- {graph}: bytes per site x{ratios[0]:.1f}, site seconds per site x{ratios[1]:.1f}, "
                  f"coordinator seconds x{ratios[2]:.1f}")
    print(f"\nwall time {time.perf_counter() - start:.0f} s, CPU time {time.process_time() - cpu_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
