"""Neighbourhood graphs for secure aggregation: all pairs, or a sparse random Harary graph.

The complete graph is the original protocol of Bonawitz et al. (CCS 2017).
The sparse graph follows SecAgg+ (Bell et al., "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020, IACR ePrint
2020/704): each site masks and shares only with its neighbours on a
circulant graph over a random permutation of the sites.
"""

from __future__ import annotations

import math

import numpy as np

from fedmed_lab._checks import check_positive_int, check_rng


def complete_graph(num_sites: int) -> list[frozenset[int]]:
    """Return the all-pairs graph of the original protocol: every site neighbours every other."""
    num_sites = check_positive_int(num_sites, "num_sites")
    everyone = frozenset(range(num_sites))
    return [everyone - {u} for u in range(num_sites)]


def harary_degree(num_sites: int) -> int:
    """Return the sparse-graph degree: the smallest even number >= log2 K, at most K - 1."""
    num_sites = check_positive_int(num_sites, "num_sites")
    if num_sites == 1:
        return 0
    degree = 2 * math.ceil(math.log2(num_sites) / 2)
    return min(max(degree, 2), num_sites - 1)


def random_harary_graph(num_sites: int, rng: np.random.Generator, *, degree: int | None = None) -> list[frozenset[int]]:
    """Return a random Harary graph: a circulant graph of even degree on randomly permuted sites.

    Each site in the random cyclic order is joined to the ``degree / 2`` sites
    before and after it, so the graph is ``degree``-regular and connected.

    Parameters
    ----------
    num_sites : int
        K.
    rng : numpy.random.Generator
        Draws the permutation.
    degree : int, optional
        Even number of neighbours (default :func:`harary_degree`); K - 1 gives the complete graph.
    """
    num_sites = check_positive_int(num_sites, "num_sites")
    check_rng(rng)
    degree = harary_degree(num_sites) if degree is None else degree
    if degree == num_sites - 1:
        return complete_graph(num_sites)
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 2 or degree % 2 or degree >= num_sites:
        raise ValueError(f"degree must be an even integer in [2, K-1] or K-1 itself, got {degree!r} for K={num_sites}")
    order = rng.permutation(num_sites)
    neighbours: list[set[int]] = [set() for _ in range(num_sites)]
    for position, site in enumerate(order):
        for step in range(1, degree // 2 + 1):
            other = int(order[(position + step) % num_sites])
            neighbours[int(site)].add(other)
            neighbours[other].add(int(site))
    return [frozenset(n) for n in neighbours]


def check_threshold(threshold: object, num_sites: int) -> int:
    """Return t after checking 1 <= t <= K."""
    threshold = check_positive_int(threshold, "threshold")
    if threshold > num_sites:
        raise ValueError(f"threshold t={threshold} is larger than the number of sites K={num_sites}; choose t <= K")
    return threshold


def local_threshold(threshold: int, num_sites: int, num_holders: int) -> int:
    """Scale t to a neighbourhood: ceil(t * |holders| / K), the same fraction of the share holders.

    NOTE: with about log2 K neighbours a few dropped neighbours can leave a
    site's holders below this threshold, which aborts the round (one of three
    rounds at K = 200 and 5 % dropout in the benchmark). Bell et al. size the degree from the dropout
    rate and a target failure probability, which this simulation does not do.
    """
    return max(1, math.ceil(threshold * num_holders / num_sites))
