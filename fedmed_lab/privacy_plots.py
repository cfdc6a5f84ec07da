"""Figures for the privacy chapters (6: gradient inversion, 8: differential privacy).

Each function draws on new axes and returns the figure; the notebook calls
``plt.show()``. No global matplotlib settings are changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter

from fedmed_lab.inversion import BatchLeakage, RatioDemo
from fedmed_lab.privacy import PrivacyAccuracyPoint


def plot_batch_leakage(leakage: BatchLeakage, *, marked: dict[str, int] | None = None):
    """Plot the attacker's error on one patient and one patient's influence against n_k (log axis)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.semilogx(leakage.batch_sizes, leakage.reconstruction_rms, "o-", color="tab:red")
    left.set_xlabel("records behind the update, $n_k$")
    left.set_ylabel("RMS error recovering one patient")
    left.set_title("Reconstruction error grows with $n_k$")

    right.loglog(leakage.batch_sizes, leakage.influence, "o-", color="tab:blue")
    right.set_xlabel("records behind the update, $n_k$")
    right.set_ylabel("shift of the estimate from one patient")
    right.set_title("One patient's influence falls as $1/n_k$")

    for name, size in (marked or {}).items():
        for axis in (left, right):
            axis.axvline(size, color="grey", linestyle=":", linewidth=1)
            axis.text(size, 0.5, f" {name}", rotation=90, va="center", ha="right", fontsize=8, color="grey",
                      transform=axis.get_xaxis_transform())
    figure.tight_layout()
    return figure


def plot_matching_success(batch_sizes: Sequence[int], rates: Sequence[float], *, num_parameters: int,
                          num_features: int):
    """Plot the fraction of records recovered by gradient matching against the batch size."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(batch_sizes, rates, "o-", color="tab:purple")
    axis.axvline(num_parameters / num_features, color="grey", linestyle=":",
                 label="unknowns = gradient entries")
    axis.set_xlabel("records in the batch")
    axis.set_ylabel("records recovered (rel. error < 5 %)")
    axis.set_ylim(-0.05, 1.05)
    axis.legend(loc="upper right")
    axis.set_title("Gradient matching on a two-layer network")
    figure.tight_layout()
    return figure


def plot_ratio_demo(demo: RatioDemo):
    """Scatter a 2-feature batch by label with its mean and the ratio estimate."""
    figure, axis = plt.subplots(figsize=(5, 4))
    records, labels = demo.records, demo.labels
    axis.scatter(records[labels == 0, 0], records[labels == 0, 1], s=12, color="tab:blue", label="y = 0")
    axis.scatter(records[labels == 1, 0], records[labels == 1, 1], s=12, color="tab:orange", label="y = 1")
    mean = records.mean(axis=0)
    axis.scatter([mean[0]], [mean[1]], marker="x", s=90, color="black", label="batch mean")
    if np.all(np.isfinite(demo.estimate)):
        clipped_estimate = np.clip(demo.estimate, -4.5, 4.5)
        axis.scatter([clipped_estimate[0]], [clipped_estimate[1]], marker="*", s=160, color="tab:red", label="ratio estimate")
    axis.set_xlim(-4.8, 4.8)
    axis.set_ylim(-4.8, 4.8)
    axis.set_xlabel("feature 1")
    axis.set_ylabel("feature 2")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def plot_privacy_accuracy(points: Sequence[PrivacyAccuracyPoint], *, baseline: PrivacyAccuracyPoint | None = None):
    """Plot mean and worst-site AUROC against epsilon (log axis); the baseline is the run without noise."""
    finite = [p for p in points if np.isfinite(p.epsilon)]
    finite.sort(key=lambda p: p.epsilon)
    epsilons = [p.epsilon for p in finite]
    figure, axis = plt.subplots(figsize=(6.5, 4))
    axis.semilogx(epsilons, [p.mean_auroc for p in finite], "o-", color="tab:green", label="mean over sites")
    axis.semilogx(epsilons, [p.worst_auroc for p in finite], "s--", color="tab:red", label="worst site")
    if baseline is not None:
        axis.axhline(baseline.mean_auroc, color="tab:green", linestyle=":", linewidth=1,
                     label="no noise, mean")
        axis.axhline(baseline.worst_auroc, color="tab:red", linestyle=":", linewidth=1, label="no noise, worst")
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xticks([t for t in (1, 2, 3, 5, 10, 20, 30, 50, 100, 200) if min(epsilons) / 1.5 <= t <= max(epsilons) * 1.5])
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.set_xlabel(r"$\varepsilon$ at $\delta = 10^{-5}$ (smaller is more private)")
    axis.set_ylabel("test AUROC")
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title("Privacy-accuracy trade-off, site-level DP")
    figure.tight_layout()
    return figure


def plot_site_auroc(point: PrivacyAccuracyPoint, baseline: PrivacyAccuracyPoint):
    """Bar chart of each site's AUROC with DP next to the run without noise."""
    sites = list(baseline.auroc)
    positions = np.arange(len(sites))
    figure, axis = plt.subplots(figsize=(7, 3.6))
    axis.bar(positions - 0.2, [baseline.auroc[s] for s in sites], width=0.4, color="lightgrey", label="no noise")
    axis.bar(positions + 0.2, [point.auroc[s] for s in sites], width=0.4, color="tab:green",
             label=f"sigma = {point.noise_multiplier:g}, C = {point.clipping_norm:g}")
    axis.set_xticks(positions, [s.replace("_", "\n") for s in sites], fontsize=8)
    axis.set_ylim(0.4, 1.0)
    axis.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    axis.set_ylabel("test AUROC")
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return figure
