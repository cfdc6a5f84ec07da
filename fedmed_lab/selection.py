"""Client selection with unbiased (Horvitz-Thompson) reweighting.

Each round the coordinator samples sites independently (Poisson sampling):
site k is included with probability pi_k, so the number of sampled sites
varies around ``sum(pi_k)``. The target is the full-participation aggregate
``u = sum_k (n_k / N) u_k`` over all K sites. Two estimators use only the
sampled set S:

- Horvitz-Thompson: ``sum_{k in S} (n_k / N) u_k / pi_k``. Because
  ``E[1{k in S}] = pi_k``, its expectation is exactly ``u`` whenever every
  pi_k > 0 (Horvitz and Thompson's estimator for unequal-probability
  sampling, 1952). Its variance is
  ``sum_k (1 - pi_k) / pi_k * ||(n_k / N) u_k||^2``.
- Renormalized (FedAvg over responders): ``sum_{k in S} n_k u_k / sum_{k in S} n_k``.
  Lower variance, but biased whenever pi_k depends on the site.

Minimising the Horvitz-Thompson variance under ``sum(pi_k) = m`` with a
Lagrange multiplier gives ``pi_k`` proportional to ``||(n_k / N) u_k||``
(capped at 1): :func:`inclusion_probabilities` with ``scheme="importance"``
and the update norms as ``scores``.

The empty sample is a round with no update. Both estimators return the zero
vector for it, which is right when the vectors are updates (parameter
deltas or gradients): the global model stays where it is.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_positive_float, check_probability, check_site_sizes
from fedmed_lab.sites import ModelUpdate

SCHEMES = ("uniform", "size", "importance")
ESTIMATORS = ("horvitz_thompson", "renormalized")


def _check_sizes(site_sizes: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(site_sizes, Mapping) or not site_sizes:
        raise ValueError(f"site_sizes must be a non-empty mapping from site id to n_k, got {site_sizes!r}")
    sizes = check_site_sizes(list(site_sizes.values()), "site_sizes")
    return dict(zip(site_sizes, (int(n) for n in sizes)))


def _cap_at_one(raw: np.ndarray, expected_sites: float) -> np.ndarray:
    """Scale non-negative ``raw`` to sum to ``expected_sites``, capping entries at 1.

    Capped entries are fixed at 1 and the remaining mass is spread over the
    others in proportion to ``raw``, repeated until no entry exceeds 1.
    """
    probabilities = np.zeros_like(raw)
    capped = np.zeros(raw.size, dtype=bool)
    for _ in range(raw.size):
        free_mass = expected_sites - capped.sum()
        free_raw = raw[~capped].sum()
        probabilities[~capped] = raw[~capped] * free_mass / free_raw
        probabilities[capped] = 1.0
        over = probabilities > 1.0
        if not over.any():
            break
        capped |= over
    return np.minimum(probabilities, 1.0)


def inclusion_probabilities(site_sizes: Mapping[str, int], *, scheme: str, expected_sites: float,
                            scores: Mapping[str, float] | None = None) -> dict[str, float]:
    """Return the per-round inclusion probability pi_k of each site.

    Parameters
    ----------
    site_sizes : mapping of str to int
        ``{site_id: n_k}``, all positive.
    scheme : {"uniform", "size", "importance"}
        ``"uniform"``: pi_k = m / K. ``"size"``: pi_k proportional to n_k.
        ``"importance"``: pi_k proportional to ``n_k * scores[k]``, the
        variance-optimal choice when ``scores`` are the update norms.
    expected_sites : float
        m, the expected number of sampled sites, in (0, K]. Entries that would
        exceed 1 are capped and their excess goes to the other sites.
    scores : mapping of str to float, optional
        Required for ``"importance"``: a positive score per site.

    Returns
    -------
    dict of str to float
        pi_k in (0, 1] per site; the values sum to ``expected_sites``.

    Raises
    ------
    ValueError
        For an unknown scheme, m outside (0, K], missing or non-positive scores.
    """
    sizes = _check_sizes(site_sizes)
    num_sites = len(sizes)
    requested = expected_sites
    expected_sites = check_positive_float(expected_sites, "expected_sites")
    if expected_sites > num_sites:
        raise ValueError(
            f"expected_sites is {requested!r} but there are only {num_sites} sites; pass at most {num_sites}"
        )
    n = np.array(list(sizes.values()), dtype=float)

    if scheme == "uniform":
        raw = np.ones(num_sites)
    elif scheme == "size":
        raw = n
    elif scheme == "importance":
        if scores is None:
            raise ValueError("scheme 'importance' needs scores, for example each site's update norm")
        missing = [site for site in sizes if site not in scores]
        if missing:
            raise ValueError(f"scores has no entry for sites {missing}; pass one positive score per site")
        raw = n * np.array([check_positive_float(scores[site], f"scores[{site!r}]") for site in sizes])
    else:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")

    return dict(zip(sizes, (float(p) for p in _cap_at_one(raw, expected_sites))))


def _check_probabilities(probabilities: Mapping[str, float], sizes: Mapping[str, int]) -> dict[str, float]:
    missing = [site for site in sizes if site not in probabilities]
    if missing:
        raise ValueError(f"probabilities has no entry for sites {missing}; pass pi_k for every site")
    checked = {site: check_probability(probabilities[site], f"probabilities[{site!r}]") for site in sizes}
    zero = [site for site, p in checked.items() if p == 0.0]
    if zero:
        raise ValueError(
            f"sites {zero} have inclusion probability 0, so no reweighting can make the aggregate unbiased; "
            "give every site a probability above 0"
        )
    return checked


def horvitz_thompson_weights(sampled: Sequence[str], site_sizes: Mapping[str, int],
                             probabilities: Mapping[str, float]) -> dict[str, float]:
    """Return ``{site_id: (n_k / N) / pi_k}`` for the sampled sites, N summed over all sites.

    The weights need not sum to 1: in a round where the sampled sites hold
    more than their expected share they sum to more, and vice versa.
    """
    sizes = _check_sizes(site_sizes)
    pi = _check_probabilities(probabilities, sizes)
    unknown = [site for site in sampled if site not in sizes]
    if unknown:
        raise ValueError(f"sampled names unknown sites {unknown}; known sites are {list(sizes)}")
    total = sum(sizes.values())
    return {site: sizes[site] / total / pi[site] for site in sampled}


def estimate_aggregate(vectors: Mapping[str, np.ndarray], sampled: Sequence[str], site_sizes: Mapping[str, int],
                       probabilities: Mapping[str, float], *, estimator: str = "horvitz_thompson") -> np.ndarray:
    """Estimate the full-participation aggregate ``sum_k (n_k / N) u_k`` from the sampled sites.

    Parameters
    ----------
    vectors : mapping of str to array of shape (p,)
        u_k for at least every sampled site.
    sampled : sequence of str
        The sampled site ids; may be empty, which returns zeros.
    site_sizes, probabilities : mappings over all K sites
        n_k and pi_k.
    estimator : {"horvitz_thompson", "renormalized"}

    Returns
    -------
    ndarray of shape (p,)
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not vectors:
        raise ValueError("vectors is empty; pass u_k for at least one site so the dimension is known")
    weights = horvitz_thompson_weights(sampled, site_sizes, probabilities)
    dimension = np.asarray(next(iter(vectors.values())), dtype=float).shape
    if not sampled:
        return np.zeros(dimension)

    stacked = np.array([np.asarray(vectors[site], dtype=float) for site in sampled])
    if estimator == "horvitz_thompson":
        return np.array([weights[site] for site in sampled]) @ stacked
    n_sampled = np.array([site_sizes[site] for site in sampled], dtype=float)
    return (n_sampled / n_sampled.sum()) @ stacked


