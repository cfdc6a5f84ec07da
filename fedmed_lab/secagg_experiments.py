"""Experiments on secure aggregation for chapter 7: dropout recovery, uniformity of masks, cost against K.

Each function runs :func:`fedmed_lab.secagg.run_secure_aggregation` on
synthetic updates drawn from an ``rng`` and returns plain numbers, so the
notebook's widget and the benchmark script share one tested computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_non_negative_int, check_positive_int, check_probability, check_rng
from fedmed_lab.secagg import SecureAggregationAborted, run_secure_aggregation
from fedmed_lab.secagg_crypto import FixedPointCodec
from fedmed_lab.secagg_graphs import complete_graph, random_harary_graph


def uniformity_statistics(values, *, modulus_bits: int) -> tuple[float, float]:
    """Compare residues with the uniform distribution on [0, R), R = 2^modulus_bits.

    Returns
    -------
    (mean ratio, variance ratio) : tuple of float
        mean / (R/2) and variance / (R^2/12); both are 1 for uniform values.
        Their standard errors for n values are about 1.15/sqrt(n) and 0.89/sqrt(n).
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size < 2:
        raise ValueError(f"need at least 2 values to estimate a variance, got {values.size}")
    modulus = float(2**modulus_bits)
    return float(values.mean() / (modulus / 2)), float(values.var() / (modulus**2 / 12))


def synthetic_federation(num_sites: int, vector_length: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """Draw K updates uniform on [-1, 1]^p and site sizes log-uniform between 20 and 20,000 patients.

    Draws, in order: the sizes, then the updates.
    """
    num_sites = check_positive_int(num_sites, "num_sites")
    vector_length = check_positive_int(vector_length, "vector_length")
    check_rng(rng)
    sizes = np.rint(np.exp(rng.uniform(np.log(20), np.log(20_000), size=num_sites))).astype(int)
    updates = [rng.uniform(-1.0, 1.0, size=vector_length) for _ in range(num_sites)]
    return updates, [int(n) for n in sizes]


@dataclass(frozen=True)
class DropoutOutcome:
    """Result of one secure round with dropped sites, compared with plain FedAvg of the included sites."""

    num_sites: int
    threshold: int
    dropped_before_upload: tuple[str, ...]
    dropped_after_upload: tuple[str, ...]
    aborted: bool
    message: str
    max_abs_error: float
    resolution: float
    masked_values: np.ndarray


def dropout_experiment(num_sites: int, num_dropped: int, *, threshold: int, rng: np.random.Generator,
                       vector_length: int = 8, modulus_bits: int = 32, key_seed: bytes | None = None) -> DropoutOutcome:
    """Drop ``num_dropped`` random sites and securely aggregate the rest.

    Each dropped site goes silent either before sending its masked input or
    right after it, with equal probability. The secure weighted average is
    compared with ``sum_k n_k x_k / N`` over the included sites in floating point.

    Randomness from ``rng``, in order: the federation (see :func:`synthetic_federation`),
    the dropped sites, and before/after for each of them.

    Returns
    -------
    DropoutOutcome
        ``aborted`` is True, with the coordinator's message, when fewer than t sites remain;
        ``max_abs_error`` is then NaN.
    """
    num_sites = check_positive_int(num_sites, "num_sites")
    num_dropped = check_non_negative_int(num_dropped, "num_dropped")
    if num_dropped > num_sites:
        raise ValueError(f"num_dropped={num_dropped} exceeds num_sites={num_sites}")
    updates, sizes = synthetic_federation(num_sites, vector_length, rng)
    site_ids = [f"site_{k}" for k in range(num_sites)]
    dropped = sorted(int(k) for k in rng.choice(num_sites, size=num_dropped, replace=False))
    before_upload = rng.random(num_dropped) < 0.5
    before = tuple(site_ids[k] for k, b in zip(dropped, before_upload) if b)
    after = tuple(site_ids[k] for k, b in zip(dropped, before_upload) if not b)
    codec = FixedPointCodec.for_federation(num_sites=num_sites, max_weight=max(sizes), clip=1.0,
                                           modulus_bits=modulus_bits)
    try:
        result = run_secure_aggregation(updates, sizes, threshold=threshold, codec=codec, site_ids=site_ids,
                                        dropped_before_upload=before, dropped_after_upload=after, key_seed=key_seed)
    except SecureAggregationAborted as error:
        return DropoutOutcome(num_sites, threshold, before, after, True, str(error), math.nan, codec.resolution,
                              np.zeros(0, dtype=np.uint64))
    included = [k for k in range(num_sites) if site_ids[k] not in before]
    reference = sum(sizes[k] * updates[k] for k in included) / sum(sizes[k] for k in included)
    error = float(np.max(np.abs(result.weighted_average - reference)))
    masked = np.concatenate(list(result.masked_inputs.values()))
    message = (f"{len(result.included)} of {num_sites} inputs summed; "
               f"{len(result.reconstructed)} secrets rebuilt from shares")
    return DropoutOutcome(num_sites, threshold, before, after, False, message, error, codec.resolution, masked)


@dataclass(frozen=True)
class CostRecord:
    """Cost of one secure round: K, graph, degree, bytes and seconds (simulated, one process)."""

    num_sites: int
    graph: str
    degree: int
    vector_length: int
    bytes_total: int
    bytes_per_site: float
    site_seconds_per_site: float
    coordinator_seconds: float
    aborted: bool = False


def measure_cost(num_sites: int, *, graph: str, vector_length: int, rng: np.random.Generator,
                 threshold_fraction: float = 2 / 3, dropout_fraction: float = 0.0,
                 key_seed: bytes | None = None) -> CostRecord:
    """Time one secure round for K sites on the ``"complete"`` or ``"harary"`` (sparse) graph.

    t = ceil(threshold_fraction * K). ``dropout_fraction`` of the sites drop
    before sending their input, so the coordinator pays for rebuilding their
    mask keys. Seconds are CPU time of the simulation on this machine: the
    sites' work is summed and divided by K, the coordinator's is its total.
    Bytes count keys, ciphertexts, masked vectors, ids and shares, not the model broadcast.

    Randomness from ``rng``, in order: the federation, the graph, the dropped sites.
    """
    num_sites = check_positive_int(num_sites, "num_sites")
    check_probability(dropout_fraction, "dropout_fraction")
    updates, sizes = synthetic_federation(num_sites, vector_length, rng)
    if graph == "complete":
        neighbourhoods = complete_graph(num_sites)
    elif graph == "harary":
        neighbourhoods = random_harary_graph(num_sites, rng)
    else:
        raise ValueError(f"graph must be 'complete' or 'harary', got {graph!r}")
    threshold = max(1, math.ceil(threshold_fraction * num_sites))
    num_dropped = int(round(dropout_fraction * num_sites))
    dropped = [f"site_{int(k)}" for k in rng.choice(num_sites, size=num_dropped, replace=False)]
    codec = FixedPointCodec.for_federation(num_sites=num_sites, max_weight=max(sizes), clip=1.0, modulus_bits=32)
    degree = len(neighbourhoods[0])
    try:
        result = run_secure_aggregation(updates, sizes, threshold=threshold, codec=codec, graph=neighbourhoods,
                                        dropped_before_upload=dropped, key_seed=key_seed)
    except SecureAggregationAborted:
        return CostRecord(num_sites, graph, degree, vector_length, 0, math.nan, math.nan, math.nan, aborted=True)
    cost = result.cost
    return CostRecord(num_sites, graph, degree, vector_length, cost.total_bytes, cost.total_bytes / num_sites,
                      cost.total_site_seconds / num_sites, cost.total_coordinator_seconds)
