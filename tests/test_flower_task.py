"""Capstone task, site files and the course's central DP step (no Flower needed)."""

import numpy as np
import pytest

from fedmed_lab.aggregation import weighted_average
from fedmed_lab.privacy import clip_update
from fedmed_lab.flower_app.central_dp import (
    central_dp_round,
    course_noise_std,
    flower_effective_noise_multiplier,
    flower_noise_std,
    weighted_sensitivity,
)
from fedmed_lab.flower_app.site_files import load_hospital, write_site_files
from fedmed_lab.flower_app.task import CapstoneTask, make_cohorts, make_hospitals, run_course_simulator


def test_task_run_config_round_trip():
    task = CapstoneTask(seed=7, num_rounds=4, epochs=3, learning_rate=0.25, l2=0.0, cohort_scale=0.5)
    config = task.to_run_config()
    assert config == {"seed": 7, "num-rounds": 4, "epochs": 3, "learning-rate": 0.25, "l2": 0.0,
                      "cohort-scale": 0.5}
    assert CapstoneTask.from_run_config(config) == task


def test_task_run_config_skips_server_keys():
    config = {"num-rounds": 2, "result-file": "/tmp/x.json", "clipping-norm": 0.5, "noise-multiplier": 1.0}
    assert CapstoneTask.from_run_config(config) == CapstoneTask(num_rounds=2)


def test_task_run_config_unknown_key():
    with pytest.raises(ValueError, match=r"unknown keys \['batch-size'\]"):
        CapstoneTask.from_run_config({"batch-size": 32})


@pytest.mark.parametrize("field, value", [("num_rounds", 0), ("learning_rate", -0.1), ("seed", -1),
                                          ("cohort_scale", 0.0)])
def test_task_rejects_invalid(field, value):
    with pytest.raises(ValueError, match=field):
        CapstoneTask(**{field: value})


def test_cohort_scale_shrinks_every_hospital():
    full = [c.X_train.shape[0] + c.X_test.shape[0] for c in make_cohorts(CapstoneTask())]
    small = [c.X_train.shape[0] + c.X_test.shape[0] for c in make_cohorts(CapstoneTask(cohort_scale=0.05))]
    assert full == [120, 900, 12000, 1500, 4000]
    assert small == [6, 45, 600, 75, 200]


def test_task_training_is_deterministic():
    assert CapstoneTask().local.batch_size is None


def test_course_simulator_learns():
    history = run_course_simulator(CapstoneTask(num_rounds=3))
    losses = history.train_losses()
    assert len(history.rounds) == 3
    assert np.all(np.diff(losses) < 0)


def test_site_files_round_trip(tmp_path):
    task = CapstoneTask()
    paths = write_site_files(make_cohorts(task), tmp_path)
    originals = make_hospitals(task)
    assert [p.stem for p in paths] == [h.site_id for h in originals]

    start = task.model.initial_parameters(originals[0].num_features)
    rng = np.random.default_rng(0)
    for path, original in zip(paths, originals):
        loaded = load_hospital(path)
        assert loaded.site_id == original.site_id
        assert loaded.num_examples == original.num_examples
        assert loaded.num_test_examples == original.num_test_examples
        trained = loaded.fit(start, task.model, task.local, rng).parameters
        expected = original.fit(start, task.model, task.local, rng).parameters
        np.testing.assert_array_equal(trained, expected)


def test_load_hospital_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_site_files"):
        load_hospital(tmp_path / "nowhere.npz")


def test_load_hospital_missing_array(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, site_id=np.array("x"), X_train=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"lacks arrays \['y_train'"):
        load_hospital(path)


def test_clip_update_long_update():
    clipped = clip_update(np.array([3.0, 4.0]), clipping_norm=1.0)
    np.testing.assert_allclose(clipped, [0.6, 0.8])


def test_clip_update_short_and_zero_update():
    np.testing.assert_array_equal(clip_update(np.array([0.3, 0.4]), clipping_norm=1.0), [0.3, 0.4])
    np.testing.assert_array_equal(clip_update(np.zeros(3), clipping_norm=1.0), np.zeros(3))


def test_clip_update_rejects_zero_norm():
    with pytest.raises(ValueError, match="clipping_norm must be a finite number > 0, got 0.0"):
        clip_update(np.ones(2), clipping_norm=0.0)


