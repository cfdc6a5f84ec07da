"""Tests for fedmed_lab.inversion: the ratio attack, the loss comparison and gradient matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.inversion import (
    TwoLayerNetwork,
    batch_leakage,
    batch_ratio,
    ratio_attack_demo,
    compare_loss_and_gradient,
    logit_from_loss,
    match_gradient,
    matched_record_errors,
    matching_success_rate,
    reconstruct_from_loss,
    reconstruct_label,
    reconstruct_record,
    record_gradient,
)
from fedmed_lab.models import LogisticRegression, sigmoid


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), label=st.sampled_from([0, 1]))
def test_single_record_reconstruction_exact(seed, label):
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(8)
    x = rng.standard_normal(7) * 3.0
    gradient = record_gradient(params, x, label)
    np.testing.assert_allclose(reconstruct_record(gradient), x, rtol=1e-9, atol=1e-9)
    assert reconstruct_label(gradient) == label


def test_reconstruction_removes_l2_penalty():
    rng = np.random.default_rng(1)
    params = rng.standard_normal(5)
    x = rng.standard_normal(4)
    gradient = record_gradient(params, x, 1, l2=0.3)
    np.testing.assert_allclose(reconstruct_record(gradient, params=params, l2=0.3), x, rtol=1e-10)
    assert not np.allclose(reconstruct_record(gradient), x, rtol=1e-3)


def test_reconstruction_l2_needs_params():
    with pytest.raises(ValueError, match="pass params"):
        reconstruct_record(np.array([0.1, 0.2, -0.5]), l2=0.1)


def test_zero_intercept_gradient_rejected():
    with pytest.raises(ValueError, match="intercept gradient is 0"):
        reconstruct_record(np.array([0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="intercept gradient is 0"):
        reconstruct_label(np.array([0.0, 0.0]))


def test_gradient_shape_checked():
    with pytest.raises(ValueError, match="got shape \\(1,\\)"):
        reconstruct_record(np.array([0.3]))


def test_batch_ratio_is_mean_for_one_label_first_round():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 6))
    gradient = LogisticRegression().gradient(np.zeros(7), X, np.ones(40))
    np.testing.assert_allclose(batch_ratio(gradient), X.mean(axis=0), atol=1e-12)


def test_batch_ratio_is_error_weighted_mean():
    rng = np.random.default_rng(3)
    params = rng.standard_normal(4)
    X = rng.standard_normal((25, 3))
    y = (rng.random(25) < 0.4).astype(float)
    errors = sigmoid(X @ params[:-1] + params[-1]) - y
    expected = (errors @ X) / errors.sum()
    ratio = batch_ratio(LogisticRegression().gradient(params, X, y))
    np.testing.assert_allclose(ratio, expected, rtol=1e-9)
    assert not np.allclose(ratio, X.mean(axis=0), atol=1e-2)


def test_batch_leakage_by_size():
    leakage = batch_leakage([1, 2, 10, 120, 12000], num_features=10, num_trials=4, rng=np.random.default_rng(4))
    assert np.all(leakage.ratio_error < 1e-12)
    assert leakage.reconstruction_rms[0] == 0.0
    assert leakage.reconstruction_rms[-1] > 3.0
    # One patient moves a clinic's update about 100 times more than an academic centre's.
    assert leakage.influence[3] / leakage.influence[4] > 50
    assert np.all(np.diff(leakage.influence) < 0)


def test_batch_leakage_rejects_bad_label():
    with pytest.raises(ValueError, match="label must be 0 or 1, got 2"):
        batch_leakage([1], num_features=2, num_trials=1, rng=np.random.default_rng(0), label=2)


@pytest.mark.parametrize("label", [0, 1])
def test_logit_from_loss_inverts_cross_entropy(label):
    for z in (-4.0, -0.3, 0.2, 5.0):
        loss = float(np.logaddexp(0.0, z) - label * z)
        assert logit_from_loss(loss, label) == pytest.approx(z, rel=1e-9)


def test_logit_from_loss_rejects_zero_loss():
    with pytest.raises(ValueError, match="got loss=0.0"):
        logit_from_loss(0.0, 1)


def test_loss_reconstruction_on_hyperplane():
    rng = np.random.default_rng(5)
    params = rng.standard_normal(6)
    x = rng.standard_normal(5)
    loss = LogisticRegression().loss(params, x[None, :], np.array([1.0]))
    estimate = reconstruct_from_loss(loss, 1, params, np.zeros(5))
    assert estimate @ params[:-1] + params[-1] == pytest.approx(x @ params[:-1] + params[-1], rel=1e-9)
    assert np.linalg.norm(estimate - x) > 0.1


def test_gradient_leaks_d_numbers_loss_one():
    comparison = compare_loss_and_gradient(num_features=10, num_trials=2000, rng=np.random.default_rng(6))
    assert comparison.gradient < 1e-20
    assert comparison.nothing == pytest.approx(10.0, rel=0.05)
    assert comparison.loss == pytest.approx(9.0, rel=0.05)


def test_matching_loss_derivative_finite_differences():
    rng = np.random.default_rng(7)
    network = TwoLayerNetwork.random(4, 5, rng)
    X = rng.standard_normal((3, 4))
    y = np.array([1.0, 0.0, 1.0])
    target = rng.standard_normal(network.num_parameters) * 0.1
    _, derivative = network.matching_loss(X, y, target)

    step = 1e-6
    numeric = np.zeros_like(X)
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            plus, minus = X.copy(), X.copy()
            plus[i, j] += step
            minus[i, j] -= step
            numeric[i, j] = (network.matching_loss(plus, y, target)[0]
                             - network.matching_loss(minus, y, target)[0]) / (2 * step)
    np.testing.assert_allclose(derivative, numeric, rtol=1e-5, atol=1e-9)


def test_network_gradient_finite_differences():
    rng = np.random.default_rng(8)
    network = TwoLayerNetwork.random(3, 4, rng)
    X = rng.standard_normal((6, 3))
    y = (rng.random(6) < 0.5).astype(float)

    def mean_loss(W, v, c):
        z = np.tanh(X @ W.T) @ v + c
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    gradient = network.gradient(X, y)
    step = 1e-6
    W_plus = network.W.copy()
    W_plus[1, 2] += step
    W_minus = network.W.copy()
    W_minus[1, 2] -= step
    numeric = (mean_loss(W_plus, network.v, network.c) - mean_loss(W_minus, network.v, network.c)) / (2 * step)
    assert gradient[1 * 3 + 2] == pytest.approx(numeric, rel=1e-6)
    numeric_c = (mean_loss(network.W, network.v, step) - mean_loss(network.W, network.v, -step)) / (2 * step)
    assert gradient[-1] == pytest.approx(numeric_c, rel=1e-6)


def test_matching_recovers_single_record():
    rng = np.random.default_rng(9)
    network = TwoLayerNetwork.random(4, 4, rng)
    X = rng.standard_normal((1, 4))
    y = np.array([1.0])
    estimate = match_gradient(network, network.gradient(X, y), y, num_features=4, rng=rng)
    assert matched_record_errors(estimate, X)[0] < 1e-3


def test_matched_errors_ignore_order():
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(matched_record_errors(X[::-1], X), [0.0, 0.0])


def test_matching_success_falls_with_batch_size():
    rates = matching_success_rate([1, 8], num_features=4, num_hidden=4, num_trials=2, rng=np.random.default_rng(10))
    assert rates[0] == 1.0
    # Eight records are 32 unknowns against 21 gradient entries: not identifiable.
    assert rates[1] < 0.5
    assert math.isfinite(rates.sum())


def test_ratio_demo_single_patient_extreme():
    demo = ratio_attack_demo(1, 0.0, rng=np.random.default_rng(11))
    assert demo.distance_to_first_patient < 1e-12


def test_ratio_demo_one_label_gives_mean():
    for fraction in (0.0, 1.0):
        demo = ratio_attack_demo(500, fraction, rng=np.random.default_rng(12))
        assert demo.distance_to_mean < 1e-12
        assert demo.distance_to_first_patient > 0.0


def test_ratio_demo_balanced_batch_has_no_ratio():
    demo = ratio_attack_demo(10, 0.5, rng=np.random.default_rng(13))
    assert np.all(np.isnan(demo.estimate))


def test_ratio_demo_rejects_fraction_above_one():
    with pytest.raises(ValueError, match="positive_fraction must be in \\[0, 1\\], got 1.5"):
        ratio_attack_demo(5, 1.5, rng=np.random.default_rng(0))
