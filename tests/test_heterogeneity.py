"""Tests for client drift, FedProx and personalization."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab.data import default_federation, make_risk_cohorts
from fedmed_lab.heterogeneity import (
    client_drift,
    drift_grid,
    fedavg_contraction,
    fedavg_fixed_point,
    local_affine_map,
    make_drift_sites,
    personalize,
    pooled_least_squares,
    pooled_logistic_optimum,
    scale_heterogeneity,
    site_metric_summary,
)
from fedmed_lab.models import LinearRegression, LogisticRegression
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig, local_train

SIZES = [40, 80, 600, 120, 60]


def _drift_sites(heterogeneity=0.3, seed=0):
    return make_drift_sites(SIZES, np.random.default_rng(seed), heterogeneity=heterogeneity).datasets


def test_pooled_least_squares_matches_lstsq():
    datasets = _drift_sites()
    X = np.vstack([X for X, _ in datasets])
    y = np.concatenate([y for _, y in datasets])
    np.testing.assert_allclose(pooled_least_squares(datasets), np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10)


@pytest.mark.parametrize("proximal_mu", [0.0, 0.1, 1.0])
def test_affine_map_matches_local_train(proximal_mu):
    X, y = _drift_sites()[1]
    config = LocalTrainingConfig(epochs=7, learning_rate=0.5, proximal_mu=proximal_mu)
    start = np.array([0.3, -1.0, 2.0])
    P, c = local_affine_map(X, y, epochs=7, learning_rate=0.5, proximal_mu=proximal_mu)
    trained = local_train(LinearRegression(), start, X, y, config, np.random.default_rng(0))
    np.testing.assert_allclose(P @ start + c, trained, rtol=1e-10)


def test_one_epoch_fixed_point_is_pooled_optimum():
    datasets = _drift_sites(heterogeneity=0.8)
    np.testing.assert_allclose(fedavg_fixed_point(datasets, epochs=1, learning_rate=0.05),
                               pooled_least_squares(datasets), rtol=1e-9)


def test_fixed_point_matches_many_rounds():
    datasets = _drift_sites(heterogeneity=0.5)
    hospitals = [Hospital(f"s{k}", X, y) for k, (X, y) in enumerate(datasets)]
    config = LocalTrainingConfig(epochs=10, learning_rate=0.3)
    history = run_federated(hospitals, LinearRegression(), rounds=300, local=config, rng=np.random.default_rng(0))
    fixed_point = fedavg_fixed_point(datasets, epochs=10, learning_rate=0.3)
    np.testing.assert_allclose(history.final_parameters, fixed_point, rtol=1e-8)
    assert np.linalg.norm(fixed_point - pooled_least_squares(datasets)) > 1e-2


def test_drift_grows_with_heterogeneity_and_epochs():
    grid = {h: drift_grid(SIZES, heterogeneity=h, proximal_mu=0.0, epochs=[1, 5, 20]) for h in (0.0, 0.3, 1.0)}
    for curve in grid.values():
        assert curve[0] < 1e-10
        assert curve[1] < curve[2]
    assert grid[0.0][2] < 0.01 < grid[0.3][2] < grid[1.0][2]


def test_fedprox_reduces_drift_monotonically():
    datasets = _drift_sites(heterogeneity=0.3)
    drifts = [client_drift(datasets, epochs=20, learning_rate=0.5, proximal_mu=mu) for mu in (0.0, 0.01, 0.1, 1.0)]
    assert drifts == sorted(drifts, reverse=True)
    assert drifts[-1] < 0.5 * drifts[0]


def test_widget_extremes_run():
    for heterogeneity in (0.0, 1.0):
        for mu in (0.0, 1.0):
            curve = drift_grid(SIZES, heterogeneity=heterogeneity, proximal_mu=mu, epochs=[1, 30])
            assert np.all(np.isfinite(curve))


def test_unstable_learning_rate_rejected():
    X, y = _drift_sites()[2]
    with pytest.raises(ValueError, match="makes local training diverge at this site"):
        local_affine_map(X, y, epochs=1, learning_rate=50.0)


def test_negative_heterogeneity_rejected():
    with pytest.raises(ValueError, match="heterogeneity must be a non-negative finite number, got -0.5"):
        make_drift_sites(SIZES, np.random.default_rng(0), heterogeneity=-0.5)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_one_site_has_no_drift(epochs, proximal_mu, seed):
    datasets = make_drift_sites([50], np.random.default_rng(seed), heterogeneity=0.5).datasets
    assert client_drift(datasets, epochs=epochs, learning_rate=0.05, proximal_mu=proximal_mu) < 1e-8


def test_scale_heterogeneity_zero_keeps_prevalence():
    specs = scale_heterogeneity(default_federation(), 0.0)
    assert all(s.case_mix == 0.0 and s.concept_shift == 0.0 and s.lab_bias == 0.0 for s in specs)
    assert [s.prevalence for s in specs] == [s.prevalence for s in default_federation()]


def _cohort_hospitals():
    cohorts = make_risk_cohorts(default_federation(), np.random.default_rng(1))
    return cohorts, [c.to_hospital() for c in cohorts]


def test_pooled_logistic_optimum_has_zero_gradient():
    cohorts, _ = _cohort_hospitals()
    model = LogisticRegression(l2=1e-3)
    datasets = [(c.X_train, c.y_train) for c in cohorts]
    params = pooled_logistic_optimum(datasets, l2=1e-3)
    X = np.vstack([X for X, _ in datasets])
    y = np.concatenate([y for _, y in datasets])
    assert np.linalg.norm(model.gradient(params, X, y)) < 1e-10


def test_personalize_lowers_each_site_training_loss():
    cohorts, hospitals = _cohort_hospitals()
    model = LogisticRegression(l2=1e-3)
    global_parameters = pooled_logistic_optimum([(c.X_train, c.y_train) for c in cohorts], l2=1e-3)
    tuned = personalize(hospitals, global_parameters, model, LocalTrainingConfig(epochs=20, learning_rate=0.5),
                        np.random.default_rng(0))
    for hospital in hospitals:
        before, _ = hospital.local_loss_and_gradient(global_parameters, model)
        after, _ = hospital.local_loss_and_gradient(tuned[hospital.site_id], model)
        assert after < before


def test_site_metric_summary_worst_site():
    cohorts, hospitals = _cohort_hospitals()
    model = LogisticRegression(l2=1e-3)
    params = pooled_logistic_optimum([(c.X_train, c.y_train) for c in cohorts], l2=1e-3)
    summary = site_metric_summary(hospitals, model, {h.site_id: params for h in hospitals})
    per_site = [summary[h.site_id] for h in hospitals]
    assert summary["min"] == min(per_site)
    assert summary["mean"] == pytest.approx(np.mean(per_site))


def test_contraction_predicts_round_error():
    datasets = _drift_sites(heterogeneity=0.3)
    radius = fedavg_contraction(datasets, epochs=5, learning_rate=0.5)
    fixed_point = fedavg_fixed_point(datasets, epochs=5, learning_rate=0.5)
    hospitals = [Hospital(f"s{k}", X, y) for k, (X, y) in enumerate(datasets)]
    config = LocalTrainingConfig(epochs=5, learning_rate=0.5)
    history = run_federated(hospitals, LinearRegression(), rounds=60, local=config, rng=np.random.default_rng(0))
    errors = [np.linalg.norm(r.parameters - fixed_point) for r in history.rounds]
    # The error ratio over the last rounds approaches the spectral radius.
    assert errors[-1] / errors[-2] == pytest.approx(radius, rel=1e-3)


def test_fedprox_slows_contraction():
    datasets = _drift_sites(heterogeneity=0.3)
    radii = [fedavg_contraction(datasets, epochs=20, learning_rate=0.5, proximal_mu=mu) for mu in (0.0, 0.1, 1.0)]
    assert radii == sorted(radii)
    assert radii[-1] < 1.0
