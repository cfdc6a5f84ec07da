"""Tests for federated evaluation: per-site metrics, their summary and the chapter 2 scenario."""

from __future__ import annotations

import numpy as np
import pytest

from fedmed_lab import FedMedWarning
from fedmed_lab.data import HospitalSpec, default_federation, make_risk_cohorts
from fedmed_lab.evaluation import (
    evaluate_sites,
    pooled_test_metrics,
    replace_site,
    site_metric_scenario,
    summarise_evaluations,
)
from fedmed_lab.metrics import evaluate_classifier
from fedmed_lab.models import LogisticRegression
from fedmed_lab.sites import SiteEvaluation

MODEL = LogisticRegression()


@pytest.fixture(scope="module")
def federation():
    specs = default_federation()
    cohorts = make_risk_cohorts(specs, np.random.default_rng(0))
    # A fixed, reasonable model: the academic centre's true outcome coefficients and intercept.
    parameters = np.append(cohorts[2].coefficients, cohorts[2].intercept)
    return specs, cohorts, parameters


def _evaluation(site, n, **metrics):
    return SiteEvaluation(site_id=site, num_examples=n, metrics=metrics)


def test_summary_weights_by_test_size():
    evaluations = [_evaluation("small", 10, auroc=0.6, brier=0.30), _evaluation("large", 990, auroc=0.9, brier=0.10)]
    summary = summarise_evaluations(evaluations, "auroc")
    assert summary.weighted_mean == pytest.approx(0.6 * 0.01 + 0.9 * 0.99)
    assert summary.mean == pytest.approx(0.75)
    assert summary.worst == 0.6
    assert summary.worst_site == "small"
    assert summary.spread == pytest.approx(0.3)


def test_summary_worst_brier_is_the_largest():
    evaluations = [_evaluation("a", 10, brier=0.30), _evaluation("b", 990, brier=0.10)]
    summary = summarise_evaluations(evaluations, "brier")
    assert summary.worst == 0.30
    assert summary.worst_site == "a"


def test_summary_rejects_bad_input():
    with pytest.raises(ValueError, match="evaluations is empty"):
        summarise_evaluations([], "auroc")
    with pytest.raises(ValueError, match=r"metric 'auroc' was not reported by \['a'\]"):
        summarise_evaluations([_evaluation("a", 5, brier=0.2)], "auroc")
    with pytest.raises(ValueError, match=r"metric 'auroc' is NaN at \['b'\]"):
        summarise_evaluations([_evaluation("a", 5, auroc=0.7), _evaluation("b", 5, auroc=float("nan"))], "auroc")


def test_evaluate_sites_matches_direct_metrics(federation):
    _, cohorts, parameters = federation
    evaluations = evaluate_sites([c.to_hospital() for c in cohorts], parameters, MODEL)
    for cohort, evaluation in zip(cohorts, evaluations):
        expected = evaluate_classifier(cohort.y_test, MODEL.predict_proba(parameters, cohort.X_test))
        assert evaluation.site_id == cohort.name
        assert evaluation.num_examples == cohort.y_test.size
        assert evaluation.metrics["auroc"] == pytest.approx(expected["auroc"])
        assert evaluation.metrics["brier"] == pytest.approx(expected["brier"])


def test_pooled_metric_differs_from_weighted_mean(federation):
    _, cohorts, parameters = federation
    pooled = pooled_test_metrics(cohorts, parameters, MODEL)
    X = np.vstack([c.X_test for c in cohorts])
    y = np.concatenate([c.y_test for c in cohorts])
    assert pooled["auroc"] == pytest.approx(evaluate_classifier(y, MODEL.predict_proba(parameters, X))["auroc"])
    summary = summarise_evaluations(evaluate_sites([c.to_hospital() for c in cohorts], parameters, MODEL), "auroc")
    # Prevalence differs between sites, so pooling adds between-site ranking to the AUROC.
    assert abs(pooled["auroc"] - summary.weighted_mean) > 1e-4


def test_replace_site_keeps_the_others(federation):
    specs, cohorts, _ = federation
    replaced = replace_site(cohorts, HospitalSpec("rural_clinic", 300, prevalence=0.3), np.random.default_rng(1))
    assert replaced[0].y_train.size + replaced[0].y_test.size == 300
    assert all(new is old for new, old in zip(replaced[1:], cohorts[1:]))
    with pytest.raises(ValueError, match="no site named 'mars_base' to replace"):
        replace_site(cohorts, HospitalSpec("mars_base", 30), np.random.default_rng(1))


