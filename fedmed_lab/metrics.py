"""Metrics a site computes on its own test split: AUROC, Brier score and calibration.

Only the resulting scalars leave the site. :func:`combine_site_metrics`
summarises them at the coordinator without any record.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from fedmed_lab import FedMedWarning


def _check_labels_and_scores(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=float)
    y_score = np.asarray(y_score, dtype=float)
    if y_true.ndim != 1 or y_true.shape != y_score.shape:
        raise ValueError(
            f"y_true and y_score must be 1-D arrays of equal length, got shapes {y_true.shape} and {y_score.shape}"
        )
    if not np.all((y_true == 0) | (y_true == 1)):
        raise ValueError("y_true must contain only 0 and 1")
    return y_true, y_score


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Rank ``values`` from 1, giving tied values the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)

    # The tied group of a distinct value occupies ranks start + 1 .. end, whose mean is (start + 1 + end) / 2.
    ends = np.cumsum(counts)
    starts = ends - counts
    return ((starts + 1 + ends) / 2.0)[inverse.reshape(-1)]


def auroc(y_true, y_score) -> float:
    """Compute the area under the ROC curve from the Mann-Whitney U statistic.

    AUROC is the probability that a random positive scores higher than a
    random negative, ties counting one half. Returns NaN, with a
    :class:`FedMedWarning`, when the split holds only one class.
    """
    y_true, y_score = _check_labels_and_scores(y_true, y_score)
    num_positive = int(y_true.sum())
    num_negative = y_true.size - num_positive
    if num_positive == 0 or num_negative == 0:
        warnings.warn(
            f"AUROC is undefined with {num_positive} positives and {num_negative} negatives; returning NaN",
            FedMedWarning,
            stacklevel=2,
        )
        return float("nan")
    ranks = _average_ranks(y_score)
    rank_sum_positive = float(ranks[y_true == 1].sum())
    u_statistic = rank_sum_positive - num_positive * (num_positive + 1) / 2.0
    return u_statistic / (num_positive * num_negative)


def brier_score(y_true, y_prob) -> float:
    """Return the mean squared difference between predicted probability and outcome."""
    y_true, y_prob = _check_labels_and_scores(y_true, y_prob)
    return float(np.mean((y_prob - y_true) ** 2))


def calibration_table(y_true, y_prob, *, num_bins: int = 10) -> list[tuple[float, float, int]]:
    """Bin predictions into ``num_bins`` equal-width bins on [0, 1].

    Returns one ``(mean predicted, observed rate, count)`` row per non-empty bin.
    """
    y_true, y_prob = _check_labels_and_scores(y_true, y_prob)
    if num_bins < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    bins = np.minimum((y_prob * num_bins).astype(int), num_bins - 1)
    rows = []
    for b in range(num_bins):
        in_bin = bins == b
        if in_bin.any():
            rows.append((float(y_prob[in_bin].mean()), float(y_true[in_bin].mean()), int(in_bin.sum())))
    return rows


def expected_calibration_error(y_true, y_prob, *, num_bins: int = 10) -> float:
    """Return the count-weighted mean gap between predicted and observed rates over the bins."""
    rows = calibration_table(y_true, y_prob, num_bins=num_bins)
    total = sum(count for _, _, count in rows)
    return float(sum(count * abs(pred - obs) for pred, obs, count in rows) / total)


def evaluate_classifier(y_true, y_prob) -> dict[str, float]:
    """Return the scalar metrics a site reports: AUROC, Brier score, ECE and calibration-in-the-large.

    Calibration-in-the-large is the mean predicted risk minus the observed
    event rate: positive values mean the model over-predicts at this site.
    """
    y_true, y_prob = _check_labels_and_scores(y_true, y_prob)
    return {
        "auroc": auroc(y_true, y_prob),
        "brier": brier_score(y_true, y_prob),
        "ece": expected_calibration_error(y_true, y_prob),
        "calibration_in_the_large": float(y_prob.mean() - y_true.mean()),
        "prevalence": float(y_true.mean()),
    }


def combine_site_metrics(values: Sequence[float], num_examples: Sequence[int]) -> dict[str, float]:
    """Summarise one metric across sites: weighted mean, mean, minimum, maximum and spread.

    The weighted mean uses weights n_k / N; the spread is max - min. For AUROC
    the minimum is the worst site, for a loss or Brier score the maximum is.
    """
    values = np.asarray(values, dtype=float)
    sizes = np.asarray(num_examples, dtype=float)
    if values.shape != sizes.shape or values.size == 0:
        raise ValueError(f"need one value per site, got {values.size} values and {sizes.size} sizes")
    return {
        "weighted_mean": float(values @ (sizes / sizes.sum())),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
        "spread": float(values.max() - values.min()),
    }
