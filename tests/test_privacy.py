"""Tests for fedmed_lab.privacy: clipping, noise placement, the RDP accountant and calibration."""

from __future__ import annotations

import logging
import math

# dp-accounting is in the `test` extra, so a missing install fails instead of skipping the comparison.
import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant
from dp_accounting.rdp.rdp_privacy_accountant import DEFAULT_RDP_ORDERS
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab import FedMedWarning
from fedmed_lab import privacy
from fedmed_lab.privacy import (
    DEFAULT_ORDERS,
    DPFedAvg,
    RoundAccountant,
    aggregation_sensitivity,
    calibrate_noise_multiplier,
    central_dp_sum,
    clip_update,
    compute_epsilon,
    distributed_dp_updates,
    gaussian_rdp,
    local_dp_updates,
    noise_std_of_mean,
    rdp_to_epsilon,
    sampled_gaussian_rdp,
)


DELTA = 1e-5
NOISE_MULTIPLIERS = (0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0)
SAMPLE_RATES = (0.01, 0.05, 0.2, 0.5, 1.0)
STEPS = (1, 10, 100, 1000)


def reference_epsilons(noise_multiplier: float, sample_rate: float, orders) -> dict[int, float]:
    """Epsilon from Google's dp-accounting RdpAccountant for each entry of STEPS."""
    epsilons = {}
    for steps in STEPS:
        accountant = RdpAccountant(orders=list(orders))
        event = dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier))
        accountant.compose(event, steps)
        epsilons[steps] = accountant.get_epsilon(DELTA)
    return epsilons


@pytest.fixture(autouse=True)
def _quiet_dp_accounting():
    # dp-accounting logs through absl when its own series gives up at an order.
    logging.getLogger("absl").setLevel(logging.ERROR)


# --- clipping ---------------------------------------------------------------

def test_clip_scales_long_update_to_norm():
    clipped = clip_update(np.array([3.0, 4.0]), clipping_norm=1.0)
    np.testing.assert_allclose(clipped, [0.6, 0.8])


def test_clip_keeps_short_update():
    update = np.array([0.3, -0.4])
    np.testing.assert_array_equal(clip_update(update, clipping_norm=1.0), update)


def test_clip_zero_update_without_division():
    with np.errstate(all="raise"):
        clipped = clip_update(np.zeros(4), clipping_norm=0.5)
    np.testing.assert_array_equal(clipped, np.zeros(4))


def test_clip_does_not_modify_input():
    update = np.array([3.0, 4.0])
    clip_update(update, clipping_norm=1.0)
    np.testing.assert_array_equal(update, [3.0, 4.0])


@settings(max_examples=60, deadline=None)
@given(
    vector=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=8),
    clipping_norm=st.floats(1e-3, 1e3),
)
def test_clip_norm_bounded_and_direction_kept(vector, clipping_norm):
    update = np.array(vector)
    clipped = clip_update(update, clipping_norm=clipping_norm)
    assert np.linalg.norm(clipped) <= clipping_norm * (1 + 1e-12)
    # Clipping only shrinks, so each coordinate keeps its sign.
    assert np.all(clipped * update >= 0)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf])
def test_clip_rejects_bad_norm(bad):
    with pytest.raises(ValueError, match=rf"clipping_norm must be a finite number > 0, got {bad!r}"):
        clip_update(np.ones(3), clipping_norm=bad)


# --- noise placement -------------------------------------------------------

def test_central_sum_noise_std_is_sigma_c():
    rng = np.random.default_rng(0)
    updates = [np.zeros(20_000), np.zeros(20_000)]
    noisy = central_dp_sum(updates, clipping_norm=0.5, noise_multiplier=2.0, rng=rng)
    assert abs(noisy.std() - 1.0) < 0.02


def test_central_sum_clips_before_summing():
    rng = np.random.default_rng(1)
    updates = [np.array([30.0, 40.0]), np.array([0.0, 0.1])]
    noisy = central_dp_sum(updates, clipping_norm=1.0, noise_multiplier=1e-9, rng=rng)
    np.testing.assert_allclose(noisy, [0.6, 0.9], atol=1e-6)


