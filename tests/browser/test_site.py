"""The static site from ``make site``, opened from a local http.server with no kernel."""

from __future__ import annotations

import urllib.request
from urllib.parse import urljoin, urlsplit

import pytest

from widget_pages import control_values, html_text, readout_text

from fedmed_lab.explorer_registry import EXPLORERS, expected_readout
from fedmed_lab.website import RECOMPUTE_NOTICE

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


def record_failures(page) -> list[str]:
    failures: list[str] = []
    page.on("response", lambda response: failures.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    # The widget renderer's bundled styles point one font at about:blank. That
    # request never leaves the browser, so only http(s) failures count.
    page.on("requestfailed", lambda request: failures.append(f"failed {request.url}")
            if request.url.startswith("http") else None)
    return failures


def test_index_links_resolve_without_solutions(page, built_site, screenshots):
    failures = record_failures(page)
    page.goto(f"{built_site.base_url}/index.html")
    chapter_links = page.locator("ol.chapters a")
    assert chapter_links.count() >= 1
    hrefs = [page.locator("a").nth(i).get_attribute("href") for i in range(page.locator("a").count())]
    assert not [h for h in hrefs if "solutions" in h], hrefs

    titles = [chapter_links.nth(i).text_content() for i in range(chapter_links.count())]
    chapter_hrefs = [chapter_links.nth(i).get_attribute("href") for i in range(chapter_links.count())]
    assert chapter_hrefs == sorted(chapter_hrefs), "chapters are not listed in order"
    assert all(title.strip() for title in titles)

    for href in hrefs:
        url = urljoin(page.url, href)
        assert urlsplit(url).hostname == "127.0.0.1", f"link {href} leaves the site"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200, f"{href} answered {response.status}"

    page.screenshot(path=str(screenshots / "site-index.png"), full_page=True)
    assert not failures, failures


def test_chapter_page_renders_stored_widget(page, built_site, screenshots):
    failures = record_failures(page)
    page.goto(f"{built_site.base_url}/index.html")
    page.locator("ol.chapters a").first.click()
    expect(page.locator(".fedmed-notice")).to_have_text(RECOMPUTE_NOTICE)

    # MathJax, served from the site, typesets the chapter's equations.
    expect(page.locator("span.MathJax").first).to_be_attached()

    name = page.url.rsplit("/", 1)[-1].removesuffix(".html")
    if name in EXPLORERS and EXPLORERS[name].readout is not None:
        # The widget renderer draws the state stored at execution time, without a kernel.
        expect(page.locator(".widget-slider")).to_have_count(len(EXPLORERS[name].sliders))
        expect(page.locator(".widget-output img")).to_have_count(1)
        assert readout_text(page) == html_text(expected_readout(name, control_values(page)))

    # The navigation links back to the contents.
    assert page.locator("nav.fedmed-site a", has_text="Contents").get_attribute("href").endswith("index.html")
    page.locator(".widget-slider").first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / f"site-{name}.png"))
    assert not failures, failures
