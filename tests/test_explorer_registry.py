"""The explorer registry reproduces each widget's stored default readout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmed_lab.explorer_registry import EXPLORERS, expected_readout

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def stored_widgets(name: str) -> list[dict]:
    notebook = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    return list(notebook["metadata"]["widgets"][WIDGET_STATE]["state"].values())


def slider_value(state: dict) -> float:
    # A SelectionSlider stores the index of its option, whose label is the number shown.
    if "index" in state:
        return float(state["_options_labels"][state["index"]])
    return state["value"]


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_registry_matches_stored_default(name):
    models = stored_widgets(name)
    sliders = {m["state"]["description"]: slider_value(m["state"])
               for m in models if m["model_name"].endswith("SliderModel")}
    readouts = [m["state"]["value"] for m in models if m["model_name"] == "HTMLModel"]

    assert sorted(sliders) == sorted(EXPLORERS[name].sliders)
    assert readouts == [expected_readout(name, sliders)]


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_registry_names_existing_notebook(name):
    assert (NOTEBOOKS / f"{name}.ipynb").is_file()


def test_registry_rejects_unknown_notebook():
    with pytest.raises(KeyError, match="no entry in fedmed_lab.explorer_registry.EXPLORERS"):
        expected_readout("99_missing", {})


def test_registry_rejects_missing_slider():
    with pytest.raises(KeyError, match="are missing"):
        expected_readout("01_pooled_objective", {"site 1 n_k": 80})
