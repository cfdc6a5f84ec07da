"""Every chapter widget, served by Voila: each slider moves the readout and the figure.

The expected readout for each setting comes from the chapter's entry in
``fedmed_lab.explorer_registry.EXPLORERS``, computed in this process.
"""

from __future__ import annotations

import pytest
from conftest import NOTEBOOKS
from widget_pages import (control_values, figure_source, html_text, move_slider, readout_text,
                          slider_descriptions, widget_notebooks)

from fedmed_lab.explorer_registry import EXPLORERS, expected_readout

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

WIDGET_NOTEBOOKS = widget_notebooks(NOTEBOOKS, registered=EXPLORERS)

# Shortest PNG data URL accepted as a drawn figure. With matplotlib 3.11 at
# 100 dpi, empty 6.4 x 3.2 inch axes encode to about 10,800 characters and
# chapter 1's bar chart to about 36,000.
MIN_FIGURE_URL_LENGTH = 15_000

# Milliseconds Voila may take to execute a chapter before its page loads.
# Chapters take 5-10 s on an idle 2-core machine, but a loaded one made
# chapter 5 miss a 60 s limit. Chapter 11 starts a Flower deployment (a
# SuperLink and five SuperNodes) and trains two rounds, 30-90 s.
PAGE_LOAD_TIMEOUT = {"11_capstone_flower": 300_000}
DEFAULT_PAGE_LOAD_TIMEOUT = 180_000


def wait_for_new_figure(page, previous: str) -> str:
    page.wait_for_function(
        """previous => {
            const image = document.querySelector('.widget-output img');
            return image !== null && image.getAttribute('src') !== previous;
        }""",
        arg=previous,
    )
    return figure_source(page)


def test_widget_chapters_found():
    assert WIDGET_NOTEBOOKS, f"no notebook in {NOTEBOOKS} stores a slider's widget state"


@pytest.mark.parametrize("notebook", WIDGET_NOTEBOOKS, ids=lambda path: path.stem)
def test_every_slider_updates_readout_and_figure(notebook, page, voila_server, screenshots):
    name = notebook.stem
    assert name in EXPLORERS, f"{name} has a widget but no entry in fedmed_lab.explorer_registry.EXPLORERS"
    spec = EXPLORERS[name]

    page.goto(f"{voila_server.base_url}/voila/render/{notebook.name}",
              timeout=PAGE_LOAD_TIMEOUT.get(name, DEFAULT_PAGE_LOAD_TIMEOUT))
    sliders = page.locator(".widget-slider")
    expect(sliders).to_have_count(len(spec.sliders))
    if spec.figure:
        expect(page.locator(".widget-output img")).to_have_count(1)
    expect(page.locator(".widget-html .widget-html-content")).not_to_have_text("")
    assert sorted(slider_descriptions(page)) == sorted(spec.sliders)

    # The default view shows what the package computes for the default values.
    if spec.readout is not None:
        assert readout_text(page) == html_text(expected_readout(name, control_values(page)))
    if spec.figure:
        assert len(figure_source(page)) > MIN_FIGURE_URL_LENGTH

    for index in range(sliders.count()):
        slider = sliders.nth(index)
        description = slider.locator(".widget-label").first.text_content()
        before_text = readout_text(page)
        before_figure = figure_source(page)

        key = move_slider(slider)
        if spec.figure:
            # The figure is drawn after the readout, so a new figure means the callback finished.
            after_figure = wait_for_new_figure(page, before_figure)
            assert len(after_figure) > MIN_FIGURE_URL_LENGTH, f"figure after {key} on {description!r} is empty"

        if spec.readout is None:
            if not spec.figure:
                expect(page.locator(".widget-html .widget-html-content")).not_to_have_text(before_text)
            continue

        values = control_values(page)
        expected = html_text(expected_readout(name, values))
        if not spec.figure:
            assert expected != before_text, f"{key} on {description!r} changes nothing a test can observe"
        # A readout may legitimately stay the same (chapter 9 alerts in all 9 months at either bias).
        expect(page.locator(".widget-html .widget-html-content")).to_have_text(expected)
        assert readout_text(page) == expected, f"readout after {key} on slider {description!r} ({values})"

    page.screenshot(path=str(screenshots / f"voila-{name}.png"), full_page=True)
