import pytest

from fedmed_lab.explorers import (
    MAX_SITE_SIZE,
    MIN_SITE_SIZE,
    format_error,
    imbalance_explorer,
    imbalance_readout,
    summarize_imbalance,
)


def test_equal_sizes_make_both_rules_agree():
    summary = summarize_imbalance([MIN_SITE_SIZE] * 5)
    assert summary.weighted_gradient_error < 1e-12
    assert summary.unweighted_gradient_error < 1e-12


def test_largest_sizes_still_exact():
    summary = summarize_imbalance([MAX_SITE_SIZE] * 5)
    assert summary.weighted_gradient_error < 1e-12
    assert summary.weights == pytest.approx((0.2,) * 5)


def test_extreme_imbalance_breaks_unweighted_rule():
    summary = summarize_imbalance([MIN_SITE_SIZE] * 4 + [MAX_SITE_SIZE])
    assert summary.weighted_gradient_error < 1e-12
    assert summary.unweighted_gradient_error > 0.5


@pytest.mark.parametrize("sizes", [[9, 10], [10, MAX_SITE_SIZE + 1]])
def test_sizes_outside_slider_range_rejected(sizes):
    with pytest.raises(ValueError, match=r"site sizes must lie in \[10, 100000\]"):
        summarize_imbalance(sizes)


def test_format_error_bounds_machine_precision():
    assert format_error(3e-16) == "< 1e-12"
    assert format_error(0.8444) == "8.44e-01"


def test_slider_change_updates_readout():
    explorer = imbalance_explorer([80, 120, 4000, 60, 1740], seed=0)
    sliders = explorer.children[:5]
    readout = explorer.children[5]
    assert "8.44e-01" in readout.value

    sliders[2].value = 90_000
    expected = imbalance_readout(summarize_imbalance([80, 120, 90_000, 60, 1740], seed=0))
    assert readout.value == expected
    assert "8.44e-01" not in readout.value
