"""Tests for client selection and Horvitz-Thompson reweighting."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.aggregation import fedavg, weighted_average
from fedmed_lab.data import make_linear_sites
from fedmed_lab.models import LinearRegression
from fedmed_lab.rounds import run_federated
from fedmed_lab.selection import (
    ClientSampling,
    HorvitzThompsonAggregator,
    estimate_aggregate,
    exact_moments,
    horvitz_thompson_weights,
    inclusion_probabilities,
)
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig

SIZES = {"a": 50, "b": 50, "c": 900, "d": 200}
VECTORS = {"a": np.array([4.0, -1.0]), "b": np.array([3.0, 2.0]), "c": np.array([0.5, 0.1]), "d": np.array([-1.0, 1.0])}


def _target(vectors, sizes):
    return weighted_average([vectors[s] for s in sizes], list(sizes.values()))


def test_uniform_probabilities():
    assert inclusion_probabilities(SIZES, scheme="uniform", expected_sites=2) == dict.fromkeys(SIZES, 0.5)


def test_size_probabilities_capped_at_one():
    pi = inclusion_probabilities(SIZES, scheme="size", expected_sites=2)
    # 900 / 1200 * 2 = 1.5 exceeds 1: site c is capped and the other 1.0 is split 50:50:200.
    assert pi["c"] == 1.0
    assert pi["a"] == pytest.approx(50 / 300)
    assert pi["d"] == pytest.approx(200 / 300)
    assert sum(pi.values()) == pytest.approx(2.0)


def test_importance_probabilities_follow_weighted_norms():
    scores = {s: float(np.linalg.norm(v)) for s, v in VECTORS.items()}
    pi = inclusion_probabilities(SIZES, scheme="importance", expected_sites=1, scores=scores)
    raw = {s: SIZES[s] * scores[s] for s in SIZES}
    assert pi["a"] / pi["d"] == pytest.approx(raw["a"] / raw["d"])
    assert sum(pi.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "random"}, "scheme must be one of"),
        ({"expected_sites": 5}, "expected_sites is 5 but there are only 4 sites"),
        ({"expected_sites": 0}, "expected_sites must be a positive finite number, got 0"),
        ({"scheme": "importance"}, "scheme 'importance' needs scores"),
    ],
)
def test_inclusion_probabilities_rejects_invalid(kwargs, message):
    arguments = {"scheme": "uniform", "expected_sites": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        inclusion_probabilities(SIZES, **arguments)


def test_negative_size_rejected():
    with pytest.raises(ValueError, match=r"site_sizes must all be positive, got -3"):
        inclusion_probabilities({"a": 10, "b": -3}, scheme="uniform", expected_sites=1)


def test_zero_probability_rejected_for_reweighting():
    with pytest.raises(ValueError, match=r"sites \['b'\] have inclusion probability 0"):
        horvitz_thompson_weights(["a"], {"a": 10, "b": 20}, {"a": 0.5, "b": 0.0})


def test_probability_above_one_rejected():
    with pytest.raises(ValueError, match=r"probabilities\['a'\] must be a probability in \[0, 1\], got 1.2"):
        ClientSampling({"a": 1.2})


def test_horvitz_thompson_weights_formula():
    weights = horvitz_thompson_weights(["a", "c"], SIZES, {"a": 0.25, "b": 0.5, "c": 1.0, "d": 0.5})
    assert weights == {"a": pytest.approx(50 / 1200 / 0.25), "c": pytest.approx(900 / 1200)}


def test_full_participation_both_estimators_exact():
    pi = dict.fromkeys(SIZES, 1.0)
    target = _target(VECTORS, SIZES)
    for estimator in ("horvitz_thompson", "renormalized"):
        np.testing.assert_allclose(estimate_aggregate(VECTORS, list(SIZES), SIZES, pi, estimator=estimator), target)


def test_renormalized_biased_under_size_sampling():
    pi = inclusion_probabilities(SIZES, scheme="size", expected_sites=2)
    renormalized = exact_moments(VECTORS, SIZES, pi, estimator="renormalized")
    reweighted = exact_moments(VECTORS, SIZES, pi, estimator="horvitz_thompson")
    assert renormalized.bias > 0.05
    assert reweighted.bias < 1e-12
    assert reweighted.variance > renormalized.variance


def test_exact_moments_against_closed_form_variance():
    pi = {"a": 0.3, "b": 0.6, "c": 0.9, "d": 0.5}
    moments = exact_moments(VECTORS, SIZES, pi)
    total = sum(SIZES.values())
    expected = sum((1 - pi[s]) / pi[s] * np.sum((SIZES[s] / total * VECTORS[s]) ** 2) for s in SIZES)
    assert moments.variance == pytest.approx(expected, rel=1e-12)
    assert moments.empty_probability == pytest.approx(0.7 * 0.4 * 0.1 * 0.5)


def test_empty_sample_gives_zero_update():
    np.testing.assert_array_equal(estimate_aggregate(VECTORS, [], SIZES, dict.fromkeys(SIZES, 0.5)), np.zeros(2))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=6),
    st.lists(st.floats(min_value=0.05, max_value=1.0), min_size=6, max_size=6),
    st.integers(min_value=0, max_value=2**31),
)
def test_horvitz_thompson_unbiased_by_enumeration(sizes, probabilities, seed):
    sites = [f"s{k}" for k in range(len(sizes))]
    site_sizes = dict(zip(sites, sizes))
    pi = dict(zip(sites, probabilities))
    rng = np.random.default_rng(seed)
    vectors = {s: rng.normal(size=3) for s in sites}

    # Independent expectation: sum over every subset S of P(S) * estimate(S), written out here.
    expectation = np.zeros(3)
    total = sum(sizes)
    for pattern in itertools.product((0, 1), repeat=len(sites)):
        chance = np.prod([pi[s] if bit else 1 - pi[s] for s, bit in zip(sites, pattern)])
        estimate = sum((site_sizes[s] / total / pi[s]) * vectors[s] for s, bit in zip(sites, pattern) if bit)
        expectation = expectation + chance * estimate
    np.testing.assert_allclose(expectation, _target(vectors, site_sizes), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exact_moments(vectors, site_sizes, pi).mean, expectation, rtol=1e-9, atol=1e-12)


def test_sampling_monte_carlo_matches_exact_mean():
    pi = inclusion_probabilities(SIZES, scheme="size", expected_sites=2)
    sampler = ClientSampling(pi)
    rng = np.random.default_rng(2)
    draws = np.array([estimate_aggregate(VECTORS, sampler.select(r, list(SIZES), rng), SIZES, pi)
                      for r in range(20000)])
    moments = exact_moments(VECTORS, SIZES, pi)
    # Four standard errors of the Monte Carlo mean, per coordinate.
    standard_error = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - moments.target) < 4 * standard_error)


def _hospitals(sizes, seed=0):
    experiment = make_linear_sites(sizes, np.random.default_rng(seed), shift_scale=1.0)
    return [Hospital(f"s{k}", X, y) for k, (X, y) in enumerate(experiment.datasets)]


def test_aggregator_with_all_sites_equals_fedavg():
    hospitals = _hospitals([20, 200, 60])
    sizes = {h.site_id: h.num_examples for h in hospitals}
    config = LocalTrainingConfig(epochs=2, learning_rate=0.05)
    reweighted = run_federated(hospitals, LinearRegression(), rounds=3, local=config, rng=np.random.default_rng(0),
                               aggregator=HorvitzThompsonAggregator(sizes, dict.fromkeys(sizes, 1.0)))
    plain = run_federated(hospitals, LinearRegression(), rounds=3, local=config, rng=np.random.default_rng(0),
                          aggregator=fedavg)
    np.testing.assert_allclose(reweighted.final_parameters, plain.final_parameters, rtol=1e-12)


def test_aggregator_upweights_rare_site():
    hospitals = _hospitals([20, 200, 60])
    sizes = {h.site_id: h.num_examples for h in hospitals}
    pi = {"s0": 0.25, "s1": 1.0, "s2": 1.0}
    config = LocalTrainingConfig(epochs=1, learning_rate=0.05)
    updates = [h.fit(np.zeros(4), LinearRegression(), config, np.random.default_rng(0)) for h in hospitals]
    aggregated = HorvitzThompsonAggregator(sizes, pi)(updates, global_parameters=np.zeros(4))
    expected = sum(u.parameters * (u.num_examples / 280) / pi[u.site_id] for u in updates)
    np.testing.assert_allclose(aggregated, expected, rtol=1e-12)
    # Plain FedAvg of the same updates differs: the weighting matters.
    assert np.linalg.norm(aggregated - fedavg(updates)) > 1e-3


def test_aggregator_rejects_mismatched_size():
    hospitals = _hospitals([20, 200])
    aggregator = HorvitzThompsonAggregator({"s0": 21, "s1": 200}, {"s0": 0.5, "s1": 1.0})
    update = hospitals[0].fit(np.zeros(4), LinearRegression(), LocalTrainingConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="site 's0' reports n_k=20 but the aggregator was built with 21"):
        aggregator([update], global_parameters=np.zeros(4))


def test_sampling_in_driver_records_empty_rounds():
    hospitals = _hospitals([20, 30])
    sampler = ClientSampling({"s0": 0.2, "s1": 0.2})
    history = run_federated(hospitals, LinearRegression(), rounds=20, local=LocalTrainingConfig(),
                            rng=np.random.default_rng(4), participation=sampler)
    empty = history.empty_rounds
    assert 0 < len(empty) < 20
    assert all(history.rounds[r - 1].participants == () for r in empty)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=90_000), min_size=2, max_size=6),
    st.integers(min_value=0, max_value=2**31),
    st.floats(min_value=0.2, max_value=1.0),
)
def test_importance_sampling_reweighted_is_unbiased(sizes, seed, budget_fraction):
    sites = [f"s{k}" for k in range(len(sizes))]
    site_sizes = dict(zip(sites, sizes))
    rng = np.random.default_rng(seed)
    vectors = {s: rng.normal(size=2) for s in sites}
    scores = {s: float(np.linalg.norm(v)) + 1e-3 for s, v in vectors.items()}
    pi = inclusion_probabilities(site_sizes, scheme="importance", expected_sites=budget_fraction * len(sites),
                                 scores=scores)

    moments = exact_moments(vectors, site_sizes, pi)
    assert moments.bias <= 1e-9 * max(1.0, float(np.linalg.norm(moments.target)))
    np.testing.assert_allclose(moments.target, _target(vectors, site_sizes), rtol=1e-12, atol=1e-15)
