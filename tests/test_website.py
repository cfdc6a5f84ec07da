"""``make site``: pages from stored outputs, every asset local, no solutions."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from fedmed_lab.website import INDEX_NOTICE, RECOMPUTE_NOTICE, build_site, notebook_title

ROOT = Path(__file__).parents[1]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.assets: list[str] = []
        self.anchors: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "img") and attributes.get("src"):
            self.assets.append(attributes["src"])
        if tag == "link" and attributes.get("href"):
            self.assets.append(attributes["href"])
        if tag == "a" and attributes.get("href"):
            self.anchors.append(attributes["href"])


def links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Two chapters (chapter 1 and a renamed copy) and one exercise, beside a solutions folder."""
    source = tmp_path_factory.mktemp("course")
    (source / "notebooks").mkdir()
    chapter1 = ROOT / "notebooks" / "01_pooled_objective.ipynb"
    shutil.copy(chapter1, source / "notebooks" / chapter1.name)
    second = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Second chapter\n\nText $x^2$.")])
    nbformat.write(second, source / "notebooks" / "02_second.ipynb")
    (source / "exercises").mkdir()
    exercise = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Exercise one")])
    nbformat.write(exercise, source / "exercises" / "ex01_one.ipynb")
    (source / "solutions").mkdir()
    nbformat.write(exercise, source / "solutions" / "ex01_one.ipynb")
    output = source / "site"
    pages = build_site(source / "notebooks", source / "exercises", output)
    return output, pages


def test_pages_in_chapter_order(course):
    output, pages = course
    assert [p.href for p in pages] == [
        "chapters/01_pooled_objective.html", "chapters/02_second.html", "exercises/ex01_one.html",
    ]
    index = links(output / "index.html").anchors
    assert index.index("chapters/01_pooled_objective.html") < index.index("chapters/02_second.html")
    assert "exercises/ex01_one.html" in index
    assert "exercises/ex01_one.ipynb" in index


def test_no_link_to_solutions(course):
    output, _ = course
    for page in output.rglob("*.html"):
        assert not [href for href in links(page).anchors if "solutions" in href], page
    assert not (output / "solutions").exists()


def test_every_asset_is_served_by_site(course):
    output, _ = course
    for page in output.rglob("*.html"):
        for asset in links(page).assets:
            if asset.startswith("data:"):
                continue
            assert not re.match(r"^(https?:)?//", asset), f"{page.name} loads {asset} from outside the site"
            local = (page.parent / asset.split("?")[0]).resolve()
            assert local.is_file(), f"{page.name} loads {asset}, which the site does not contain"


def test_chapter_pages_state_recompute_notice(course):
    output, _ = course
    assert INDEX_NOTICE in (output / "index.html").read_text(encoding="utf-8")
    for page in (output / "chapters").glob("*.html"):
        assert RECOMPUTE_NOTICE in page.read_text(encoding="utf-8")


def test_widget_state_embedded_for_renderer(course):
    output, _ = course
    text = (output / "chapters" / "01_pooled_objective.html").read_text(encoding="utf-8")
    assert 'application/vnd.jupyter.widget-state+json' in text
    assert "IntSliderModel" in text
    assert "02_second.html" in text  # the next-chapter link


def test_solutions_folder_rejected(tmp_path):
    with pytest.raises(ValueError, match="solutions folder"):
        build_site(ROOT / "notebooks", ROOT / "solutions", tmp_path / "site")


def test_empty_notebook_folder_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no numbered chapter notebooks"):
        build_site(tmp_path, tmp_path / "exercises", tmp_path / "site")


def test_title_falls_back_to_file_name():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Only a subheading")])
    assert notebook_title(notebook, "03_x") == "03_x"
