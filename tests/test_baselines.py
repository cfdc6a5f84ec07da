"""Tests for local-only and pooled baselines, the comparison table and communication counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.baselines import (
    compare_methods,
    convergence_run,
    federated_training_loss,
    round_bytes,
    rounds_to_target,
    train_fedavg,
    train_local_only,
    train_pooled,
)
from fedmed_lab.data import HospitalSpec, make_risk_cohorts
from fedmed_lab.models import LogisticRegression
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig, local_train

MODEL = LogisticRegression()


@pytest.fixture(scope="module")
def cohorts():
    specs = [
        HospitalSpec("clinic", 60, case_mix=-0.5, prevalence=0.2, concept_shift=0.5),
        HospitalSpec("centre", 2000, case_mix=0.5, prevalence=0.3),
        HospitalSpec("district", 400, prevalence=0.1, lab_bias=0.8),
    ]
    return make_risk_cohorts(specs, np.random.default_rng(11))


@pytest.fixture(scope="module")
def hospitals(cohorts):
    return [c.to_hospital() for c in cohorts]


def test_local_only_uses_each_site_alone(cohorts, hospitals):
    local = LocalTrainingConfig(epochs=30, learning_rate=0.5)
    models = train_local_only(hospitals, MODEL, local=local, rng=np.random.default_rng(0))
    assert list(models) == ["clinic", "centre", "district"]
    for cohort in cohorts:
        expected = local_train(MODEL, np.zeros(11), cohort.X_train, cohort.y_train, local, np.random.default_rng(0))
        assert np.allclose(models[cohort.name], expected)
    assert not np.allclose(models["clinic"], models["centre"])


def test_pooled_trains_on_stacked_records(cohorts):
    local = LocalTrainingConfig(epochs=20, learning_rate=0.5)
    pooled = train_pooled(cohorts, MODEL, local=local, rng=np.random.default_rng(0))
    X = np.vstack([c.X_train for c in cohorts])
    y = np.concatenate([c.y_train for c in cohorts])
    assert np.allclose(pooled, local_train(MODEL, np.zeros(11), X, y, local, np.random.default_rng(0)))


def test_one_fedavg_step_equals_one_pooled_step(cohorts, hospitals):
    # With one full-batch epoch, n_k / N weighting turns FedAvg into gradient descent on the pooled loss.
    local = LocalTrainingConfig(epochs=1, learning_rate=0.7)
    federated = train_fedavg(hospitals, MODEL, rounds=3, local=local, rng=np.random.default_rng(0))
    pooled = train_pooled(cohorts, MODEL, local=LocalTrainingConfig(epochs=3, learning_rate=0.7),
                          rng=np.random.default_rng(0))
    assert np.allclose(federated, pooled, atol=1e-12)

    # The unweighted mean of the same updates does not match, because the sites differ in size.
    sites = [(c.X_train, c.y_train) for c in cohorts]
    start = np.zeros(11)
    unweighted = np.mean([local_train(MODEL, start, X, y, local, np.random.default_rng(0)) for X, y in sites], axis=0)
    one_pooled_step = train_pooled(cohorts, MODEL, local=local, rng=np.random.default_rng(0))
    assert np.linalg.norm(unweighted - one_pooled_step) > 1e-3


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(5, 80),
    rounds=st.integers(1, 4),
    epochs=st.integers(1, 4),
    learning_rate=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
def test_fedavg_over_one_site_equals_local_training(n, rounds, epochs, learning_rate, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (rng.random(n) < 0.4).astype(float)
    hospital = Hospital("only", X, y)
    local = LocalTrainingConfig(epochs=epochs, learning_rate=learning_rate)
    federated = train_fedavg([hospital], MODEL, rounds=rounds, local=local, rng=np.random.default_rng(0))
    alone = local_train(MODEL, np.zeros(4), X, y, LocalTrainingConfig(epochs=rounds * epochs, learning_rate=learning_rate),
                        np.random.default_rng(0))
    assert np.allclose(federated, alone, rtol=1e-10, atol=1e-12)


def test_comparison_table_values_and_summary(hospitals):
    local = LocalTrainingConfig(epochs=40, learning_rate=0.5)
    per_site = train_local_only(hospitals, MODEL, local=local, rng=np.random.default_rng(0))
    shared = train_fedavg(hospitals, MODEL, rounds=8, local=LocalTrainingConfig(epochs=5, learning_rate=0.5),
                          rng=np.random.default_rng(0))
    table = compare_methods(hospitals, MODEL, {"local-only": per_site, "FedAvg": shared})
    assert table.methods == ["local-only", "FedAvg"]
    assert table.site_ids == ("clinic", "centre", "district")
    for hospital in hospitals:
        assert table.value("FedAvg", hospital.site_id) == hospital.evaluate(shared, MODEL).metrics["auroc"]
        assert table.value("local-only", hospital.site_id) == hospital.evaluate(per_site[hospital.site_id], MODEL).metrics["auroc"]

    summary = table.summary("FedAvg")
    sizes = np.array(table.num_test_examples, dtype=float)
    values = np.array([table.value("FedAvg", s) for s in table.site_ids])
    assert summary.weighted_mean == pytest.approx(values @ sizes / sizes.sum())
    assert summary.worst == values.min()

    text = table.format()
    assert text.splitlines()[0].split() == ["auroc", "n_test", "local-only", "FedAvg"]
    assert "weighted mean" in text
    assert "worst site" in text
    assert table.winner("clinic", ["local-only", "FedAvg"]) in ("local-only", "FedAvg")


def test_winner_follows_metric_direction(hospitals):
    bad = np.zeros(11)
    good = train_fedavg(hospitals, MODEL, rounds=5, local=LocalTrainingConfig(epochs=5, learning_rate=0.5),
                        rng=np.random.default_rng(0))
    by_loss = compare_methods(hospitals, MODEL, {"zero": bad, "trained": good}, metric="loss")
    assert by_loss.winner("centre", ["zero", "trained"]) == "trained"
    by_auroc = compare_methods(hospitals, MODEL, {"zero": bad, "trained": good}, metric="auroc")
    assert by_auroc.winner("centre", ["zero", "trained"]) == "trained"


def test_comparison_missing_site_parameters(hospitals):
    with pytest.raises(ValueError, match=r"method 'local-only' has no parameters for sites \['district'\]"):
        compare_methods(hospitals, MODEL, {"local-only": {"clinic": np.zeros(11), "centre": np.zeros(11)}})


def test_round_bytes_match_the_round_driver(hospitals):
    history = run_federated(hospitals, MODEL, rounds=2, local=LocalTrainingConfig(), rng=np.random.default_rng(0))
    down, up = round_bytes(num_parameters=11, num_sites=3, num_metrics=1)
    assert down == 3 * 11 * 8 == history.rounds[0].bytes_down
    assert up == 3 * (11 * 8 + 8 + 8) == history.rounds[0].bytes_up
    assert history.total_bytes() == 2 * (down + up)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_parameters": 0, "num_sites": 3}, "num_parameters must be a positive integer, got 0"),
        ({"num_parameters": 4, "num_sites": -1}, "num_sites must be a positive integer, got -1"),
        ({"num_parameters": 4, "num_sites": 2, "num_metrics": -2}, "num_metrics must be a non-negative integer, got -2"),
    ],
)
def test_round_bytes_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        round_bytes(**kwargs)


def test_rounds_to_target():
    assert rounds_to_target([0.9, 0.5, 0.4, 0.3], 0.45) == 3
    assert rounds_to_target([0.9, 0.5], 0.9) == 1
    assert rounds_to_target([0.9, 0.5], 0.1) is None
    assert rounds_to_target([], 0.1) is None


# The slider ranges of the chapter 3 widget.
@pytest.mark.parametrize("epochs", [1, 20])
@pytest.mark.parametrize("learning_rate", [0.05, 2.0])
def test_convergence_run_at_slider_extremes(hospitals, epochs, learning_rate):
    run = convergence_run(hospitals, MODEL, epochs=epochs, learning_rate=learning_rate, rounds=30,
                          target_loss=0.45, rng=np.random.default_rng(0))
    assert run.global_losses.shape == (30,)
    assert np.all(np.isfinite(run.global_losses))
    assert run.bytes_per_round == sum(round_bytes(num_parameters=11, num_sites=3))
    if run.rounds_to_target is None:
        assert run.bytes_to_target is None
    else:
        assert run.bytes_to_target == run.rounds_to_target * run.bytes_per_round


def test_federated_loss_equals_pooled_loss(cohorts, hospitals):
    parameters = np.linspace(-0.5, 0.5, 11)
    X = np.vstack([c.X_train for c in cohorts])
    y = np.concatenate([c.y_train for c in cohorts])
    assert federated_training_loss(hospitals, parameters, MODEL) == pytest.approx(MODEL.loss(parameters, X, y), rel=1e-12)
    # The unweighted mean of the site losses is a different number when sizes differ.
    site_losses = [MODEL.loss(parameters, c.X_train, c.y_train) for c in cohorts]
    assert abs(np.mean(site_losses) - MODEL.loss(parameters, X, y)) > 1e-3


def test_convergence_run_records_global_loss(hospitals):
    run = convergence_run(hospitals, MODEL, epochs=3, learning_rate=0.5, rounds=4, target_loss=0.0,
                          rng=np.random.default_rng(0))
    history = run_federated(hospitals, MODEL, rounds=4, local=LocalTrainingConfig(epochs=3, learning_rate=0.5),
                            rng=np.random.default_rng(0))
    for loss, record in zip(run.global_losses, history.rounds):
        assert loss == pytest.approx(federated_training_loss(hospitals, record.parameters, MODEL))
    assert np.allclose(run.local_losses, history.train_losses())
    assert run.rounds_to_target is None


def test_more_local_epochs_reach_target_in_fewer_rounds(hospitals):
    runs = [convergence_run(hospitals, MODEL, epochs=e, learning_rate=0.2, rounds=60, target_loss=0.45,
                            rng=np.random.default_rng(0)) for e in (1, 10)]
    assert runs[0].rounds_to_target is not None and runs[1].rounds_to_target is not None
    assert runs[1].rounds_to_target < runs[0].rounds_to_target / 3
    assert runs[1].bytes_to_target < runs[0].bytes_to_target


def test_invalid_training_settings_are_named(hospitals):
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        convergence_run(hospitals, MODEL, epochs=0, learning_rate=0.1, rounds=2, target_loss=0.4,
                        rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="learning_rate must be a positive finite number, got -0.1"):
        train_local_only(hospitals, MODEL, local=LocalTrainingConfig(learning_rate=-0.1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="cohorts is empty"):
        train_pooled([], MODEL, local=LocalTrainingConfig(), rng=np.random.default_rng(0))
