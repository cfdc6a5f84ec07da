"""Find the chapter widgets and drive their sliders in a rendered page.

A chapter explorer follows the authoring conventions: sliders with a
``description``, one ``ipywidgets.HTML`` readout and an ``ipywidgets.Output``
holding the figure. Both Voila and JupyterLab render them with the
ipywidgets 8 classes used below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

SLIDER_MODELS = {"IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "SelectionSliderModel"}
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def widget_notebooks(directory: Path, registered: Iterable[str] = ()) -> list[Path]:
    """Return the chapter notebooks whose stored widget state contains a slider.

    Notebooks named in ``registered`` are included even when their stored
    state has no slider, so a chapter executed without saving widget state is
    still tested.
    """
    found = []
    for path in sorted(directory.glob("[0-9][0-9]_*.ipynb")):
        metadata = json.loads(path.read_text()).get("metadata", {})
        state = metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        if path.stem in registered or any(model.get("model_name") in SLIDER_MODELS for model in state.values()):
            found.append(path)
    return found


class _TextCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(html: str) -> str:
    """Return the text a browser shows for ``html`` (its ``textContent``), whitespace collapsed."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return normalize_space("".join(collector.parts))


def normalize_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def readout_text(scope) -> str:
    """Return the text of the one HTML readout inside ``scope`` (a Playwright page or locator)."""
    readouts = scope.locator(".widget-html .widget-html-content")
    assert readouts.count() == 1, f"expected one ipywidgets.HTML readout, found {readouts.count()}"
    return normalize_space(readouts.first.text_content())


def figure_source(scope) -> str:
    """Return the ``src`` of the image in the widget's Output area, or '' while it is empty."""
    images = scope.locator(".widget-output img")
    if images.count() == 0:
        return ""
    return images.first.get_attribute("src") or ""


def slider_descriptions(scope) -> list[str]:
    """Return the description of every slider inside ``scope``, in page order."""
    labels = scope.locator(".widget-slider > .widget-label")
    return [normalize_space(labels.nth(i).text_content()) for i in range(labels.count())]


def control_values(scope) -> dict[str, float | str | bool]:
    """Return the value of every slider, Dropdown and Checkbox, keyed by its description.

    A slider's value is the number its readout shows, a Dropdown's the label
    of its selected option and a Checkbox's whether it is ticked.
    """
    values: dict[str, float | str | bool] = {}
    sliders = scope.locator(".widget-slider")
    for index in range(sliders.count()):
        slider = sliders.nth(index)
        description = normalize_space(slider.locator(".widget-label").first.text_content())
        displayed_number = slider.locator(".widget-readout").first.text_content().replace(",", "")
        values[description] = float(displayed_number)

    dropdowns = scope.locator(".widget-dropdown")
    for index in range(dropdowns.count()):
        dropdown = dropdowns.nth(index)
        description = normalize_space(dropdown.locator(".widget-label").first.text_content())
        values[description] = dropdown.locator("select").evaluate("s => s.options[s.selectedIndex].textContent")

    checkboxes = scope.locator(".widget-checkbox")
    for index in range(checkboxes.count()):
        checkbox = checkboxes.nth(index)
        description = normalize_space(checkbox.locator(".widget-label-basic").first.text_content())
        values[description] = checkbox.locator("input[type=checkbox]").is_checked()
    return values


def move_slider(slider) -> str:
    """Press End on the slider's handle, or Home when it already sits at its maximum.

    Returns the key pressed. The kernel receives the new value as it does
    after a drag.
    """
    handle = slider.locator(".noUi-handle").first
    now = float(handle.get_attribute("aria-valuenow"))
    maximum = float(handle.get_attribute("aria-valuemax"))
    key = "Home" if now >= maximum else "End"
    handle.focus()
    handle.press(key)
    return key
