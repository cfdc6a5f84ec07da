"""Tests that the chapter 2 and 3 plots draw the values they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fedmed_lab.data import FEATURE_NAMES, HospitalSpec, make_risk_cohorts  # noqa: E402
from fedmed_lab.site_plots import feature_values, plot_feature_by_site, plot_loss_curves, plot_site_metric  # noqa: E402
from fedmed_lab.sites import SiteEvaluation  # noqa: E402


@pytest.fixture
def cohorts():
    specs = [HospitalSpec("a", 50, lab_bias=1.0), HospitalSpec("b", 400)]
    return make_risk_cohorts(specs, np.random.default_rng(0))


def test_feature_values_are_in_clinical_units(cohorts):
    lactate = feature_values(cohorts[0], "lactate")
    index = FEATURE_NAMES.index("lactate")
    # Reference lactate: mean 1.8 mmol/L, standard deviation 1.0.
    assert np.allclose(lactate, cohorts[0].X_train[:, index] * 1.0 + 1.8)
    with pytest.raises(ValueError, match="unknown feature 'cholesterol'"):
        feature_values(cohorts[0], "cholesterol")


def test_feature_histograms_one_per_site(cohorts):
    figure, ax = plt.subplots()
    artists = plot_feature_by_site(ax, cohorts, "age", bins=10)
    assert len(artists) == 2
    assert ax.get_xlabel() == "age (years)"
    plt.close(figure)


def test_site_metric_bars_match_values():
    evaluations = [SiteEvaluation("x", 10, {"auroc": 0.6}), SiteEvaluation("y", 90, {"auroc": 0.9})]
    figure, ax = plt.subplots()
    bars = plot_site_metric(ax, evaluations, "auroc", reference_lines={"weighted mean": 0.87})
    assert [bar.get_height() for bar in bars] == [0.6, 0.9]
    assert ax.lines[0].get_ydata()[0] == 0.87
    plt.close(figure)


def test_loss_curves_start_at_round_one():
    figure, ax = plt.subplots()
    lines = plot_loss_curves(ax, {"E=1": [0.6, 0.5, 0.45]}, target=0.5, target_label="pooled model")
    assert lines[0].get_xdata().tolist() == [1, 2, 3]
    assert lines[0].get_ydata().tolist() == [0.6, 0.5, 0.45]
    assert len(ax.lines) == 2
    assert ax.lines[1].get_label() == "pooled model 0.5000"
    plt.close(figure)
