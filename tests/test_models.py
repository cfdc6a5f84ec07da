import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.models import LinearRegression, LogisticRegression, sigmoid


def numerical_gradient(function, params, step=1e-6):
    grad = np.zeros_like(params)
    for i in range(params.size):
        e = np.zeros_like(params)
        e[i] = step
        grad[i] = (function(params + e) - function(params - e)) / (2 * step)
    return grad


@pytest.mark.parametrize("model", [LinearRegression(), LogisticRegression(), LogisticRegression(l2=0.3)])
def test_gradient_matches_finite_differences(model):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3))
    y = (rng.random(40) < 0.4).astype(float)
    params = rng.standard_normal(model.num_parameters(3))
    analytic = model.gradient(params, X, y)
    numeric = numerical_gradient(lambda p: model.loss(p, X, y), params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_linear_loss_closed_form():
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    y = np.array([1.0, 1.0])
    w = np.array([2.0, 1.0])
    # Residuals are 1 and 1, so the mean squared error is 1 and the gradient (2/n) X^T r = [1, 2].
    assert LinearRegression().loss(w, X, y) == 1.0
    np.testing.assert_array_equal(LinearRegression().gradient(w, X, y), [1.0, 2.0])


def test_logistic_loss_at_zero_is_log_two():
    X = np.ones((5, 2))
    y = np.array([0, 1, 0, 1, 1.0])
    assert LogisticRegression().loss(np.zeros(3), X, y) == pytest.approx(np.log(2))


def test_logistic_intercept_gradient_is_mean_error():
    X = np.zeros((4, 2))
    y = np.array([1, 1, 1, 0.0])
    grad = LogisticRegression().gradient(np.zeros(3), X, y)
    assert grad[-1] == pytest.approx(0.5 - 0.75)


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=-800, max_value=800, allow_nan=False))
def test_sigmoid_stays_in_unit_interval(z):
    value = float(sigmoid(np.array([z]))[0])
    assert 0.0 <= value <= 1.0
    assert np.isfinite(value)


def test_logistic_loss_finite_for_extreme_logits():
    X = np.array([[1000.0], [-1000.0]])
    y = np.array([0.0, 1.0])
    assert np.isfinite(LogisticRegression().loss(np.array([1.0, 0.0]), X, y))


def test_wrong_parameter_shape_rejected():
    with pytest.raises(ValueError, match=r"params must have shape \(3,\)"):
        LogisticRegression().loss(np.zeros(2), np.zeros((4, 2)), np.zeros(4))


def test_mismatched_labels_rejected():
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        LinearRegression().loss(np.zeros(2), np.zeros((4, 2)), np.zeros(3))


def test_negative_l2_rejected():
    with pytest.raises(ValueError, match="l2 must be a non-negative finite number, got -1"):
        LogisticRegression(l2=-1)