def test_local_noise_variance_k_times_central():
    rng = np.random.default_rng(2)
    num_sites, dim = 10, 5_000
    updates = [np.zeros(dim)] * num_sites
    local_sum = local_dp_updates(updates, clipping_norm=1.0, noise_multiplier=1.0, rng=rng).sum(axis=0)
    central = central_dp_sum(updates, clipping_norm=1.0, noise_multiplier=1.0, rng=rng)
    ratio = local_sum.var() / central.var()
    assert 8.5 < ratio < 11.5


def test_distributed_noise_sums_to_central_variance():
    rng = np.random.default_rng(3)
    num_sites, dim = 8, 20_000
    rows = distributed_dp_updates([np.zeros(dim)] * num_sites, clipping_norm=2.0, noise_multiplier=1.5, rng=rng)
    assert rows.shape == (num_sites, dim)
    assert abs(rows.sum(axis=0).std() - 3.0) < 0.05
    assert abs(rows[0].std() - 3.0 / math.sqrt(num_sites)) < 0.03


def test_noise_std_of_mean_closed_forms():
    assert noise_std_of_mean(mode="central", num_sites=4, noise_multiplier=2.0, clipping_norm=0.5) == 0.25
    assert noise_std_of_mean(mode="distributed", num_sites=4, noise_multiplier=2.0, clipping_norm=0.5) == 0.25
    assert noise_std_of_mean(mode="local", num_sites=4, noise_multiplier=2.0, clipping_norm=0.5) == 0.5


def test_noise_std_of_mean_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 'central', 'local' or 'distributed', got 'trusted'"):
        noise_std_of_mean(mode="trusted", num_sites=4, noise_multiplier=1.0, clipping_norm=1.0)


def test_sensitivity_weighted_exceeds_fixed():
    sizes = np.array([120, 900, 12000, 1500, 4000])
    fixed = aggregation_sensitivity(np.full(5, 0.2), clipping_norm=1.0)
    weighted = aggregation_sensitivity(sizes / sizes.sum(), clipping_norm=1.0)
    assert fixed == pytest.approx(0.2)
    assert weighted == pytest.approx(12000 / 18520)


def test_noise_rejects_negative_multiplier():
    with pytest.raises(ValueError, match=r"noise_multiplier must be a finite number >= 0 .* got -0.5"):
        central_dp_sum([np.ones(2)], clipping_norm=1.0, noise_multiplier=-0.5, rng=np.random.default_rng(0))


def test_noise_requires_generator():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        central_dp_sum([np.ones(2)], clipping_norm=1.0, noise_multiplier=1.0, rng=0)


# --- RDP closed forms and edge cases ----------------------------------------

@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.7])
def test_gaussian_rdp_closed_form(sigma):
    orders = np.array([1.5, 2.0, 10.0, 64.0])
    np.testing.assert_allclose(gaussian_rdp(noise_multiplier=sigma, orders=orders), orders / (2 * sigma**2))


@pytest.mark.parametrize("sigma", [0.7, 2.0])
def test_sampled_rdp_full_rate_equals_gaussian(sigma):
    rdp = sampled_gaussian_rdp(noise_multiplier=sigma, sample_rate=1.0)
    np.testing.assert_allclose(rdp, np.asarray(DEFAULT_ORDERS) / (2 * sigma**2))


def test_sampled_rdp_order_two_closed_form():
    # For alpha = 2 the binomial sum gives A = 1 + q^2 (exp(1 / sigma^2) - 1).
    sigma, q = 1.3, 0.2
    expected = math.log1p(q**2 * math.expm1(1 / sigma**2))
    rdp = sampled_gaussian_rdp(noise_multiplier=sigma, sample_rate=q, orders=[2.0])
    assert rdp[0] == pytest.approx(expected, rel=1e-12)


def test_fractional_order_between_neighbours():
    rdp = sampled_gaussian_rdp(noise_multiplier=1.0, sample_rate=0.1, orders=[3.0, 3.5, 4.0])
    assert rdp[0] < rdp[1] < rdp[2]


def test_sampled_rdp_below_unsampled():
    rdp = sampled_gaussian_rdp(noise_multiplier=1.0, sample_rate=0.3)
    assert np.all(rdp <= np.asarray(DEFAULT_ORDERS) / 2.0)
    assert rdp[0] < 0.5 * DEFAULT_ORDERS[0] / 2.0


