"""Tests for dropout gradient errors under imbalance and per-site losses."""

import numpy as np
import pytest

from fedmed_lab.data import make_linear_sites
from fedmed_lab.dropout import (
    dropout_gradient_errors,
    expected_dropout_error,
    imbalance_experiment,
    per_site_losses,
)
from fedmed_lab.models import LinearRegression
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig


@pytest.fixture(scope="module")
def chapter_draw():
    return make_linear_sites([50, 50, 90000, 50, 50], np.random.default_rng(0))


def test_chapter_numbers(chapter_draw):
    errors = dropout_gradient_errors(chapter_draw, [2, 3, 4])
    assert errors.unweighted_all == pytest.approx(1.0959, abs=5e-5)
    assert errors.weighted_responding == pytest.approx(0.0033, abs=5e-5)


def test_imbalance_experiment_is_chapter_draw(chapter_draw):
    experiment = imbalance_experiment(90000, 50, seed=0)
    assert experiment.num_examples == [50, 50, 90000, 50, 50]
    for (X, y), (X_ref, y_ref) in zip(experiment.datasets, chapter_draw.datasets):
        np.testing.assert_array_equal(X, X_ref)
        np.testing.assert_array_equal(y, y_ref)


def test_all_responding_is_exact(chapter_draw):
    errors = dropout_gradient_errors(chapter_draw, range(5))
    assert errors.weighted_responding < 1e-12
    assert errors.divided_by_full_n < 1e-12


def test_weighting_choices_differ():
    # Mid-sized sites with different data, so each wrong weighting changes the result.
    experiment = make_linear_sites([30, 300, 120], np.random.default_rng(4), shift_scale=1.0)
    errors = dropout_gradient_errors(experiment, [1, 2])
    values = [errors.weighted_responding, errors.unweighted_responding, errors.divided_by_full_n]
    assert min(abs(a - b) for a, b in [(values[0], values[1]), (values[0], values[2]), (values[1], values[2])]) > 1e-3


def test_divided_by_full_n_matches_formula():
    experiment = make_linear_sites([30, 300, 120], np.random.default_rng(4), shift_scale=1.0)
    model = LinearRegression()
    gradients = [model.gradient(experiment.w, X, y) for X, y in experiment.datasets]
    pooled = (30 * gradients[0] + 300 * gradients[1] + 120 * gradients[2]) / 450
    shrunk = (300 * gradients[1] + 120 * gradients[2]) / 450
    expected = np.linalg.norm(shrunk - pooled) / np.linalg.norm(pooled)
    assert dropout_gradient_errors(experiment, [1, 2]).divided_by_full_n == pytest.approx(expected, rel=1e-12)


def test_empty_responding_rejected(chapter_draw):
    with pytest.raises(ValueError, match="responding is empty"):
        dropout_gradient_errors(chapter_draw, [])


def test_out_of_range_index_rejected(chapter_draw):
    with pytest.raises(ValueError, match="responding index 7 is out of range for 5 sites"):
        dropout_gradient_errors(chapter_draw, [2, 7])


def test_expected_error_slider_extremes(chapter_draw):
    never = expected_dropout_error(chapter_draw, 0.0)
    always = expected_dropout_error(chapter_draw, 1.0)
    assert never["expected_error"] < 1e-12
    assert never["worst_error"] < 1e-12
    only_largest = dropout_gradient_errors(chapter_draw, [2]).weighted_responding
    assert always["expected_error"] == pytest.approx(only_largest, rel=1e-12)
    assert always["all_absent_probability"] == 1.0


def test_expected_error_grows_with_drop_probability(chapter_draw):
    curve = [expected_dropout_error(chapter_draw, p)["expected_error"] for p in (0.1, 0.5, 0.9)]
    assert curve == sorted(curve)


def test_expected_error_rejects_probability_outside_unit_interval(chapter_draw):
    with pytest.raises(ValueError, match=r"drop_probability must be a probability in \[0, 1\], got 1.5"):
        expected_dropout_error(chapter_draw, 1.5)


@pytest.mark.parametrize(("largest", "small"), [(1000, 10), (90000, 10), (90000, 1000), (1000, 1000)])
def test_widget_size_extremes(largest, small):
    result = expected_dropout_error(imbalance_experiment(largest, small), 0.5)
    assert np.isfinite(result["expected_error"])
    assert result["worst_error"] >= result["expected_error"]


def test_imbalance_experiment_rejects_negative_size():
    with pytest.raises(ValueError, match="site_sizes must all be positive, got -50"):
        imbalance_experiment(90000, -50)


def test_per_site_losses_shape_and_values():
    experiment = make_linear_sites([20, 40], np.random.default_rng(1))
    hospitals = [Hospital(f"s{k}", X, y) for k, (X, y) in enumerate(experiment.datasets)]
    history = run_federated(hospitals, LinearRegression(), rounds=5, local=LocalTrainingConfig(),
                            rng=np.random.default_rng(0))
    losses = per_site_losses(hospitals, LinearRegression(), history, burn_in=3)
    assert losses.shape == (2, 2)
    X, y = experiment.datasets[1]
    assert losses[-1, 1] == pytest.approx(np.mean((X @ history.final_parameters - y) ** 2))
    with pytest.raises(ValueError, match="burn_in is 5 but the history has only 5 rounds"):
        per_site_losses(hospitals, LinearRegression(), history, burn_in=5)
