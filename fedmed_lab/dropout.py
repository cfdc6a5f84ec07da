"""Dropout under size imbalance: gradient error of partial aggregates, and per-site fairness.

The chapter 1 identity ``grad L = sum_k (n_k / N) grad L_k`` holds only when
every site responds. When a set S responds, the coordinator can renormalize
over S, ``sum_{k in S} n_k grad L_k / sum_{k in S} n_k``, which is the
gradient of the pooled loss of the responding patients only. Its error
against the full gradient is small when the absent sites have few patients,
and large when they have many whose data differs. Dividing the
responding sum by the full N instead shrinks the gradient by the missing
share, and the unweighted mean ignores n_k entirely.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_non_negative_int, check_probability, check_site_sizes
from fedmed_lab.aggregation import relative_error, unweighted_average, weighted_average
from fedmed_lab.data import LinearExperiment, make_linear_sites
from fedmed_lab.models import LinearRegression
from fedmed_lab.rounds import TrainingHistory
from fedmed_lab.sites import Hospital


@dataclass(frozen=True)
class DropoutGradientErrors:
    """Relative errors of aggregates against the full-participation pooled gradient.

    Attributes
    ----------
    responding : tuple of int
        Indices of the sites whose gradients arrived.
    unweighted_all : float
        Unweighted mean over every site.
    weighted_responding : float
        Sample-weighted over the responding sites, renormalized by their total.
    unweighted_responding : float
        Unweighted mean over the responding sites.
    divided_by_full_n : float
        ``sum_{k in S} n_k grad L_k / N`` with N over all sites (not renormalized).
    """

    responding: tuple[int, ...]
    unweighted_all: float
    weighted_responding: float
    unweighted_responding: float
    divided_by_full_n: float


def _site_gradients(experiment: LinearExperiment, model, point: np.ndarray) -> list[np.ndarray]:
    return [model.gradient(point, X, y) for X, y in experiment.datasets]


def dropout_gradient_errors(experiment: LinearExperiment, responding: Sequence[int], *, model=None,
                            point: np.ndarray | None = None) -> DropoutGradientErrors:
    """Compare aggregates over the ``responding`` sites with the full pooled gradient.

    Parameters
    ----------
    experiment : LinearExperiment
        The sites' records; gradients are taken at ``point`` (default
        ``experiment.w``, the chapter 1 evaluation point).
    responding : sequence of int
        Indices of the responding sites, at least one.
    model : default LinearRegression()

    Raises
    ------
    ValueError
        When ``responding`` is empty or names an index outside the federation.
    """
    model = model or LinearRegression()
    point = experiment.w if point is None else np.asarray(point, dtype=float)
    num_sites = len(experiment.datasets)
    responding = tuple(check_non_negative_int(k, "responding index") for k in responding)
    if not responding:
        raise ValueError("responding is empty: no site responded, so record the round as empty instead of aggregating")
    if max(responding) >= num_sites:
        raise ValueError(f"responding index {max(responding)} is out of range for {num_sites} sites")

    gradients = _site_gradients(experiment, model, point)
    sizes = experiment.num_examples
    pooled = weighted_average(gradients, sizes)
    subset = [gradients[k] for k in responding]
    subset_sizes = [sizes[k] for k in responding]
    return DropoutGradientErrors(
        responding=responding,
        unweighted_all=relative_error(unweighted_average(gradients), pooled),
        weighted_responding=relative_error(weighted_average(subset, subset_sizes), pooled),
        unweighted_responding=relative_error(unweighted_average(subset), pooled),
        divided_by_full_n=relative_error(sum(n * g for n, g in zip(subset_sizes, subset)) / sum(sizes), pooled),
    )


def expected_dropout_error(experiment: LinearExperiment, drop_probability: float) -> dict[str, float]:
    """Return the exact expected and worst error when every site but the largest may drop.

    Each smaller site is absent independently with ``drop_probability``; the
    largest site always responds, so no round is empty. The aggregate is
    renormalized over the responding sites. The expectation enumerates all
    2^(K-1) patterns.

    Returns
    -------
    dict
        ``"expected_error"`` of the renormalized aggregate, its
        ``"worst_error"`` over the patterns with non-zero probability,
        ``"unweighted_error"`` of the unweighted mean over all sites (for
        scale), and ``"all_absent_probability"``, the chance that only the
        largest site responds.
    """
    drop_probability = check_probability(drop_probability, "drop_probability")
    model = LinearRegression()
    gradients = _site_gradients(experiment, model, experiment.w)
    sizes = experiment.num_examples
    pooled = weighted_average(gradients, sizes)
    largest = int(np.argmax(sizes))
    others = [k for k in range(len(sizes)) if k != largest]

    expected, worst = 0.0, 0.0
    for pattern in itertools.product((False, True), repeat=len(others)):
        responding = [largest] + [k for k, present in zip(others, pattern) if present]
        absent = len(others) - sum(pattern)
        chance = drop_probability**absent * (1.0 - drop_probability) ** sum(pattern)
        error = relative_error(weighted_average([gradients[k] for k in responding], [sizes[k] for k in responding]),
                               pooled)
        expected += chance * error
        if chance > 0.0:
            worst = max(worst, error)
    return {
        "expected_error": float(expected),
        "worst_error": float(worst),
        "unweighted_error": relative_error(unweighted_average(gradients), pooled),
        "all_absent_probability": float(drop_probability ** len(others)),
    }


def imbalance_experiment(largest_size: int, small_size: int, *, num_small: int = 4, seed: int = 0) -> LinearExperiment:
    """Draw the chapter 1 linear sites with the largest site in the third position.

    Sizes are ``[small, small, largest, small, ...]`` with ``num_small``
    small sites; ``largest_size=90000, small_size=50`` and ``seed=0`` give the
    chapter 4 draw. This is the widget's data function.
    """
    sizes = [int(small_size)] * num_small
    sizes.insert(min(2, num_small), int(largest_size))
    check_site_sizes(sizes)
    return make_linear_sites(sizes, np.random.default_rng(seed))


def per_site_losses(hospitals: Sequence[Hospital], model, history: TrainingHistory, *,
                    burn_in: int = 0) -> np.ndarray:
    """Return each site's training loss of the global model, round by round after ``burn_in``.

    Returns
    -------
    ndarray of shape (rounds - burn_in, K)
        Row t contains ``L_k`` of the parameters after round ``burn_in + t + 1``,
        in the order of ``hospitals``.
    """
    burn_in = check_non_negative_int(burn_in, "burn_in")
    if burn_in >= len(history.rounds):
        raise ValueError(f"burn_in is {burn_in} but the history has only {len(history.rounds)} rounds; lower it")
    return np.array([[h.local_loss_and_gradient(record.parameters, model)[0] for h in hospitals]
                     for record in history.rounds[burn_in:]])
