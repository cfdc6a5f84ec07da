"""Chapter 11 explorer: how much noise each DP aggregation adds per unit of sensitivity.

The effective noise multiplier is the noise standard deviation on the
aggregate divided by the aggregate's L2 sensitivity to one site; a
Gaussian-mechanism accountant assumes it equals the configured sigma.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_positive_float, check_site_sizes
from fedmed_lab.flower_app.central_dp import (
    course_noise_std,
    flower_noise_std,
    weighted_sensitivity,
)

MIN_SITE_SIZE = 10
MAX_SITE_SIZE = 100_000


@dataclass(frozen=True)
class CalibrationSummary:
    """Noise and sensitivity of the three aggregation rules for one federation."""

    site_sizes: tuple[int, ...]
    noise_multiplier: float
    clipping_norm: float
    course_std: float
    flower_std: float
    equal_weight_sensitivity: float
    sample_weight_sensitivity: float

    @property
    def course_effective(self) -> float:
        """Course step: noise std / sensitivity of the equal-weight mean (always sigma)."""
        return self.course_std / self.equal_weight_sensitivity

    @property
    def flower_equal_effective(self) -> float:
        """Flower's wrapper around FedAvg with equal weights (always sigma)."""
        return self.flower_std / self.equal_weight_sensitivity

    @property
    def flower_weighted_effective(self) -> float:
        """Flower's wrapper around sample-weighted FedAvg: ``sigma / (m * max_k n_k / N)``."""
        return self.flower_std / self.sample_weight_sensitivity


def summarize_calibration(site_sizes: Sequence[int], *, noise_multiplier: float,
                          clipping_norm: float = 1.0) -> CalibrationSummary:
    """Compute the noise std and sensitivities of the course step and Flower's wrapper."""
    sizes = check_site_sizes(site_sizes, "site_sizes")
    check_positive_float(noise_multiplier, "noise_multiplier")
    check_positive_float(clipping_norm, "clipping_norm")
    num_sites = len(sizes)
    return CalibrationSummary(
        site_sizes=tuple(int(n) for n in sizes),
        noise_multiplier=float(noise_multiplier),
        clipping_norm=float(clipping_norm),
        course_std=course_noise_std(noise_multiplier=noise_multiplier, clipping_norm=clipping_norm,
                                    num_sites=num_sites),
        flower_std=flower_noise_std(noise_multiplier=noise_multiplier, clipping_norm=clipping_norm,
                                    num_sampled_clients=num_sites),
        equal_weight_sensitivity=clipping_norm / num_sites,
        sample_weight_sensitivity=weighted_sensitivity(sizes, clipping_norm=clipping_norm),
    )


def calibration_readout(summary: CalibrationSummary) -> str:
    """Return the explorer's readout as HTML: the three effective noise multipliers."""
    share = max(summary.site_sizes) / sum(summary.site_sizes)
    return (
        f"sigma = {summary.noise_multiplier:.2f}; largest site holds {share:.1%} of the records<br>"
        f"course step (equal weights): effective sigma "
        f"<span class='course-effective'>{summary.course_effective:.2f}</span><br>"
        f"Flower wrapper, equal weights: effective sigma {summary.flower_equal_effective:.2f}<br>"
        f"Flower wrapper, n_k/N weights: effective sigma "
        f"<span class='flower-weighted-effective'>{summary.flower_weighted_effective:.2f}</span>"
    )


def plot_calibration(summary: CalibrationSummary, measured: Sequence[float] | None = None, ax=None):
    """Draw the three effective noise multipliers as bars, with optional measured values; return the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.2))
    labels = ["course step\n(equal weights)", "Flower wrapper\n(equal weights)", "Flower wrapper\n($n_k/N$ weights)"]
    values = [summary.course_effective, summary.flower_equal_effective, summary.flower_weighted_effective]
    positions = np.arange(len(labels))
    ax.bar(positions, values, width=0.6, color=["tab:blue", "tab:green", "tab:red"], label="formula")
    if measured is not None:
        ax.plot(positions, measured, "k_", markersize=30, markeredgewidth=2, label="measured")
    ax.axhline(summary.noise_multiplier, color="grey", linestyle="--", label="configured $\\sigma$")
    ax.set_xticks(positions, labels)
    ax.set_ylabel("noise std / sensitivity")
    ax.set_ylim(0.0, 1.15 * max(values + [summary.noise_multiplier]))
    ax.legend(loc="upper right", fontsize="small")
    return ax


def calibration_explorer(site_sizes: Sequence[int], *, largest_index: int, noise_multiplier: float = 1.0):
    """Build the chapter 11 widget: sliders for the largest site's n_k and sigma, a readout and the chart.

    The default state is rendered once when the widget is built, so a
    headless run stores a complete view.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in check_site_sizes(site_sizes, "site_sizes")]
    size_slider = widgets.IntSlider(value=sizes[largest_index], min=MIN_SITE_SIZE, max=MAX_SITE_SIZE, step=10,
                                    description="largest site n_k", continuous_update=False,
                                    style={"description_width": "initial"}, layout=widgets.Layout(width="480px"))
    sigma_slider = widgets.FloatSlider(value=noise_multiplier, min=0.1, max=3.0, step=0.1,
                                       description="noise multiplier sigma", continuous_update=False,
                                       style={"description_width": "initial"}, layout=widgets.Layout(width="480px"))
    readout = widgets.HTML()
    figure_area = widgets.Output()

    def update(_change=None) -> None:
        current = list(sizes)
        current[largest_index] = size_slider.value
        summary = summarize_calibration(current, noise_multiplier=sigma_slider.value)
        readout.value = calibration_readout(summary)
        figure_area.clear_output(wait=True)
        with figure_area:
            plot_calibration(summary)
            plt.show()

    size_slider.observe(update, names="value")
    sigma_slider.observe(update, names="value")
    update()
    return widgets.VBox([size_slider, sigma_slider, readout, figure_area])
