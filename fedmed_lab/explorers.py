"""Interactive explorers behind the chapter widgets.

Each explorer separates a plain computation (tested directly) from the widget
that calls it, so a slider's effect can be checked without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_site_sizes
from fedmed_lab.aggregation import aggregation_diagnostics
from fedmed_lab.data import make_linear_sites
from fedmed_lab.models import LinearRegression

# Slider range of the chapter 1 explorer: a 10-patient clinic to a 100,000-patient centre.
MIN_SITE_SIZE = 10
MAX_SITE_SIZE = 100_000
CHAPTER1_SITE_SIZES = (80, 120, 4000, 60, 1740)


@dataclass(frozen=True)
class ImbalanceSummary:
    """The chapter 1 numbers for one choice of site sizes."""

    site_sizes: tuple[int, ...]
    weights: tuple[float, ...]
    pooled_loss: float
    weighted_loss: float
    unweighted_loss: float
    weighted_gradient_error: float
    unweighted_gradient_error: float


def summarize_imbalance(site_sizes: Sequence[int], *, seed: int = 0) -> ImbalanceSummary:
    """Draw the chapter 1 linear experiment for ``site_sizes`` and compare the aggregation rules."""
    sizes = check_site_sizes(site_sizes)
    if np.any((sizes < MIN_SITE_SIZE) | (sizes > MAX_SITE_SIZE)):
        raise ValueError(
            f"site sizes must lie in [{MIN_SITE_SIZE}, {MAX_SITE_SIZE}], got {sizes.tolist()}"
        )
    experiment = make_linear_sites(sizes, np.random.default_rng(seed))
    diagnostics = aggregation_diagnostics(experiment.datasets, LinearRegression(), experiment.w)
    return ImbalanceSummary(
        site_sizes=tuple(int(n) for n in sizes),
        weights=diagnostics.weights,
        pooled_loss=diagnostics.pooled_loss,
        weighted_loss=diagnostics.weighted_loss,
        unweighted_loss=diagnostics.unweighted_loss,
        weighted_gradient_error=diagnostics.weighted_gradient_error,
        unweighted_gradient_error=diagnostics.unweighted_gradient_error,
    )


def format_error(value: float) -> str:
    """Format a relative error, showing values at machine precision as a bound."""
    return "< 1e-12" if value < 1e-12 else f"{value:.2e}"


def imbalance_readout(summary: ImbalanceSummary) -> str:
    """Return the explorer's readout as HTML: N, both losses and both relative gradient errors."""
    return (
        f"<b>N = {sum(summary.site_sizes):,}</b> patients; "
        f"pooled loss {summary.pooled_loss:.6f}<br>"
        f"sample-weighted FedAvg: loss {summary.weighted_loss:.6f}, "
        f"gradient error <span class='weighted-error'>{format_error(summary.weighted_gradient_error)}</span><br>"
        f"unweighted mean: loss {summary.unweighted_loss:.6f}, "
        f"gradient error <span class='unweighted-error'>{format_error(summary.unweighted_gradient_error)}</span>"
    )


def plot_imbalance(summary: ImbalanceSummary, ax=None):
    """Draw the FedAvg weights n_k / N next to the unweighted 1 / K as a bar chart; return the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.2))
    num_sites = len(summary.site_sizes)
    positions = np.arange(num_sites)
    ax.bar(positions - 0.2, summary.weights, width=0.4, label="FedAvg weight $n_k/N$")
    ax.bar(positions + 0.2, [1.0 / num_sites] * num_sites, width=0.4, label="unweighted $1/K$")
    ax.set_xticks(positions, [f"site {k + 1}\n$n_k$={n:,}" for k, n in enumerate(summary.site_sizes)])
    ax.set_ylabel("aggregation weight")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(f"unweighted gradient error {format_error(summary.unweighted_gradient_error)}")
    ax.legend(loc="upper right")
    return ax


def imbalance_explorer(site_sizes: Sequence[int] = CHAPTER1_SITE_SIZES, *, seed: int = 0):
    """Build the chapter 1 widget: a slider per site size, a readout and the weight chart.

    The default state is rendered once when the widget is built, so a headless
    run stores a complete view.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    sliders = [
        widgets.IntSlider(value=int(n), min=MIN_SITE_SIZE, max=MAX_SITE_SIZE, step=10,
                          description=f"site {k + 1} n_k", continuous_update=False,
                          style={"description_width": "initial"}, layout=widgets.Layout(width="480px"))
        for k, n in enumerate(site_sizes)
    ]
    readout = widgets.HTML()
    figure_area = widgets.Output()

    def update(_change=None) -> None:
        summary = summarize_imbalance([s.value for s in sliders], seed=seed)
        readout.value = imbalance_readout(summary)
        figure_area.clear_output(wait=True)
        with figure_area:
            plot_imbalance(summary)
            plt.show()

    for slider in sliders:
        slider.observe(update, names="value")
    update()
    return widgets.VBox([*sliders, readout, figure_area])
