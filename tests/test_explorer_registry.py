"""The explorer registry reproduces each widget's stored default readout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmed_lab.explorer_registry import EXPLORERS, ExplorerSpec, expected_readout

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def stored_widgets(name: str) -> list[dict]:
    notebook = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    return list(notebook["metadata"]["widgets"][WIDGET_STATE]["state"].values())


def control_value(model: dict) -> float | str | bool:
    state = model["state"]
    # A SelectionSlider and a Dropdown store the index of the selected option.
    if model["model_name"] == "SelectionSliderModel":
        return float(state["_options_labels"][state["index"]])
    if model["model_name"] == "DropdownModel":
        return state["_options_labels"][state["index"]]
    return state["value"]


@pytest.mark.parametrize("name", sorted(n for n, spec in EXPLORERS.items() if spec.readout is not None))
def test_registry_matches_stored_default(name):
    models = stored_widgets(name)
    controls = [m for m in models if m["model_name"].endswith(("SliderModel", "DropdownModel", "CheckboxModel"))
                and "description" in m["state"]]
    values = {m["state"]["description"]: control_value(m) for m in controls}
    sliders = [m["state"]["description"] for m in controls if m["model_name"].endswith("SliderModel")]
    readouts = [m["state"]["value"] for m in models if m["model_name"] == "HTMLModel"]

    assert sorted(sliders) == sorted(EXPLORERS[name].sliders)
    assert readouts == [expected_readout(name, values)]


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_registry_names_existing_notebook(name):
    assert (NOTEBOOKS / f"{name}.ipynb").is_file()


def test_registry_rejects_unknown_notebook():
    with pytest.raises(KeyError, match="no entry in fedmed_lab.explorer_registry.EXPLORERS"):
        expected_readout("99_missing", {})


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_registry_sliders_match_stored_widget(name):
    sliders = [m["state"]["description"] for m in stored_widgets(name) if m["model_name"].endswith("SliderModel")]
    assert sorted(sliders) == sorted(EXPLORERS[name].sliders)


def test_registry_rejects_entry_without_readout(monkeypatch):
    monkeypatch.setitem(EXPLORERS, "99_no_readout", ExplorerSpec(sliders=("x",), readout=None))
    with pytest.raises(ValueError, match="no readout function"):
        expected_readout("99_no_readout", {"x": 1})


def test_registry_rejects_missing_slider():
    with pytest.raises(KeyError, match="are missing"):
        expected_readout("01_pooled_objective", {"site 1 n_k": 80})
