"""Registry of the chapter explorers, so tests can recompute any widget's readout.

Every chapter notebook with a widget has one entry in :data:`EXPLORERS`, keyed
by the notebook's file name without ``.ipynb``. The entry lists the slider
descriptions and a readout function that takes the slider values, keyed by
description, and returns exactly the HTML that the widget's ``ipywidgets.HTML``
readout shows for that setting. The browser tests move each slider, read every
slider's value back from the page and compare the page's readout with this
function's output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ExplorerSpec:
    """How to recompute one chapter widget's readout outside the browser.

    Attributes
    ----------
    sliders
        The ``description`` of each slider, in the order the widget shows them.
    readout
        Function from ``{description: value}`` (every slider) to the readout's HTML.
    """

    sliders: tuple[str, ...]
    readout: Callable[[Mapping[str, float]], str]


def _chapter1_readout(values: Mapping[str, float]) -> str:
    from fedmed_lab.explorers import imbalance_readout, summarize_imbalance

    sizes = [int(values[f"site {k} n_k"]) for k in range(1, 6)]
    # The notebook builds the explorer with seed=0.
    return imbalance_readout(summarize_imbalance(sizes, seed=0))


def _chapter4_readout(values: Mapping[str, float]) -> str:
    from fedmed_lab.dropout import expected_dropout_error, imbalance_experiment

    # NOTE: the format mirrors the f-string in the chapter 4 widget cell, which
    # builds its readout inline; keep the two in step.
    experiment = imbalance_experiment(int(values["academic size"]), int(values["clinic size"]), seed=0)
    current = expected_dropout_error(experiment, float(values["drop probability"]))
    return (f"expected error {current['expected_error']:.4f}, worst pattern {current['worst_error']:.4f}, "
            f"unweighted mean {current['unweighted_error']:.4f}")


# Site sizes of the chapter 5 notebook's drift experiment.
CHAPTER5_SITE_SIZES = (40, 80, 600, 120, 60)


def _chapter5_readout(values: Mapping[str, float]) -> str:
    from fedmed_lab.heterogeneity import drift_grid

    # NOTE: the format mirrors the f-string in the chapter 5 widget cell.
    epochs = range(1, 31)
    strength = float(values["heterogeneity"])
    plain = drift_grid(CHAPTER5_SITE_SIZES, heterogeneity=strength, proximal_mu=0.0, epochs=epochs, seed=0)
    prox = drift_grid(CHAPTER5_SITE_SIZES, heterogeneity=strength, proximal_mu=float(values["mu"]), epochs=epochs,
                      seed=0)
    return f"drift at E = 30: FedAvg {plain[-1]:.4f}, FedProx {prox[-1]:.4f}"


EXPLORERS: dict[str, ExplorerSpec] = {
    "01_pooled_objective": ExplorerSpec(
        sliders=tuple(f"site {k} n_k" for k in range(1, 6)),
        readout=_chapter1_readout,
    ),
    "04_dropout_stragglers": ExplorerSpec(
        sliders=("drop probability", "academic size", "clinic size"),
        readout=_chapter4_readout,
    ),
    "05_heterogeneity": ExplorerSpec(
        sliders=("mu", "heterogeneity"),
        readout=_chapter5_readout,
    ),
}


def expected_readout(notebook: str, values: Mapping[str, float]) -> str:
    """Return the readout HTML that notebook ``notebook``'s widget shows for ``values``.

    Raises
    ------
    KeyError
        If ``notebook`` has no registry entry, or ``values`` lacks one of its sliders.
    """
    if notebook not in EXPLORERS:
        raise KeyError(
            f"notebook {notebook!r} has no entry in fedmed_lab.explorer_registry.EXPLORERS. "
            "Add one with its slider descriptions and readout function."
        )
    spec = EXPLORERS[notebook]
    missing = [name for name in spec.sliders if name not in values]
    if missing:
        raise KeyError(f"slider values for {notebook!r} are missing {missing}: received {sorted(values)}")
    return spec.readout(values)