def test_one_round_epsilon_matches_classic_gaussian_bound():
    # One unsampled round at sigma = 2: the RDP conversion must not beat the
    # exact Gaussian mechanism and must stay close to the order-optimal formula.
    sigma = 2.0
    orders = np.asarray(DEFAULT_ORDERS)
    rdp = orders / (2 * sigma**2)
    expected = float(np.min(rdp + np.log1p(-1 / orders) - (math.log(DELTA) + np.log(orders)) / (orders - 1)))
    assert compute_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1, delta=DELTA) == pytest.approx(expected)


def test_epsilon_zero_sample_rate():
    assert compute_epsilon(noise_multiplier=1.0, sample_rate=0.0, steps=100, delta=DELTA) == 0.0


def test_epsilon_zero_steps():
    assert compute_epsilon(noise_multiplier=1.0, sample_rate=0.5, steps=0, delta=DELTA) == 0.0


def test_epsilon_zero_noise_is_infinite():
    assert compute_epsilon(noise_multiplier=0.0, sample_rate=0.5, steps=1, delta=DELTA) == math.inf


def test_epsilon_grows_with_steps_and_rate():
    few = compute_epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=10, delta=DELTA)
    many = compute_epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=100, delta=DELTA)
    dense = compute_epsilon(noise_multiplier=1.0, sample_rate=0.5, steps=10, delta=DELTA)
    assert few < many
    assert few < dense


def test_unconverged_series_warns_and_uses_gaussian(monkeypatch):
    monkeypatch.setattr(privacy, "_MAX_SERIES_TERMS", 1)
    with pytest.warns(FedMedWarning, match="did not converge"):
        rdp = sampled_gaussian_rdp(noise_multiplier=1.0, sample_rate=0.5, orders=[1.5])
    assert rdp[0] == pytest.approx(1.5 / 2.0)


def test_overflowing_bound_warns_infinite_epsilon():
    with pytest.warns(FedMedWarning, match="no RDP order gave a finite epsilon"):
        epsilon = compute_epsilon(noise_multiplier=1e-200, sample_rate=1.0, steps=3, delta=DELTA)
    assert epsilon == math.inf


def test_rdp_to_epsilon_tiny_rdp_gives_zero():
    epsilon, _ = rdp_to_epsilon(orders=[2.0, 4.0], rdp=[1e-12, 2e-12], delta=1e-3)
    assert epsilon == 0.0


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 1.5])
def test_epsilon_rejects_delta_outside_unit_interval(delta):
    with pytest.raises(ValueError, match=rf"delta must be in the open interval \(0, 1\), got {delta!r}"):
        compute_epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=1, delta=delta)


def test_epsilon_rejects_negative_noise():
    with pytest.raises(ValueError, match="noise_multiplier must be .* got -1.0"):
        compute_epsilon(noise_multiplier=-1.0, sample_rate=0.1, steps=1, delta=DELTA)


def test_epsilon_rejects_sample_rate_above_one():
    with pytest.raises(ValueError, match=r"sample_rate must be a probability in \[0, 1\], got 1.2"):
        compute_epsilon(noise_multiplier=1.0, sample_rate=1.2, steps=1, delta=DELTA)


def test_epsilon_rejects_negative_steps():
    with pytest.raises(ValueError, match="steps must be a non-negative integer, got -3"):
        compute_epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=-3, delta=DELTA)


def test_epsilon_arguments_keyword_only():
    with pytest.raises(TypeError):
        compute_epsilon(1.0, 0.1, 10, DELTA)  # type: ignore[misc]


# --- agreement with Google's dp-accounting ----------------------------------

@pytest.mark.parametrize("noise_multiplier", NOISE_MULTIPLIERS)
@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_epsilon_agrees_with_dp_accounting(noise_multiplier, sample_rate):
    # Both accountants on the same orders, so the only difference is the RDP math.
    reference = reference_epsilons(noise_multiplier, sample_rate, DEFAULT_RDP_ORDERS)
    compared = 0
    for steps, expected in reference.items():
        if not expected < 10.0:
            continue
        actual = compute_epsilon(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps,
                                 delta=DELTA, orders=DEFAULT_RDP_ORDERS)
        assert actual == pytest.approx(expected, rel=0.01), f"steps={steps}"
        compared += 1
    # Guard against a grid that silently compares nothing: these cells all have epsilon < 10.
    if noise_multiplier >= 1.0 and sample_rate <= 0.01:
        assert compared == len(STEPS)


