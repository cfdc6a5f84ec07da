"""AUROC, Brier score and calibration checked against independent computations on fixed data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab import FedMedWarning
from fedmed_lab.metrics import (
    auroc,
    brier_score,
    calibration_table,
    combine_site_metrics,
    evaluate_classifier,
    expected_calibration_error,
)

# Fixed data with ties inside and across classes.
Y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0], dtype=float)
SCORES = np.array([0.9, 0.8, 0.8, 0.55, 0.55, 0.3, 0.3, 0.3, 0.1, 0.95, 0.05, 0.62])


def pairwise_auroc(y, scores):
    """Count positive-negative pairs directly: 1 when the positive ranks higher, 1/2 on a tie."""
    positives = scores[y == 1]
    negatives = scores[y == 0]
    total = 0.0
    for p, n in itertools.product(positives, negatives):
        if p > n:
            total += 1.0
        elif p == n:
            total += 0.5
    return total / (positives.size * negatives.size)


def test_auroc_matches_pairwise_count_with_ties():
    assert auroc(Y, SCORES) == pytest.approx(pairwise_auroc(Y, SCORES), abs=1e-15)


def test_auroc_fixed_value():
    # 5 positives, 7 negatives: per positive 7 + 7 + 6.5 + 4.5 + 3 = 28 of the 35 pairs count.
    assert pairwise_auroc(Y, SCORES) == pytest.approx(28 / 35)
    assert auroc(Y, SCORES) == pytest.approx(28 / 35)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=40))
def test_auroc_matches_pairwise_count_property(pairs):
    y = np.array([float(label) for label, _ in pairs])
    scores = np.array([score / 6.0 for _, score in pairs])
    if y.min() == y.max():
        return
    assert auroc(y, scores) == pytest.approx(pairwise_auroc(y, scores), abs=1e-12)
    # Reversing the scores swaps the order of every untied pair.
    assert auroc(y, 1.0 - scores) == pytest.approx(1.0 - pairwise_auroc(y, scores), abs=1e-12)


def test_auroc_single_class_warns_and_returns_nan():
    with pytest.warns(FedMedWarning, match="AUROC is undefined with 0 positives and 3 negatives"):
        value = auroc([0, 0, 0], [0.1, 0.2, 0.3])
    assert np.isnan(value)


def test_brier_score_fixed_value():
    expected = sum((s - t) ** 2 for s, t in zip(SCORES, Y)) / Y.size
    assert brier_score(Y, SCORES) == pytest.approx(expected)
    assert brier_score([1, 0], [1.0, 0.0]) == 0.0
    assert brier_score([1, 0], [0.0, 1.0]) == 1.0


def brute_force_calibration(y, probabilities, num_bins):
    rows = []
    for b in range(num_bins):
        low, high = b / num_bins, (b + 1) / num_bins
        members = [i for i, p in enumerate(probabilities) if low <= p < high or (b == num_bins - 1 and p == 1.0)]
        if members:
            rows.append((float(np.mean(probabilities[members])), float(np.mean(y[members])), len(members)))
    return rows


@pytest.mark.parametrize("num_bins", [1, 2, 4, 10])
def test_calibration_table_matches_brute_force(num_bins):
    probabilities = np.append(SCORES, 1.0)
    y = np.append(Y, 1.0)
    table = calibration_table(y, probabilities, num_bins=num_bins)
    expected = brute_force_calibration(y, probabilities, num_bins)
    assert len(table) == len(expected)
    for row, reference in zip(table, expected):
        assert row[0] == pytest.approx(reference[0])
        assert row[1] == pytest.approx(reference[1])
        assert row[2] == reference[2]


def test_expected_calibration_error_fixed_value():
    # Two bins of 0.5: [0.1, 0.2] with outcomes (0, 1), and [0.7, 0.9] with outcomes (1, 1).
    y = np.array([0.0, 1.0, 1.0, 1.0])
    probabilities = np.array([0.1, 0.2, 0.7, 0.9])
    expected = (2 * abs(0.15 - 0.5) + 2 * abs(0.8 - 1.0)) / 4
    assert expected_calibration_error(y, probabilities, num_bins=2) == pytest.approx(expected)


def test_calibration_in_the_large_sign():
    metrics = evaluate_classifier([0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5])
    assert metrics["calibration_in_the_large"] == pytest.approx(0.25)
    assert metrics["prevalence"] == pytest.approx(0.25)


def test_combine_site_metrics_weights_by_size():
    combined = combine_site_metrics([0.6, 0.9], [10, 990])
    assert combined["weighted_mean"] == pytest.approx(0.6 * 0.01 + 0.9 * 0.99)
    assert combined["mean"] == pytest.approx(0.75)
    assert combined["min"] == 0.6
    assert combined["spread"] == pytest.approx(0.3)


def test_invalid_labels_are_rejected():
    with pytest.raises(ValueError, match="y_true must contain only 0 and 1"):
        auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"equal length, got shapes \(2,\) and \(3,\)"):
        brier_score([0, 1], [0.1, 0.2, 0.3])
