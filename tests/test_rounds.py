import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.aggregation import unweighted_fedavg
from fedmed_lab.data import HospitalSpec, make_risk_cohorts
from fedmed_lab.models import LinearRegression, LogisticRegression
from fedmed_lab.participation import FixedDropout
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig, local_train


def linear_hospitals(sizes, seed=0):
    rng = np.random.default_rng(seed)
    hospitals = []
    for k, n in enumerate(sizes):
        X = rng.standard_normal((n, 3))
        y = X @ (np.array([1.0, -2.0, 0.5]) + k) + 0.1 * rng.standard_normal(n)
        hospitals.append(Hospital(f"site{k}", X, y))
    return hospitals


class NobodyInRound:
    def __init__(self, empty_round):
        self.empty_round = empty_round

    def select(self, server_round, site_ids, rng):
        return [] if server_round == self.empty_round else list(site_ids)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.floats(0.01, 0.2), st.integers(1, 3))
def test_fedavg_over_one_site_equals_local_training(epochs, learning_rate, rounds):
    hospital = linear_hospitals([37])[0]
    X, y = hospital._Hospital__X_train, hospital._Hospital__y_train
    config = LocalTrainingConfig(epochs=epochs, learning_rate=learning_rate)
    history = run_federated([hospital], LinearRegression(), rounds=rounds, local=config, rng=np.random.default_rng(0))

    expected = np.zeros(3)
    for _ in range(rounds):
        expected = local_train(LinearRegression(), expected, X, y, config, np.random.default_rng(0))
    np.testing.assert_allclose(history.final_parameters, expected, rtol=1e-12)


def test_weighted_and_unweighted_runs_differ_for_unequal_sites():
    hospitals = linear_hospitals([10, 500])
    config = LocalTrainingConfig(epochs=1, learning_rate=0.1)
    weighted = run_federated(hospitals, LinearRegression(), rounds=3, local=config, rng=np.random.default_rng(1))
    unweighted = run_federated(hospitals, LinearRegression(), rounds=3, local=config, rng=np.random.default_rng(1),
                               aggregator=unweighted_fedavg)
    assert np.linalg.norm(weighted.final_parameters - unweighted.final_parameters) > 0.1


def test_one_round_is_weighted_average_of_local_models():
    hospitals = linear_hospitals([10, 30])
    config = LocalTrainingConfig(epochs=2, learning_rate=0.05)
    history = run_federated(hospitals, LinearRegression(), rounds=1, local=config, rng=np.random.default_rng(2))
    local_models = [h.fit(np.zeros(3), LinearRegression(), config, np.random.default_rng(0)).parameters
                    for h in hospitals]
    np.testing.assert_allclose(history.final_parameters, 0.25 * local_models[0] + 0.75 * local_models[1])


def test_empty_round_is_recorded_not_averaged(caplog):
    hospitals = linear_hospitals([10, 30])
    config = LocalTrainingConfig()
    with caplog.at_level(logging.WARNING, logger="fedmed_lab"):
        history = run_federated(hospitals, LinearRegression(), rounds=3, local=config,
                                rng=np.random.default_rng(0), participation=NobodyInRound(2))
    assert history.empty_rounds == [2]
    assert history.rounds[1].participants == ()
    assert np.isnan(history.rounds[1].train_loss)
    np.testing.assert_array_equal(history.rounds[1].parameters, history.rounds[0].parameters)
    assert "round 2: no site responded" in caplog.text


def test_dropped_site_absent_from_round():
    hospitals = linear_hospitals([10, 30, 20])
    history = run_federated(hospitals, LinearRegression(), rounds=2, local=LocalTrainingConfig(),
                            rng=np.random.default_rng(0), participation=FixedDropout(["site1"], rounds=[1]))
    assert history.rounds[0].participants == ("site0", "site2")
    assert history.rounds[0].num_examples == (10, 20)
    assert history.rounds[1].participants == ("site0", "site1", "site2")


def test_bytes_counted_per_round():
    hospitals = linear_hospitals([10, 30])
    history = run_federated(hospitals, LinearRegression(), rounds=1, local=LocalTrainingConfig(),
                            rng=np.random.default_rng(0))
    record = history.rounds[0]
    assert record.bytes_down == 2 * 3 * 8
    # Each update: 3 float64 parameters, the count, and one metric (train_loss).
    assert record.bytes_up == 2 * (3 * 8 + 8 + 8)


def test_same_seed_same_history():
    cohorts = make_risk_cohorts([HospitalSpec("a", 200), HospitalSpec("b", 300, case_mix=0.4)],
                                np.random.default_rng(4))
    config = LocalTrainingConfig(epochs=2, learning_rate=0.2, batch_size=16)
    runs = [run_federated([c.to_hospital() for c in cohorts], LogisticRegression(), rounds=3, local=config,
                          rng=np.random.default_rng(9), evaluate=True) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].final_parameters, runs[1].final_parameters)
    assert runs[0].rounds[-1].evaluation_metric("auroc") == runs[1].rounds[-1].evaluation_metric("auroc")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rounds": 0}, ValueError, "rounds must be a positive integer, got 0"),
        ({"rng": 0}, TypeError, "rng must be a numpy.random.Generator, got int"),
    ],
)
def test_invalid_run_arguments_rejected(kwargs, error, message):
    arguments = {"rounds": 1, "rng": np.random.default_rng(0), "local": LocalTrainingConfig()}
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        run_federated(linear_hospitals([5]), LinearRegression(), **arguments)


def test_duplicate_site_ids_rejected():
    a, b = linear_hospitals([5, 6])
    b.site_id = a.site_id
    with pytest.raises(ValueError, match="site ids must be unique"):
        run_federated([a, b], LinearRegression(), rounds=1, local=LocalTrainingConfig(), rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"learning_rate": -0.1}, "learning_rate must be a positive finite number, got -0.1"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"proximal_mu": -1.0}, "proximal_mu must be a non-negative finite number, got -1.0"),
    ],
)
def test_invalid_local_config_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalTrainingConfig(**kwargs)


def test_proximal_term_pulls_toward_global_model():
    hospital = linear_hospitals([40])[0]
    X, y = hospital._Hospital__X_train, hospital._Hospital__y_train
    start = np.zeros(3)
    plain = local_train(LinearRegression(), start, X, y, LocalTrainingConfig(epochs=20, learning_rate=0.05),
                        np.random.default_rng(0))
    proximal = local_train(LinearRegression(), start, X, y,
                           LocalTrainingConfig(epochs=20, learning_rate=0.05, proximal_mu=5.0),
                           np.random.default_rng(0))
    assert np.linalg.norm(proximal - start) < 0.5 * np.linalg.norm(plain - start)
