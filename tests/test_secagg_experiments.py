"""Tests of the chapter 7 experiments: the dropout widget's computation, uniformity statistics, cost."""

import math

import numpy as np
import pytest

from fedmed_lab.secagg_experiments import dropout_experiment, measure_cost, synthetic_federation, uniformity_statistics


def test_uniformity_statistics_of_uniform_grid():
    values = np.arange(2**16)

    mean_ratio, variance_ratio = uniformity_statistics(values, modulus_bits=16)

    assert mean_ratio == pytest.approx(1.0, abs=1e-4)
    assert variance_ratio == pytest.approx(1.0, abs=1e-4)


def test_uniformity_statistics_flags_small_values():
    mean_ratio, variance_ratio = uniformity_statistics(np.arange(1000), modulus_bits=32)

    assert mean_ratio < 1e-5
    assert variance_ratio < 1e-10


def test_uniformity_statistics_needs_two_values():
    with pytest.raises(ValueError, match=r"need at least 2 values to estimate a variance, got 1"):
        uniformity_statistics([5], modulus_bits=32)


def test_synthetic_federation_sizes_in_range():
    updates, sizes = synthetic_federation(50, 3, np.random.default_rng(0))

    assert len(updates) == 50
    assert all(u.shape == (3,) for u in updates)
    assert min(sizes) >= 20
    assert max(sizes) <= 20_000
    assert len(set(sizes)) > 40


@pytest.mark.parametrize("num_sites", [3, 12])
def test_dropout_widget_no_drops(num_sites):
    outcome = dropout_experiment(num_sites, 0, threshold=num_sites, rng=np.random.default_rng(1), key_seed=b"w")

    assert not outcome.aborted
    assert outcome.max_abs_error <= outcome.resolution
    assert outcome.message == f"{num_sites} of {num_sites} inputs summed; {num_sites} secrets rebuilt from shares"


def test_dropout_widget_at_threshold_recovers():
    outcome = dropout_experiment(10, 3, threshold=7, rng=np.random.default_rng(2), key_seed=b"w")

    assert not outcome.aborted
    assert len(outcome.dropped_before_upload) + len(outcome.dropped_after_upload) == 3
    assert outcome.max_abs_error <= outcome.resolution


def test_dropout_widget_below_threshold_aborts():
    outcome = dropout_experiment(10, 4, threshold=7, rng=np.random.default_rng(2), key_seed=b"w")

    assert outcome.aborted
    assert "fewer than the threshold t=7" in outcome.message
    assert math.isnan(outcome.max_abs_error)


def test_dropout_widget_all_sites_dropped_aborts():
    outcome = dropout_experiment(5, 5, threshold=3, rng=np.random.default_rng(0), key_seed=b"w")

    assert outcome.aborted
    assert "0 of 5 sites responded" in outcome.message


def test_dropout_widget_rejects_more_drops_than_sites():
    with pytest.raises(ValueError, match=r"num_dropped=6 exceeds num_sites=5"):
        dropout_experiment(5, 6, threshold=3, rng=np.random.default_rng(0))


def test_cost_complete_graph_quadratic_sparse_not():
    rng = np.random.default_rng(4)
    complete = [measure_cost(k, graph="complete", vector_length=10, rng=rng, key_seed=b"c") for k in (10, 40)]
    sparse = [measure_cost(k, graph="harary", vector_length=10, rng=rng, key_seed=b"c") for k in (10, 40)]

    # Per-site bytes grow about 4x from K=10 to K=40 on the complete graph and
    # stay within the change of degree on the sparse graph.
    assert complete[1].bytes_per_site / complete[0].bytes_per_site > 3.0
    assert sparse[1].bytes_per_site / sparse[0].bytes_per_site < 1.6
    assert sparse[1].degree == 6
    assert complete[1].degree == 39


def test_cost_with_dropouts_pays_for_recovery():
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)

    without = measure_cost(20, graph="complete", vector_length=5, rng=rng_a, key_seed=b"d")
    with_drops = measure_cost(20, graph="complete", vector_length=5, rng=rng_b, dropout_fraction=0.1, key_seed=b"d")

    assert not with_drops.aborted
    assert with_drops.bytes_total != without.bytes_total


def test_cost_rejects_unknown_graph():
    with pytest.raises(ValueError, match=r"graph must be 'complete' or 'harary', got 'star'"):
        measure_cost(5, graph="star", vector_length=2, rng=np.random.default_rng(0))
