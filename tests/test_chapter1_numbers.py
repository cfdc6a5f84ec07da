"""The chapter 1 experiment reproduces the source chapter's printed numbers."""

import numpy as np
import pytest

from fedmed_lab.aggregation import aggregation_diagnostics, sample_weights
from fedmed_lab.data import make_linear_sites
from fedmed_lab.models import LinearRegression

SIZES = [80, 120, 4000, 60, 1740]


@pytest.fixture(scope="module")
def diagnostics():
    experiment = make_linear_sites(SIZES, np.random.default_rng(0))
    return aggregation_diagnostics(experiment.datasets, LinearRegression(), experiment.w)


def test_weights_rounded_to_four_places():
    assert np.round(sample_weights(SIZES), 4).tolist() == [0.0133, 0.02, 0.6667, 0.01, 0.29]


def test_losses_match_source_chapter(diagnostics):
    assert f"{diagnostics.pooled_loss:.6f}" == "0.221104"
    assert f"{diagnostics.weighted_loss:.6f}" == "0.221104"
    assert f"{diagnostics.unweighted_loss:.6f}" == "0.288648"
    assert f"{abs(diagnostics.unweighted_loss - diagnostics.pooled_loss):.2e}" == "6.75e-02"


def test_gradient_errors_match_source_chapter(diagnostics):
    assert diagnostics.weighted_gradient_error < 1e-12
    assert f"{diagnostics.unweighted_gradient_error:.2e}" == "8.44e-01"


def test_draw_order_matches_manual_draw():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(4)
    X0 = rng.standard_normal((80, 4))
    shift0 = rng.standard_normal(4) * 0.3
    y0 = X0 @ (w + shift0) + 0.1 * rng.standard_normal(80)

    experiment = make_linear_sites(SIZES, np.random.default_rng(0))
    assert np.array_equal(experiment.w, w)
    assert np.array_equal(experiment.datasets[0][0], X0)
    assert np.array_equal(experiment.datasets[0][1], y0)
    assert experiment.num_examples == SIZES