@pytest.mark.parametrize("noise_multiplier", [0.8, 2.0, 4.0])
@pytest.mark.parametrize("sample_rate", [0.01, 0.2, 1.0])
def test_default_orders_within_one_percent_or_tighter(noise_multiplier, sample_rate):
    # The course's default grid adds orders 80-768, which can only lower epsilon.
    reference = reference_epsilons(noise_multiplier, sample_rate, DEFAULT_RDP_ORDERS)
    for steps, expected in reference.items():
        if not expected < 10.0:
            continue
        actual = compute_epsilon(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps, delta=DELTA)
        assert actual <= expected * 1.01, f"steps={steps}"
        assert actual >= expected * 0.7, f"steps={steps}"


# --- calibration ------------------------------------------------------------

@pytest.mark.parametrize(
    ("target", "sample_rate", "steps"),
    [(1.0, 0.01, 1000), (4.0, 0.1, 100), (8.0, 1.0, 10), (0.5, 0.05, 50)],
)
def test_calibration_never_overshoots(target, sample_rate, steps):
    sigma = calibrate_noise_multiplier(target_epsilon=target, sample_rate=sample_rate, steps=steps, delta=DELTA)
    achieved = compute_epsilon(noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=DELTA)
    assert achieved <= target
    # A little less noise would overshoot, so the returned sigma is not wastefully large.
    slightly_less = compute_epsilon(noise_multiplier=sigma * 0.99, sample_rate=sample_rate, steps=steps, delta=DELTA)
    assert slightly_less > target


def test_calibration_zero_rate_needs_no_noise():
    assert calibrate_noise_multiplier(target_epsilon=1.0, sample_rate=0.0, steps=10, delta=DELTA) == 0.0


@pytest.mark.parametrize("bad", [0.0, -2.0])
def test_calibration_rejects_non_positive_target(bad):
    with pytest.raises(ValueError, match=rf"target_epsilon must be > 0, got {bad!r}"):
        calibrate_noise_multiplier(target_epsilon=bad, sample_rate=0.1, steps=10, delta=DELTA)


def test_calibration_rejects_bad_delta():
    with pytest.raises(ValueError, match=r"delta must be in the open interval \(0, 1\), got 0"):
        calibrate_noise_multiplier(target_epsilon=1.0, sample_rate=0.1, steps=10, delta=0)


# --- DP-FedAvg in the round driver ------------------------------------------

def _small_federation(seed: int = 5):
    from fedmed_lab.data import HospitalSpec, make_risk_cohorts

    specs = [HospitalSpec("clinic", 80, prevalence=0.2), HospitalSpec("centre", 600, case_mix=0.4, prevalence=0.3),
             HospitalSpec("regional", 250, prevalence=0.25, lab_bias=0.3)]
    return [c.to_hospital() for c in make_risk_cohorts(specs, np.random.default_rng(seed))]


def test_dp_fedavg_without_noise_is_unweighted_mean():
    from fedmed_lab.aggregation import unweighted_fedavg
    from fedmed_lab.sites import ModelUpdate

    start = np.zeros(3)
    updates = [ModelUpdate("a", [0.1, 0.2, 0.0], 10), ModelUpdate("b", [0.3, -0.2, 0.4], 500)]
    aggregator = DPFedAvg(start, clipping_norm=100.0, noise_multiplier=0.0, expected_sites=2,
                          rng=np.random.default_rng(0))
    np.testing.assert_allclose(aggregator(updates), unweighted_fedavg(updates))


def test_dp_fedavg_step_bounded_by_clipping_norm():
    from fedmed_lab.sites import ModelUpdate

    updates = [ModelUpdate("a", [5.0, 0.0], 10), ModelUpdate("b", [0.0, 7.0], 10)]
    aggregator = DPFedAvg(np.zeros(2), clipping_norm=0.1, noise_multiplier=0.0, expected_sites=2,
                          rng=np.random.default_rng(0))
    new = aggregator(updates)
    assert np.linalg.norm(new) <= 0.1 + 1e-12
    assert aggregator.clipped_fraction == [1.0]


def test_dp_fedavg_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 'central', 'local' or 'distributed', got 'shuffle'"):
        DPFedAvg(np.zeros(2), clipping_norm=1.0, noise_multiplier=1.0, expected_sites=2,
                 rng=np.random.default_rng(0), mode="shuffle")