@dataclass(frozen=True)
class EstimatorMoments:
    """Exact mean, bias and variance of an aggregate estimator over every possible sample."""

    mean: np.ndarray
    target: np.ndarray
    bias: float
    variance: float
    empty_probability: float

    @property
    def mean_squared_error(self) -> float:
        return self.bias**2 + self.variance


def exact_moments(vectors: Mapping[str, np.ndarray], site_sizes: Mapping[str, int],
                  probabilities: Mapping[str, float], *, estimator: str = "horvitz_thompson") -> EstimatorMoments:
    """Compute an estimator's moments exactly by enumerating all 2^K samples.

    ``bias`` is ``||E[estimate] - target||`` and ``variance`` is
    ``E||estimate - E[estimate]||^2`` (the trace of the covariance), with
    the target the full-participation aggregate ``sum_k (n_k / N) u_k``.
    Meant for small K (each extra site doubles the work); K above 16 raises.
    """
    sizes = _check_sizes(site_sizes)
    pi = _check_probabilities(probabilities, sizes)
    if len(sizes) > 16:
        raise ValueError(f"exact enumeration over {len(sizes)} sites needs 2^{len(sizes)} samples; use K <= 16")
    sites = list(sizes)
    target = np.asarray(sum((sizes[s] / sum(sizes.values())) * np.asarray(vectors[s], dtype=float) for s in sites))

    estimates, chances = [], []
    for pattern in itertools.product((False, True), repeat=len(sites)):
        sampled = [site for site, included in zip(sites, pattern) if included]
        chance = float(np.prod([pi[s] if included else 1.0 - pi[s] for s, included in zip(sites, pattern)]))
        estimates.append(estimate_aggregate(vectors, sampled, sizes, pi, estimator=estimator))
        chances.append(chance)

    estimates_array = np.array(estimates)
    chances_array = np.array(chances)
    mean = chances_array @ estimates_array
    variance = float(chances_array @ np.sum((estimates_array - mean) ** 2, axis=1))
    return EstimatorMoments(mean=mean, target=target, bias=float(np.linalg.norm(mean - target)),
                            variance=variance, empty_probability=float(np.prod([1.0 - pi[s] for s in sites])))