def test_central_dp_round_without_noise_is_clipped_mean():
    start = np.array([1.0, -1.0])
    sites = [np.array([4.0, 3.0]), np.array([1.0, -0.5]), np.array([1.0, -1.0])]
    result = central_dp_round(start, sites, clipping_norm=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    # Updates (3, 4) -> (0.6, 0.8); (0, 0.5) stays; (0, 0) stays.
    np.testing.assert_allclose(result, start + np.array([0.6, 1.3]) / 3)


def test_central_dp_round_noise_std():
    start = np.zeros(50)
    sites = [np.full(50, 0.1), np.full(50, -0.2), np.zeros(50), np.full(50, 0.05)]
    clipped_mean = np.mean([clip_update(s, clipping_norm=0.5) for s in sites], axis=0)
    rng = np.random.default_rng(3)
    noise = np.array([central_dp_round(start, sites, clipping_norm=0.5, noise_multiplier=2.0, rng=rng)
                      - clipped_mean for _ in range(200)])
    expected = course_noise_std(noise_multiplier=2.0, clipping_norm=0.5, num_sites=4)
    assert expected == pytest.approx(0.25)
    assert noise.std() == pytest.approx(expected, rel=0.03)
    assert abs(noise.mean()) < 0.01


def test_central_dp_round_is_reproducible():
    start, sites = np.zeros(3), [np.ones(3), -np.ones(3)]
    first = central_dp_round(start, sites, clipping_norm=1.0, noise_multiplier=1.0, rng=np.random.default_rng(5))
    second = central_dp_round(start, sites, clipping_norm=1.0, noise_multiplier=1.0, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(first, second)


def test_central_dp_round_rejects_empty():
    with pytest.raises(ValueError, match="site_parameters is empty"):
        central_dp_round(np.zeros(2), [], clipping_norm=1.0, noise_multiplier=1.0, rng=np.random.default_rng(0))


def test_weighted_sensitivity_largest_site():
    assert weighted_sensitivity([100, 300], clipping_norm=2.0) == pytest.approx(1.5)


def test_flower_noise_calibration_equal_sites():
    assert flower_noise_std(noise_multiplier=1.2, clipping_norm=0.5, num_sampled_clients=4) == pytest.approx(0.15)
    assert flower_effective_noise_multiplier([50] * 4, noise_multiplier=1.2) == pytest.approx(1.2)


def test_flower_noise_calibration_course_federation():
    sizes = [h.num_examples for h in make_hospitals(CapstoneTask())]
    largest_share = max(sizes) / sum(sizes)
    effective = flower_effective_noise_multiplier(sizes, noise_multiplier=1.0)
    assert effective == pytest.approx(1.0 / (5 * largest_share))
    assert effective < 0.35


def test_weighted_clip_differs_from_equal_mean():
    # The two aggregation rules differ whenever n_k differ: the reason
    # Flower's wrapper around sample-weighted FedAvg is not the course's step.
    start = np.zeros(2)
    sites = [np.array([0.5, 0.0]), np.array([0.0, 0.5])]
    weighted = weighted_average([clip_update(s, clipping_norm=1.0) for s in sites], [900, 100])
    equal = central_dp_round(start, sites, clipping_norm=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(weighted, [0.45, 0.05])
    np.testing.assert_allclose(equal, [0.25, 0.25])


# --- calibration explorer -------------------------------------------------------

from fedmed_lab.flower_app.explorer import (  # noqa: E402
    MAX_SITE_SIZE,
    MIN_SITE_SIZE,
    calibration_readout,
    summarize_calibration,
)


def test_calibration_matches_central_dp_helper():
    sizes = [84, 630, 8400, 1050, 2800]
    summary = summarize_calibration(sizes, noise_multiplier=1.3)
    assert summary.flower_weighted_effective == pytest.approx(
        flower_effective_noise_multiplier(sizes, noise_multiplier=1.3))


def test_calibration_equal_sites_all_sigma():
    summary = summarize_calibration([500] * 5, noise_multiplier=1.5, clipping_norm=0.2)
    assert summary.course_effective == pytest.approx(1.5)
    assert summary.flower_equal_effective == pytest.approx(1.5)
    assert summary.flower_weighted_effective == pytest.approx(1.5)


@pytest.mark.parametrize("largest, expected_share", [
    (MIN_SITE_SIZE, 100 / 140),  # slider minimum: the 100-record site is now the largest
    (MAX_SITE_SIZE, MAX_SITE_SIZE / (MAX_SITE_SIZE + 130)),
])
def test_calibration_slider_extremes(largest, expected_share):
    sizes = [10, 100, largest, 10, 10]
    summary = summarize_calibration(sizes, noise_multiplier=0.1)
    assert summary.course_effective == pytest.approx(0.1)
    assert summary.flower_weighted_effective == pytest.approx(0.1 / (5 * expected_share))
    assert summary.flower_weighted_effective < summary.course_effective
    assert "effective sigma" in calibration_readout(summary)


def test_calibration_rejects_zero_sigma():
    with pytest.raises(ValueError, match="noise_multiplier must be a positive"):
        summarize_calibration([10, 20], noise_multiplier=0.0)