def test_privacy_accuracy_no_noise_extreme():
    from fedmed_lab.models import LogisticRegression
    from fedmed_lab.training import LocalTrainingConfig

    point = privacy.privacy_accuracy_point(
        _small_federation(), LogisticRegression(), noise_multiplier=0.0, clipping_norm=1.0, rounds=10,
        local=LocalTrainingConfig(epochs=2, learning_rate=0.5), delta=1e-3, rng=np.random.default_rng(0))
    assert point.epsilon == math.inf
    assert point.worst_auroc > 0.75
    assert set(point.auroc) == {"clinic", "centre", "regional"}


def test_privacy_accuracy_heavy_noise_extreme():
    from fedmed_lab.models import LogisticRegression
    from fedmed_lab.training import LocalTrainingConfig

    arguments = dict(clipping_norm=1.0, rounds=10, local=LocalTrainingConfig(epochs=2, learning_rate=0.5),
                     delta=1e-3)
    hospitals = _small_federation()
    quiet = privacy.privacy_accuracy_point(hospitals, LogisticRegression(), noise_multiplier=0.0,
                                           rng=np.random.default_rng(1), **arguments)
    noisy = privacy.privacy_accuracy_point(hospitals, LogisticRegression(), noise_multiplier=8.0,
                                           rng=np.random.default_rng(1), **arguments)
    assert noisy.epsilon < 5.0
    assert noisy.mean_auroc < quiet.mean_auroc - 0.05


@pytest.mark.parametrize("clipping_norm", [0.1, 2.0])
def test_privacy_accuracy_clip_slider_extremes(clipping_norm):
    from fedmed_lab.models import LogisticRegression
    from fedmed_lab.training import LocalTrainingConfig

    point = privacy.privacy_accuracy_point(
        _small_federation(), LogisticRegression(), noise_multiplier=8.0, clipping_norm=clipping_norm, rounds=20,
        local=LocalTrainingConfig(epochs=5, learning_rate=0.5), delta=1e-5, rng=np.random.default_rng(2))
    # Epsilon depends on sigma and the rounds only, not on the clipping norm.
    assert point.epsilon == pytest.approx(
        compute_epsilon(noise_multiplier=8.0, sample_rate=1.0, steps=20, delta=1e-5))
    assert all(0.0 <= value <= 1.0 for value in point.auroc.values())


def test_dp_fedavg_uses_passed_global_parameters():
    from fedmed_lab.sites import ModelUpdate

    aggregator = DPFedAvg(np.zeros(2), clipping_norm=100.0, noise_multiplier=0.0, expected_sites=2,
                          rng=np.random.default_rng(0))
    assert aggregator.needs_global_parameters
    # Half the delta from the passed [1, 1]; from the stored zeros it would be [1.5, 1.5].
    new = aggregator([ModelUpdate("a", [3.0, 3.0], 5)], global_parameters=np.array([1.0, 1.0]))
    np.testing.assert_allclose(new, [2.0, 2.0])
    np.testing.assert_allclose(aggregator.global_parameters, [2.0, 2.0])


def test_round_accountant_matches_compute_epsilon():
    accountant = RoundAccountant(noise_multiplier=1.1, sample_rate=0.3, delta=1e-5)
    epsilons = [accountant(t) for t in range(0, 6)]
    assert epsilons[0] == 0.0
    for steps, epsilon in enumerate(epsilons):
        assert epsilon == compute_epsilon(noise_multiplier=1.1, sample_rate=0.3, steps=steps, delta=1e-5)
    assert all(later > earlier for earlier, later in zip(epsilons, epsilons[1:]))
    assert RoundAccountant(noise_multiplier=0.0, sample_rate=1.0, delta=1e-5)(3) == math.inf


def test_round_accountant_rejects_bad_settings():
    with pytest.raises(ValueError, match="sample_rate must be a probability in"):
        RoundAccountant(noise_multiplier=1.0, sample_rate=1.5, delta=1e-5)
    with pytest.raises(ValueError, match="delta must be in the open interval"):
        RoundAccountant(noise_multiplier=1.0, sample_rate=1.0, delta=0.0)
    with pytest.raises(ValueError, match="steps must be a non-negative integer, got -1"):
        RoundAccountant(noise_multiplier=1.0, sample_rate=1.0, delta=1e-5)(-1)