class ClientSampling:
    """A participation model that samples each site independently with probability pi_k.

    Use it with :class:`HorvitzThompsonAggregator` built from the same
    probabilities for an unbiased round aggregate, or with plain FedAvg for
    the renormalized (biased, lower-variance) one.
    """

    def __init__(self, probabilities: Mapping[str, float]):
        if not isinstance(probabilities, Mapping) or not probabilities:
            raise ValueError(f"probabilities must be a non-empty mapping from site id to pi_k, got {probabilities!r}")
        self.probabilities = {s: check_probability(p, f"probabilities[{s!r}]") for s, p in probabilities.items()}

    def select(self, server_round: int, site_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        missing = [site for site in site_ids if site not in self.probabilities]
        if missing:
            raise ValueError(f"ClientSampling has no probability for sites {missing}; pass pi_k for every site")
        draws = rng.random(len(site_ids))
        return [site for site, u in zip(site_ids, draws) if u < self.probabilities[site]]

    def __repr__(self) -> str:
        return f"ClientSampling({self.probabilities})"


class HorvitzThompsonAggregator:
    """Round aggregation that reweights sampled sites by ``(n_k / N) / pi_k``.

    The new global parameters are ``w + sum_{k in S} (n_k / N) / pi_k (w_k - w)``
    with w the broadcast parameters, so the expected update equals the
    full-participation FedAvg update. The coordinator passes ``w`` because
    :attr:`needs_global_parameters` is true.
    """

    needs_global_parameters = True

    def __init__(self, site_sizes: Mapping[str, int], probabilities: Mapping[str, float]):
        self.site_sizes = _check_sizes(site_sizes)
        self.probabilities = _check_probabilities(probabilities, self.site_sizes)

    def __call__(self, updates: Sequence[ModelUpdate], *, global_parameters: np.ndarray) -> np.ndarray:
        for update in updates:
            if update.num_examples != self.site_sizes.get(update.site_id):
                raise ValueError(
                    f"site {update.site_id!r} reports n_k={update.num_examples} but the aggregator was built with "
                    f"{self.site_sizes.get(update.site_id)}; build it from the same site sizes"
                )
        deltas = {u.site_id: u.parameters - global_parameters for u in updates}
        step = estimate_aggregate(deltas, list(deltas), self.site_sizes, self.probabilities) if updates else 0.0
        return np.asarray(global_parameters, dtype=float) + step
