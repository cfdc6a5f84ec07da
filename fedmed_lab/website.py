"""Build the course as a static website: ``make site`` or ``python -m fedmed_lab.website``.

Pages come from the committed notebooks and their stored outputs, and nothing
is re-executed. Widget state stored at execution time (nbclient's
``store_widget_state``) lets the vendored ``@jupyter-widgets/html-manager``
renderer draw each explorer's default view without a kernel. Every script and
style a page loads is served from the site's ``static/`` folder: MathJax 2 is
copied from the ``jupyter-server-mathjax`` package and the widget renderer
from ``fedmed_lab/website_assets``, so the build and the pages work offline.

Exercises are published from ``exercises/`` (the student versions); nothing is
ever read from ``solutions/``.
"""

from __future__ import annotations

import argparse
import html
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from fedmed_lab import logger
from fedmed_lab.course import find_chapter_notebooks

ASSETS = Path(__file__).parent / "website_assets"
STATIC = "static"
# jupyter-server-mathjax ships the HTML-CSS output, not CommonHTML.
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
RECOMPUTE_NOTICE = (
    "This page shows the outputs stored when the notebook was last executed. "
    "Widgets show their default setting only, and moving a slider recomputes nothing here. "
    "To recompute, open the chapter in JupyterLab (make lab) or Voila (make voila)."
)
INDEX_NOTICE = (
    "Each chapter page shows the outputs stored when its notebook was last executed. "
    "Sliders there show their default setting and need JupyterLab (make lab) or Voila (make voila) to recompute."
)


@dataclass(frozen=True)
class Page:
    """One rendered notebook: its title, its source and its path inside the site."""

    title: str
    source: Path
    href: str


def notebook_title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """Return the text of the first Markdown level-1 heading, or ``fallback`` without one."""
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return fallback


def copy_static(output: Path) -> None:
    """Copy MathJax and the widget renderer into ``output/static``."""
    import jupyter_server_mathjax

    static = output / STATIC
    mathjax_source = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax_source, static / "mathjax", dirs_exist_ok=True)
    shutil.copytree(ASSETS / "jupyter-widgets", static / "jupyter-widgets", dirs_exist_ok=True)


def make_exporter(root: str):
    """Return an nbconvert HTML exporter whose pages load scripts only from ``root + static/``."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_template_paths=[str(ASSETS / "templates")],
        template_file="chapter.html.j2",
    )
    exporter.mathjax_url = f"{root}{STATIC}/{MATHJAX_URL}"
    exporter.exclude_anchor_links = False
    return exporter


def render_page(page: Page, output: Path, *, previous: Page | None, following: Page | None) -> None:
    """Write ``page`` as HTML under ``output``, with links to the contents and its neighbours."""
    depth = page.href.count("/")
    root = "../" * depth
    notebook = nbformat.read(page.source, as_version=4)
    resources = {
        "site": {
            "root": root,
            "static": f"{root}{STATIC}",
            "notice": RECOMPUTE_NOTICE,
            "previous": _relative(previous, root),
            "next": _relative(following, root),
        },
        "metadata": {"name": page.title},
    }
    body, _ = make_exporter(root).from_notebook_node(notebook, resources=resources)
    destination = output / page.href
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(body, encoding="utf-8")


def _relative(page: Page | None, root: str) -> dict[str, str] | None:
    if page is None:
        return None
    return {"href": root + page.href, "title": page.title}


def render_index(chapters: list[Page], exercises: list[Page]) -> str:
    """Return the contents page: chapters in order, then the exercises (student versions)."""
    chapter_items = "\n".join(
        f'    <li><a href="{html.escape(p.href)}">{html.escape(p.title)}</a></li>' for p in chapters
    )
    if exercises:
        exercise_items = "\n".join(
            f'    <li><a href="{html.escape(p.href)}">{html.escape(p.title)}</a> '
            f'(<a href="{html.escape(p.href[:-len(".html")])}.ipynb" download>notebook</a>)</li>'
            for p in exercises
        )
        exercise_list = f"  <ul class=\"exercises\">\n{exercise_items}\n  </ul>"
    else:
        exercise_list = "  <p>No exercises are published yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>fedmed-lab: federated learning for medical AI</title>
  <style>
    body {{ font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
    .notice {{ background: #e1f5fe; border-left: 4px solid #0288d1; padding: 0.5rem 0.75rem; }}
  </style>
</head>
<body>
  <h1>fedmed-lab: federated learning for medical AI</h1>
  <p class="notice">{html.escape(INDEX_NOTICE)}</p>
  <h2>Chapters</h2>
  <ol class="chapters">
{chapter_items}
  </ol>
  <h2>Exercises</h2>
{exercise_list}
</body>
</html>
"""


def build_site(notebooks: Path, exercises: Path, output: Path) -> list[Page]:
    """Render the chapters in ``notebooks`` and the exercises in ``exercises`` into ``output``.

    Returns the chapter and exercise pages written, chapters first.

    Raises
    ------
    FileNotFoundError
        If ``notebooks`` contains no numbered chapter notebook.
    ValueError
        If ``exercises`` is a ``solutions`` folder.
    """
    if Path(exercises).name == "solutions":
        raise ValueError(f"exercises={exercises} is the solutions folder; pass the generated exercises/ folder")
    chapter_paths = find_chapter_notebooks(Path(notebooks))
    if not chapter_paths:
        raise FileNotFoundError(f"no numbered chapter notebooks (NN_slug.ipynb) in {notebooks}")
    exercise_paths = sorted(Path(exercises).glob("ex*.ipynb")) if Path(exercises).is_dir() else []

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    copy_static(output)

    chapters = [Page(notebook_title(nbformat.read(p, as_version=4), p.stem), p, f"chapters/{p.stem}.html")
                for p in chapter_paths]
    for index, page in enumerate(chapters):
        previous = chapters[index - 1] if index > 0 else None
        following = chapters[index + 1] if index + 1 < len(chapters) else None
        render_page(page, output, previous=previous, following=following)

    exercise_pages = [Page(notebook_title(nbformat.read(p, as_version=4), p.stem), p, f"exercises/{p.stem}.html")
                      for p in exercise_paths]
    for page in exercise_pages:
        render_page(page, output, previous=None, following=None)
        shutil.copyfile(page.source, output / "exercises" / page.source.name)

    (output / "index.html").write_text(render_index(chapters, exercise_pages), encoding="utf-8")
    logger.info("built %d chapter and %d exercise pages in %s", len(chapters), len(exercise_pages), output)
    return [*chapters, *exercise_pages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedmed_lab.website",
                                     description="Build the course as a static website from stored outputs.")
    parser.add_argument("--notebooks", default="notebooks", help="folder of chapter notebooks (default: notebooks)")
    parser.add_argument("--exercises", default="exercises",
                        help="folder of generated student exercises (default: exercises)")
    parser.add_argument("--output", default="build/site", help="folder the site is written to (default: build/site)")
    args = parser.parse_args(argv)
    try:
        pages = build_site(Path(args.notebooks), Path(args.exercises), Path(args.output))
    except (FileNotFoundError, ValueError) as error:
        print(f"site not built: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(pages)} pages and index.html to {args.output}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
