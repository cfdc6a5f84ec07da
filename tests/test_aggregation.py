import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.aggregation import (
    fedavg,
    relative_error,
    sample_weights,
    unweighted_average,
    unweighted_fedavg,
    weighted_average,
)
from fedmed_lab.sites import ModelUpdate


def test_weighted_average_uses_site_sizes():
    vectors = [np.array([0.0, 0.0]), np.array([10.0, 20.0])]
    # 1 patient at the first site, 9 at the second: weights 0.1 and 0.9.
    np.testing.assert_allclose(weighted_average(vectors, [1, 9]), [9.0, 18.0])
    np.testing.assert_allclose(unweighted_average(vectors), [5.0, 10.0])


def test_fedavg_over_updates_differs_from_unweighted():
    updates = [
        ModelUpdate("small", np.array([1.0, 1.0]), 10),
        ModelUpdate("large", np.array([3.0, -1.0]), 30),
    ]
    np.testing.assert_allclose(fedavg(updates), [2.5, -0.5])
    np.testing.assert_allclose(unweighted_fedavg(updates), [2.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=100_000), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_weighted_average_equals_pooled_mean(sizes, seed):
    # Averaging per-site means with weights n_k / N gives the mean of all records.
    rng = np.random.default_rng(seed)
    data = [rng.standard_normal((n, 3)) for n in sizes]
    site_means = [d.mean(axis=0) for d in data]
    pooled = np.vstack(data).mean(axis=0)
    np.testing.assert_allclose(weighted_average(site_means, sizes), pooled, rtol=1e-9, atol=1e-12)


def test_sample_weights_sum_to_one():
    weights = sample_weights([80, 120, 4000, 60, 1740])
    assert weights.sum() == pytest.approx(1.0)
    assert weights[2] == pytest.approx(4000 / 6000)


def test_empty_aggregation_rejected():
    with pytest.raises(ValueError, match="cannot aggregate zero updates"):
        fedavg([])


def test_size_count_mismatch_rejected():
    with pytest.raises(ValueError, match="got 2 vectors but 3 site sizes"):
        weighted_average([np.zeros(2), np.ones(2)], [1, 2, 3])


@pytest.mark.parametrize("sizes", [[0, 5], [-3, 5], [2.5, 1]])
def test_invalid_site_sizes_rejected(sizes):
    with pytest.raises(ValueError, match="num_examples"):
        sample_weights(sizes)


def test_relative_error_of_zero_reference_rejected():
    with pytest.raises(ValueError, match="reference has norm 0"):
        relative_error(np.ones(2), np.zeros(2))
