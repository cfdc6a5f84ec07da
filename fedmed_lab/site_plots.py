"""Plots of per-site distributions, per-site metrics and training curves for chapters 2 and 3.

Each function draws on a Matplotlib ``Axes`` it is given and returns the
artists it added, so a notebook or a widget decides the figure layout and a
test can check what was drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedmed_lab.data import FEATURE_NAMES, FEATURES, SiteData, standardised_to_raw
from fedmed_lab.sites import SiteEvaluation


def feature_values(cohort: SiteData, feature: str) -> np.ndarray:
    """Return one feature of a site's training records in clinical units.

    Raises
    ------
    ValueError
        When ``feature`` is not one of :data:`fedmed_lab.data.FEATURE_NAMES`.
    """
    if feature not in FEATURE_NAMES:
        raise ValueError(f"unknown feature {feature!r}; choose one of {list(FEATURE_NAMES)}")
    return standardised_to_raw(cohort.X_train)[:, FEATURE_NAMES.index(feature)]


def plot_feature_by_site(ax, cohorts: Sequence[SiteData], feature: str, *, bins: int = 30):
    """Draw one density histogram per site of ``feature`` in clinical units, on shared bins."""
    values = [feature_values(c, feature) for c in cohorts]
    edges = np.histogram_bin_edges(np.concatenate(values), bins=bins)
    artists = []
    for cohort, site_values in zip(cohorts, values):
        _, _, patches = ax.hist(site_values, bins=edges, density=True, histtype="step", linewidth=1.5,
                                label=f"{cohort.name} (n={site_values.size})")
        artists.append(patches)
    unit = dict((name, unit) for name, unit, *_ in FEATURES)[feature]
    ax.set_xlabel(f"{feature} ({unit})")
    ax.set_ylabel("density")
    return artists


def plot_site_metric(ax, evaluations: Sequence[SiteEvaluation], metric: str, *,
                     reference_lines: Mapping[str, float] | None = None):
    """Draw one bar per site for ``metric``, labelled with the site's test size, plus horizontal reference lines.

    ``reference_lines`` maps a label (such as ``"weighted mean"`` or
    ``"pooled"``) to a value drawn across the bars.
    """
    labels = [f"{e.site_id}\nn={e.num_examples}" for e in evaluations]
    values = [e.metrics[metric] for e in evaluations]
    bars = ax.bar(labels, values, color="tab:blue", alpha=0.8)
    styles = ["--", ":", "-."]
    for index, (label, value) in enumerate((reference_lines or {}).items()):
        ax.axhline(value, linestyle=styles[index % len(styles)], color=f"C{index + 1}", label=f"{label} {value:.3f}")
    ax.set_ylabel(metric)
    ax.tick_params(axis="x", labelsize=8)
    return bars


def plot_loss_curves(ax, curves: Mapping[str, Sequence[float]], *, target: float | None = None,
                     target_label: str = "target"):
    """Draw one training-loss curve per label against the round number, and an optional labelled target line."""
    lines = []
    for label, losses in curves.items():
        (line,) = ax.plot(np.arange(1, len(losses) + 1), losses, label=label)
        lines.append(line)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label=f"{target_label} {target:.4f}")
    ax.set_xlabel("round")
    ax.set_ylabel("weighted training loss")
    return lines
