"""Tests for the participation models: Bernoulli availability, deadlines, dropping the smallest sites."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.data import make_linear_sites
from fedmed_lab.models import LinearRegression
from fedmed_lab.participation import (
    BernoulliParticipation,
    DeadlineParticipation,
    FixedDropout,
    FullParticipation,
    drop_smallest_sites,
    local_compute_time,
    smallest_sites,
)
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig

SITES = ["clinic_a", "clinic_b", "academic", "clinic_c", "clinic_d"]
SIZES = dict(zip(SITES, [50, 50, 90000, 50, 50]))


def _hospitals(sizes, speeds=None, seed=0):
    experiment = make_linear_sites(sizes, np.random.default_rng(seed))
    speeds = speeds or [1.0] * len(sizes)
    return [Hospital(f"site_{k}", X, y, X, y, speed=speed)
            for k, ((X, y), speed) in enumerate(zip(experiment.datasets, speeds))]


def test_bernoulli_extremes_zero_and_one():
    model = BernoulliParticipation({"a": 0.0, "b": 1.0, "c": 1.0})
    rng = np.random.default_rng(3)
    for server_round in range(1, 50):
        assert model.select(server_round, ["a", "b", "c"], rng) == ["b", "c"]


def test_bernoulli_rates_match_probabilities():
    probabilities = {"a": 0.2, "b": 0.5, "c": 0.9}
    model = BernoulliParticipation(probabilities)
    rng = np.random.default_rng(7)
    rounds = 4000
    counts = dict.fromkeys(probabilities, 0)
    for server_round in range(rounds):
        for site in model.select(server_round, list(probabilities), rng):
            counts[site] += 1
    for site, p in probabilities.items():
        # Four binomial standard deviations: fails by chance with probability below 1e-4.
        assert abs(counts[site] / rounds - p) < 4 * np.sqrt(p * (1 - p) / rounds)


def test_bernoulli_same_seed_same_rounds():
    model = BernoulliParticipation(dict.fromkeys(SITES, 0.5))
    first = [model.select(r, SITES, np.random.default_rng(11)) for r in range(3)]
    second = [model.select(r, SITES, np.random.default_rng(11)) for r in range(3)]
    assert first == second


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bernoulli_rejects_probability_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=r"probabilities\['b'\] must be a probability in \[0, 1\], got"):
        BernoulliParticipation({"a": 0.5, "b": bad})


def test_bernoulli_rejects_unknown_site():
    model = BernoulliParticipation({"a": 0.5})
    with pytest.raises(ValueError, match=r"has no entry for sites \['b'\]"):
        model.select(1, ["a", "b"], np.random.default_rng(0))


def test_compute_time_formula():
    assert local_compute_time(900, 0.5, 3) == pytest.approx(5400.0)


def test_deadline_drops_slow_sites_only():
    hospitals = _hospitals([100, 400, 2000], speeds=[1.0, 1.0, 10.0])
    model = DeadlineParticipation.from_hospitals(hospitals, deadline=250.0, epochs=1)
    # Times are 100, 400 and 200: the middle site misses the deadline despite being smaller than the last.
    assert model.compute_times(["site_0", "site_1", "site_2"]) == {"site_0": 100.0, "site_1": 400.0, "site_2": 200.0}
    assert model.select(1, ["site_0", "site_1", "site_2"], np.random.default_rng(0)) == ["site_0", "site_2"]


def test_deadline_more_epochs_miss_more():
    hospitals = _hospitals([100, 400, 2000], speeds=[1.0, 1.0, 10.0])
    rng = np.random.default_rng(0)
    two_epochs = DeadlineParticipation.from_hospitals(hospitals, deadline=250.0, epochs=2)
    assert two_epochs.select(1, ["site_0", "site_1", "site_2"], rng) == ["site_0"]


def test_deadline_jitter_sometimes_misses():
    model = DeadlineParticipation(10.0, site_sizes={"a": 9}, speeds={"a": 1.0}, jitter=0.5)
    rng = np.random.default_rng(5)
    responses = [bool(model.select(r, ["a"], rng)) for r in range(400)]
    # exp(0.5 z) <= 10 / 9 when z <= 0.21: about 58 % of rounds.
    assert 0.45 < np.mean(responses) < 0.70


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deadline": 0.0}, "deadline must be a positive finite number, got 0.0"),
        ({"site_sizes": {"a": -5}}, r"site_sizes must all be positive, got -5"),
        ({"speeds": {"a": 0.0}}, r"speeds\['a'\] must be a positive finite number, got 0.0"),
        ({"jitter": -1.0}, "jitter must be a non-negative finite number, got -1.0"),
    ],
)
def test_deadline_rejects_invalid_configuration(kwargs, message):
    arguments = {"deadline": 5.0, "site_sizes": {"a": 10}, "speeds": {"a": 1.0}} | kwargs
    deadline = arguments.pop("deadline")
    with pytest.raises(ValueError, match=message):
        DeadlineParticipation(deadline, **arguments)


def test_smallest_sites_ties_keep_order():
    assert smallest_sites(SIZES, 2) == ["clinic_a", "clinic_b"]
    assert smallest_sites({"x": 300, "y": 20, "z": 40}, 2) == ["y", "z"]


def test_smallest_sites_rejects_count_above_k():
    with pytest.raises(ValueError, match="count is 6 but there are only 5 sites"):
        smallest_sites(SIZES, 6)


def test_drop_smallest_sites_is_fixed_dropout():
    model = drop_smallest_sites(SIZES, 2)
    assert isinstance(model, FixedDropout)
    assert model.select(1, SITES, np.random.default_rng(0)) == ["academic", "clinic_c", "clinic_d"]


def test_empty_round_recorded_in_history():
    hospitals = _hospitals([30, 60])
    history = run_federated(hospitals, LinearRegression(), rounds=3, local=LocalTrainingConfig(),
                            rng=np.random.default_rng(0),
                            participation=BernoulliParticipation({"site_0": 0.0, "site_1": 0.0}))
    assert history.empty_rounds == [1, 2, 3]
    assert all(r.status == "empty" for r in history.rounds)
    np.testing.assert_array_equal(history.final_parameters, history.initial_parameters)


def test_deadline_in_driver_drops_slow_site():
    hospitals = _hospitals([40, 400], speeds=[1.0, 1.0])
    participation = DeadlineParticipation.from_hospitals(hospitals, deadline=100.0)
    history = run_federated(hospitals, LinearRegression(), rounds=2, local=LocalTrainingConfig(),
                            rng=np.random.default_rng(0), participation=participation)
    assert [r.participants for r in history.rounds] == [("site_0",), ("site_0",)]


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.floats(min_value=0.01, max_value=0.5), st.integers(0, 2**31))
def test_one_site_fedavg_equals_local_training(num_records, learning_rate, seed):
    experiment = make_linear_sites([num_records], np.random.default_rng(seed))
    X, y = experiment.datasets[0]
    config = LocalTrainingConfig(epochs=3, learning_rate=learning_rate)
    history = run_federated([Hospital("only", X, y)], LinearRegression(), rounds=1, local=config,
                            rng=np.random.default_rng(seed), participation=FullParticipation())

    # Independent reference: three full-batch gradient steps written out here.
    w = np.zeros(X.shape[1])
    for _ in range(3):
        w = w - learning_rate * (2.0 / num_records) * X.T @ (X @ w - y)
    np.testing.assert_allclose(history.final_parameters, w, rtol=1e-10, atol=1e-12)
