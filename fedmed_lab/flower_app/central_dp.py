"""Central differential privacy for one FedAvg round, and how Flower calibrates its noise.

The course's step (DP-FedAvg with a fixed denominator; McMahan, Ramage,
Talwar and Zhang, "Learning Differentially Private Recurrent Language
Models", ICLR 2018, arXiv:1710.06963):

1. each site's update ``delta_k = w_k - w`` is clipped to L2 norm ``C``;
2. Gaussian noise with standard deviation ``sigma * C`` is added to the sum
   of the clipped updates, where ``sigma`` is the noise multiplier;
3. the noisy sum is divided by the number of sites ``m``.

Adding or removing one site's update moves the sum by at most ``C`` (its
L2 sensitivity), so the noise is ``sigma`` times the sensitivity, which is
what a Gaussian-mechanism accountant assumes.

Flower 1.42's ``DifferentialPrivacyServerSideFixedClipping`` clips the same
way but then calls the wrapped strategy's aggregation (FedAvg weights site
k by ``n_k / N``) and adds noise with standard deviation
``sigma * C / m`` to that weighted average (``compute_stdv`` in
``flwr/supercore/differential_privacy.py``). Under equal weights this is
the course's step. Under ``n_k / N`` weights one site can move the average
by ``max_k (n_k / N) * C``, so the noise is only
``sigma / (m * max_k n_k / N)`` times the sensitivity:
:func:`flower_effective_noise_multiplier`.

The clipping, the noisy sum and the sensitivity come from
:mod:`fedmed_lab.privacy` (chapter 8); this module adds the round wrapper
and the comparison with Flower.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedmed_lab._checks import check_site_sizes
from fedmed_lab.aggregation import sample_weights
from fedmed_lab.privacy import aggregation_sensitivity, central_dp_sum


def central_dp_round(global_parameters: np.ndarray, site_parameters: Sequence[np.ndarray], *,
                     clipping_norm: float, noise_multiplier: float, rng: np.random.Generator) -> np.ndarray:
    """Aggregate one round with clipping and Gaussian noise on the sum; return the new global parameters.

    Parameters
    ----------
    global_parameters : ndarray of shape (p,)
        The parameters broadcast at the start of the round, w.
    site_parameters : sequence of m arrays of shape (p,)
        Each site's locally trained parameters w_k.
    clipping_norm : float
        C, the L2 bound on each update ``w_k - w``.
    noise_multiplier : float
        sigma; the noise on the sum has standard deviation ``sigma * C``. 0 gives
        clipped FedAvg with equal weights and no noise.
    rng : numpy.random.Generator
        The source of the noise.

    Returns
    -------
    ndarray of shape (p,)
        ``w + (sum_k clip(w_k - w) + Normal(0, (sigma C)^2 I)) / m``.
    """
    start = np.asarray(global_parameters, dtype=float)
    if len(site_parameters) == 0:
        raise ValueError("site_parameters is empty; a DP round needs at least one site's update")

    # Clip each site's update to norm C and add Gaussian noise of std sigma * C to the sum.
    updates = [np.asarray(w, dtype=float) - start for w in site_parameters]
    noisy_sum = central_dp_sum(updates, clipping_norm=clipping_norm, noise_multiplier=noise_multiplier, rng=rng)

    # The fixed denominator m keeps the sensitivity of the average at C / m.
    return start + noisy_sum / len(updates)


def course_noise_std(*, noise_multiplier: float, clipping_norm: float, num_sites: int) -> float:
    """Return the standard deviation of the course's noise on the averaged update, ``sigma C / m``."""
    return noise_multiplier * clipping_norm / num_sites


def flower_noise_std(*, noise_multiplier: float, clipping_norm: float, num_sampled_clients: int) -> float:
    """Return the standard deviation Flower 1.42 adds to the aggregate, ``sigma C / m``.

    The same formula as Flower's ``compute_stdv``; it does not depend on the
    weights the wrapped strategy uses.
    """
    return noise_multiplier * clipping_norm / num_sampled_clients


def weighted_sensitivity(num_examples: Sequence[int], *, clipping_norm: float) -> float:
    """Return the L2 sensitivity of the ``n_k / N``-weighted average of clipped updates.

    Removing site k's clipped update changes the weighted sum by at most
    ``(n_k / N) C``; the largest site sets the bound. This treats the
    weights as public and fixed, which is already generous: in practice
    removing a site also changes N.
    """
    return aggregation_sensitivity(sample_weights(num_examples), clipping_norm=clipping_norm)


def flower_effective_noise_multiplier(num_examples: Sequence[int], *, noise_multiplier: float) -> float:
    """Return noise std divided by sensitivity for Flower's wrapper around sample-weighted FedAvg.

    Equals ``noise_multiplier`` when all ``n_k`` are equal and
    ``noise_multiplier / (m * max_k n_k / N)`` in general, so a privacy
    accountant fed ``noise_multiplier`` overstates the protection.
    """
    sizes = check_site_sizes(num_examples, "num_examples")
    std = flower_noise_std(noise_multiplier=noise_multiplier, clipping_norm=1.0, num_sampled_clients=len(sizes))
    return std / weighted_sensitivity(sizes, clipping_norm=1.0)
