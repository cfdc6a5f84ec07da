"""Chapter 1 as a lecturer uses it: JupyterLab, clear outputs, Run All, move a slider."""

from __future__ import annotations

import pytest
from conftest import NOTEBOOKS
from test_voila_widgets import MIN_FIGURE_URL_LENGTH, wait_for_new_figure
from widget_pages import (control_values, figure_source, html_text, move_slider, readout_text,
                          slider_descriptions)

from fedmed_lab.explorer_registry import EXPLORERS, expected_readout

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

CHAPTER = "01_pooled_objective"


def wait_for_kernel_idle(page) -> None:
    # The toolbar's kernel indicator reports idle before the kernel connects,
    # so wait for the status bar's text instead.
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle")


def test_chapter1_runs_and_slides_in_jupyterlab(page, jupyterlab_server, screenshots):
    assert (NOTEBOOKS / f"{CHAPTER}.ipynb").is_file()
    spec = EXPLORERS[CHAPTER]
    url = f"{jupyterlab_server.base_url}/lab/tree/{CHAPTER}.ipynb?token={jupyterlab_server.token}"
    page.goto(url)
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(notebook).to_be_visible()
    wait_for_kernel_idle(page)

    # Start from no outputs, so every widget on the page comes from this run.
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    expect(notebook.locator(".widget-slider")).to_have_count(0)

    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

    sliders = notebook.locator(".widget-slider")
    expect(sliders).to_have_count(len(spec.sliders))
    expect(notebook.locator(".jp-InputArea-prompt", has_text="[*]")).to_have_count(0)
    wait_for_kernel_idle(page)
    expect(notebook.locator(".widget-output img")).to_have_count(1)
    assert sorted(slider_descriptions(notebook)) == sorted(spec.sliders)
    assert readout_text(notebook) == html_text(expected_readout(CHAPTER, control_values(notebook)))

    before_text = readout_text(notebook)
    before_figure = figure_source(notebook)
    first_slider = sliders.first
    first_slider.scroll_into_view_if_needed()
    move_slider(first_slider)
    after_figure = wait_for_new_figure(page, before_figure)
    expected = html_text(expected_readout(CHAPTER, control_values(notebook)))
    assert expected != before_text

    expect(notebook.locator(".widget-html .widget-html-content")).to_have_text(expected)
    assert readout_text(notebook) == expected
    assert len(after_figure) > MIN_FIGURE_URL_LENGTH

    # jupyter/overrides.json keeps the news prompt away.
    expect(page.get_by_text("official Jupyter news")).to_have_count(0)

    first_slider.locator("xpath=ancestor::div[contains(@class, 'jp-Cell')][1]").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / f"jupyterlab-{CHAPTER}.png"))