# The slider ranges of the chapter 2 widget.
SIZES = (100, 3000)
PREVALENCES = (0.05, 0.4)
LAB_BIASES = (-1.5, 1.5)
CONCEPT_SHIFTS = (0.0, 2.0)


@pytest.mark.parametrize("num_patients", SIZES)
@pytest.mark.parametrize("prevalence", PREVALENCES)
def test_scenario_at_slider_extremes(federation, num_patients, prevalence):
    specs, cohorts, parameters = federation
    for lab_bias in LAB_BIASES:
        for concept_shift in CONCEPT_SHIFTS:
            scenario = site_metric_scenario(cohorts, specs[0], parameters, MODEL, num_patients=num_patients,
                                            prevalence=prevalence, lab_bias=lab_bias, concept_shift=concept_shift,
                                            rng=np.random.default_rng(2))
            rural = scenario.evaluations[0]
            assert rural.site_id == "rural_clinic"
            assert rural.num_examples == round(0.3 * num_patients)
            assert 0.0 <= rural.metrics["auroc"] <= 1.0
            assert 0.0 <= scenario.pooled["auroc"] <= 1.0
            assert scenario.summary.worst <= scenario.summary.weighted_mean


def test_scenario_lab_bias_moves_calibration_not_site_auroc(federation):
    specs, cohorts, parameters = federation
    results = [
        site_metric_scenario(cohorts, specs[0], parameters, MODEL, num_patients=2000, prevalence=0.2,
                             lab_bias=bias, concept_shift=0.0, rng=np.random.default_rng(3))
        for bias in (0.0, 1.0)
    ]
    # The bias shifts every logit at the site by the same amount: ranking unchanged, risk over-predicted.
    assert results[1].evaluations[0].metrics["auroc"] == pytest.approx(results[0].evaluations[0].metrics["auroc"])
    shift = (results[1].evaluations[0].metrics["calibration_in_the_large"]
             - results[0].evaluations[0].metrics["calibration_in_the_large"])
    assert shift > 0.05


def test_scenario_concept_shift_hidden_by_weighted_mean(federation):
    specs, cohorts, parameters = federation
    base = site_metric_scenario(cohorts, specs[0], parameters, MODEL, num_patients=120, prevalence=0.3,
                                lab_bias=0.0, concept_shift=0.0, rng=np.random.default_rng(4))
    shifted = site_metric_scenario(cohorts, specs[0], parameters, MODEL, num_patients=120, prevalence=0.3,
                                   lab_bias=0.0, concept_shift=2.0, rng=np.random.default_rng(4))
    drop_at_site = base.evaluations[0].metrics["auroc"] - shifted.evaluations[0].metrics["auroc"]
    drop_weighted = base.summary.weighted_mean - shifted.summary.weighted_mean
    assert drop_at_site > 0.1
    assert drop_weighted < drop_at_site / 50


def test_scenario_single_class_test_split_raises(federation):
    specs, cohorts, parameters = federation
    with pytest.warns(FedMedWarning, match="AUROC is undefined"):
        with pytest.raises(ValueError, match=r"is NaN at \['rural_clinic'\]"):
            site_metric_scenario(cohorts, specs[0], parameters, MODEL, num_patients=10, prevalence=0.01,
                                 lab_bias=0.0, concept_shift=0.0, rng=np.random.default_rng(0))


def test_scenario_invalid_override_names_value(federation):
    specs, cohorts, parameters = federation
    with pytest.raises(ValueError, match=r"prevalence of 'rural_clinic' must be in \(0, 1\), got 1.2"):
        site_metric_scenario(cohorts, specs[0], parameters, MODEL, num_patients=100, prevalence=1.2,
                             lab_bias=0.0, concept_shift=0.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="must all be positive, got -5"):
        site_metric_scenario(cohorts, specs[0], parameters, MODEL, num_patients=-5, prevalence=0.1,
                             lab_bias=0.0, concept_shift=0.0, rng=np.random.default_rng(0))
