"""Tests for fedmed_lab.drift: drift measures from shared histograms, thresholds and the deployment."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fedmed_lab import drift
from fedmed_lab.data import FEATURE_NAMES, HospitalSpec, default_federation
from fedmed_lab.models import LogisticRegression

INTEGER_EDGES = np.arange(-0.5, 12.0, 1.0)


def _integer_samples(seed, shift=0.0, n=300, m=200):
    rng = np.random.default_rng(seed)
    reference = rng.poisson(4.0, size=n)
    current = rng.poisson(4.0 + shift, size=m)
    return np.clip(reference, 0, 11), np.clip(current, 0, 11)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_ks_from_histograms_matches_scipy_on_integers(seed, shift):
    reference, current = _integer_samples(seed, shift)
    statistic = drift.ks_statistic(drift.histogram_counts(reference, INTEGER_EDGES),
                                   drift.histogram_counts(current, INTEGER_EDGES))
    assert statistic == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)


def test_ks_from_coarse_histograms_never_exceeds_raw_ks():
    rng = np.random.default_rng(3)
    reference, current = rng.normal(0, 1, 400), rng.normal(0.3, 1, 300)
    binned = drift.ks_statistic(drift.histogram_counts(reference, drift.DEFAULT_BIN_EDGES),
                                drift.histogram_counts(current, drift.DEFAULT_BIN_EDGES))
    raw = stats.ks_2samp(reference, current).statistic
    assert binned <= raw + 1e-12
    assert binned > 0.5 * raw


def test_psi_matches_independent_jeffreys_divergence():
    reference = np.array([10, 40, 30, 20])
    current = np.array([25, 25, 25, 25])
    p = (reference + 0.5) / (reference + 0.5).sum()
    q = (current + 0.5) / (current + 0.5).sum()
    jeffreys = stats.entropy(p, q) + stats.entropy(q, p)
    assert drift.population_stability_index(reference, current) == pytest.approx(jeffreys, rel=1e-12)


def test_psi_zero_for_proportional_histograms():
    assert drift.population_stability_index([10, 20, 0, 30], [10, 20, 0, 30]) == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=3, max_size=8).filter(lambda c: sum(c) > 0),
       st.lists(st.integers(0, 50), min_size=3, max_size=8).filter(lambda c: sum(c) > 0))
def test_psi_and_ks_symmetric_and_non_negative(first, second):
    size = min(len(first), len(second))
    first, second = first[:size], second[:size]
    if sum(first) == 0 or sum(second) == 0:
        return
    psi = drift.population_stability_index(first, second)
    assert psi >= 0.0
    assert psi == pytest.approx(drift.population_stability_index(second, first), rel=1e-12, abs=1e-15)
    ks = drift.ks_statistic(first, second)
    assert 0.0 <= ks <= 1.0


@pytest.mark.parametrize("x", [0.3, 0.6, 0.9, 1.0, 1.2, 1.36, 1.63, 2.5])
def test_kolmogorov_sf_matches_scipy(x):
    assert drift.kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), abs=1e-10)


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.2])
def test_ks_threshold_uses_kolmogorov_quantile(rate):
    expected = stats.kstwobign.isf(rate) * math.sqrt((400 + 100) / (400 * 100))
    assert drift.ks_threshold(400, 100, false_alarm_rate=rate) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("df", [3, 9, 14])
@pytest.mark.parametrize("rate", [0.001, 0.01, 0.05])
def test_chi_square_isf_within_two_percent(df, rate):
    assert drift.chi_square_isf(rate, df) == pytest.approx(stats.chi2.isf(rate, df), rel=0.02)


def test_histogram_counts_rejects_values_outside_edges():
    with pytest.raises(ValueError, match=r"1 values lie outside the bin edges \[0.0, 1.0\]"):
        drift.histogram_counts([0.5, 2.0], [0.0, 0.5, 1.0])


def test_counts_with_different_bins_rejected():
    with pytest.raises(ValueError, match="same bins, got 3 and 4 bins"):
        drift.ks_statistic([1, 2, 3], [1, 2, 3, 4])


def test_empty_histogram_rejected():
    with pytest.raises(ValueError, match="current_counts is empty"):
        drift.population_stability_index([1, 2], [0, 0])


def test_false_alarm_rate_out_of_range_rejected():
    with pytest.raises(ValueError, match="false_alarm_rate must be in \\(0, 1\\), got 1.5"):
        drift.ks_threshold(10, 10, false_alarm_rate=1.5)


def test_privatized_counts_unbiased_with_laplace_scale():
    rng = np.random.default_rng(7)
    counts = np.full(20000, 1000.0)
    noisy = drift.privatize_counts(counts, epsilon=0.5, rng=rng)
    assert abs(noisy.mean() - 1000.0) < 0.1
    # Laplace with scale b has variance 2 b^2; b = 1 / epsilon = 2 gives 8.
    assert noisy.var() == pytest.approx(8.0, rel=0.05)


def test_privatized_counts_clipped_at_zero():
    noisy = drift.privatize_counts(np.zeros(1000), epsilon=0.1, rng=np.random.default_rng(0))
    assert noisy.min() == 0.0
    assert noisy.max() > 0.0


def test_histogram_noise_requires_rng():
    site = drift.simulate_deployment([HospitalSpec("a", 240)], months=2, rng=np.random.default_rng(0))[0]
    with pytest.raises(ValueError, match="epsilon was given without rng"):
        site.feature_histogram(0, "lactate", drift.DEFAULT_BIN_EDGES, epsilon=1.0)


def test_stable_site_false_alarm_rate_within_stated_rate():
    # 60 seeds x 15 monitored months = 900 stable site-months at a stated rate of 0.05.
    ks_alerts, psi_alerts = [], []
    for seed in range(60):
        timeline = drift.drift_strength_scan(0.0, seed=seed)
        ks_alerts.append(timeline.ks_alerts[0, timeline.reference_months:])
        psi_alerts.append(timeline.psi_alerts[0, timeline.reference_months:])
    ks_rate, _ = drift.measured_false_alarm_rate(ks_alerts)
    psi_rate, _ = drift.measured_false_alarm_rate(psi_alerts)
    # Upper bound: the stated rate plus three binomial standard errors at that rate.
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / 900)
    assert ks_rate <= bound
    assert psi_rate <= bound


def test_stable_site_alerts_sometimes_at_high_rate():
    # A detector that can never alert would pass the bound above; at a stated rate of 0.5 it must alert.
    alerts = [drift.drift_strength_scan(0.0, seed=seed, false_alarm_rate=0.5).psi_alerts[0, 3:] for seed in range(10)]
    assert np.mean(alerts) > 0.1


def test_injected_lab_bias_flagged_from_start_month():
    early_alerts = 0
    for seed in range(10):
        timeline = drift.drift_strength_scan(1.0, seed=seed)
        assert timeline.ks_alerts[0, 9:].all()
        early_alerts += int(timeline.ks_alerts[0, 3:9].sum())
    # 60 stable months before the change at a stated rate of 0.05: about 3 false alerts expected.
    assert early_alerts <= 8


def test_strongest_widget_setting_alerts_every_drifted_month():
    timeline = drift.drift_strength_scan(1.5, seed=0)
    assert timeline.ks_alerts[0, 9:].all()
    assert timeline.psi_alerts[0, 9:].all()


def test_weakest_widget_setting_matches_stable_site():
    timeline = drift.drift_strength_scan(0.0, seed=0)
    assert np.all(np.isnan(timeline.psi[0, :3]))
    assert timeline.ks_alerts[0, 9:].sum() <= 2


def test_deployment_events_change_only_their_site():
    events = [drift.DriftEvent("community_a", 6, lab_bias=0.8)]
    sites = drift.simulate_deployment(default_federation(), months=12, rng=np.random.default_rng(1), events=events)
    timeline = drift.monitor_deployment(sites, features=("lactate", "creatinine", "age"))
    assert timeline.first_alert("community_a") == 6
    mask = drift.stable_mask(timeline.site_ids, 12, events, reference_months=3)
    assert mask[timeline.site_ids.index("community_a")].sum() == 3
    assert timeline.ks_alerts[mask].mean() < 0.2


def test_prevalence_shift_invisible_in_features_visible_in_calibration():
    spec = HospitalSpec("site", 2400, prevalence=0.10)
    events = [drift.DriftEvent("site", 6, prevalence=0.30)]
    sites = drift.simulate_deployment([spec], months=12, rng=np.random.default_rng(2), events=events)
    timeline = drift.monitor_deployment(sites)
    assert timeline.ks_alerts[0, 6:].sum() <= 1

    # An intercept-only model predicting the old 10 % rate under-predicts once prevalence rises.
    parameters = np.zeros(len(FEATURE_NAMES) + 1)
    parameters[-1] = math.log(0.1 / 0.9)
    calibration = drift.performance_timeline(sites, parameters, LogisticRegression(), current_month=11)
    assert np.all(np.isnan(calibration[0, 9:]))
    assert np.nanmean(calibration[0, 6:9]) < -0.1
    assert abs(np.nanmean(calibration[0, :6])) < 0.05


def test_evaluation_withheld_until_labels_arrive():
    site = drift.simulate_deployment([HospitalSpec("a", 600)], months=6, rng=np.random.default_rng(0),
                                     label_delay=2)[0]
    parameters = np.zeros(len(FEATURE_NAMES) + 1)
    assert site.evaluate(3, parameters, LogisticRegression(), current_month=4) is None
    evaluation = site.evaluate(3, parameters, LogisticRegression(), current_month=5)
    assert evaluation.num_examples == site.monthly_volume(3)
    assert evaluation.metrics["brier"] == pytest.approx(0.25)


def test_unknown_event_site_rejected():
    with pytest.raises(ValueError, match=r"drift events name unknown sites \['nowhere'\]"):
        drift.simulate_deployment([HospitalSpec("a", 240)], months=2, rng=np.random.default_rng(0),
                                  events=[drift.DriftEvent("nowhere", 1, lab_bias=1.0)])


def test_deployment_reproducible_from_seed():
    first = drift.drift_strength_scan(0.4, seed=11)
    second = drift.drift_strength_scan(0.4, seed=11)
    np.testing.assert_array_equal(first.psi, second.psi)


def test_ks_ratio_above_one_exactly_at_alerts():
    timeline = drift.drift_strength_scan(0.4, seed=3)
    ratio = timeline.ks_ratio()
    assert np.all(np.isnan(ratio[:, :3]))
    np.testing.assert_array_equal(ratio[:, 3:] > 1.0, timeline.ks_alerts[:, 3:])


@pytest.mark.parametrize("patients_per_month", [20, 1000])
def test_widget_volume_extremes(patients_per_month):
    strong = drift.drift_strength_scan(1.5, seed=0, patients_per_month=patients_per_month)
    assert strong.ks_alerts[0, 9:].all()
    stable = drift.drift_strength_scan(0.0, seed=0, patients_per_month=patients_per_month)
    assert stable.ks_alerts[0, 3:].sum() <= 2


def test_small_drift_needs_volume():
    small_site = drift.drift_strength_scan(0.2, seed=0, patients_per_month=20)
    large_site = drift.drift_strength_scan(0.2, seed=0, patients_per_month=1000)
    assert small_site.ks_alerts[0, 9:].sum() < large_site.ks_alerts[0, 9:].sum()
    assert large_site.ks_alerts[0, 9:].all()
