"""Checks on the book's sources, run before the notebooks themselves.

* every ``book/*.md`` with a jupytext header is a MyST notebook, the one source
  of its page, whose ``.ipynb`` is generated from it (``make notebooks``;
  tests/test_notebooks.py checks they agree); a page without that header
  (glossary, references, the tutorial appendix) is plain MyST and holds no code cell;
* ``_toc.yml`` lists every chapter file, and every file it lists exists;
* every chapter has the shared anatomy (objectives, Summary, >= 3 checked
  Exercises, a Colab setup cell, nbval-pinned outputs);
* a repository URL written in a page matches ``repository.url`` in ``_config.yml``.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
PAGES = sorted(BOOK.glob("*.md"))
MD_FILES = [page for page in PAGES if page.read_text().startswith("---\njupytext:")]
PLAIN_PAGES = [page for page in PAGES if page not in MD_FILES]
IPYNB_FILES = sorted(BOOK.glob("*.ipynb"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _toc_files(entry) -> list[str]:
    """Files named anywhere in a jb-book/jb-article _toc.yml structure."""
    files = []
    if isinstance(entry, dict):
        for key in ("root", "file"):
            if key in entry:
                files.append(str(entry[key]))
        for key in ("parts", "chapters", "sections"):
            for child in entry.get(key) or []:
                files.extend(_toc_files(child))
    return files


def _strip_suffix(name: str) -> str:
    return re.sub(r"\.(md|ipynb)$", "", name)


def test_book_has_pages():
    assert MD_FILES, "book/ has no .md pages"


@pytest.mark.parametrize("md", PLAIN_PAGES, ids=_rel)
def test_plain_page_has_no_code_cell(md):
    """Code only runs in a notebook page; a plain page would show it unexecuted."""
    assert "```{code-cell}" not in md.read_text(), (
        f"{_rel(md)} has code cells but no jupytext header: give it one "
        "(`jupytext --to md:myst`) and run `make notebooks`"
    )
    assert not md.with_suffix(".ipynb").exists(), f"{_rel(md)} is a plain page but has a notebook"


@pytest.mark.parametrize("md", MD_FILES, ids=_rel)
def test_md_is_a_myst_notebook_with_a_generated_notebook(md):
    notebook = jupytext.read(md)
    jupytext_meta = notebook.metadata.get("jupytext", {})
    assert "formats" not in jupytext_meta, (
        f"{_rel(md)}: its .ipynb is generated (`make notebooks`), not paired; remove `formats:` from the header"
    )
    text_format = jupytext_meta.get("text_representation", {}).get("format_name")
    assert text_format == "myst", (
        f"{_rel(md)}: jupytext header needs text_representation.format_name: myst "
        "(without it the book renders the page as plain Markdown)"
    )
    kernel = notebook.metadata.get("kernelspec", {}).get("name")
    assert kernel == "python3", f"{_rel(md)}: kernelspec name is {kernel!r}, not 'python3'"
    assert md.with_suffix(".ipynb").exists(), (
        f"{_rel(md)} has no {_rel(md.with_suffix('.ipynb'))}: run `make notebooks`"
    )


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=_rel)
def test_ipynb_has_md_source(ipynb):
    assert ipynb.with_suffix(".md").exists(), (
        f"{_rel(ipynb)} has no .md source: the .md is the source of truth; "
        "write the page as a MyST notebook and run `make notebooks`"
    )


def test_toc_lists_every_chapter():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = [_strip_suffix(name) for name in _toc_files(toc)]
    missing_files = [name for name in listed if not any(
        (ROOT / f"{name}{suffix}").exists() for suffix in (".md", ".ipynb")
    )]
    assert not missing_files, f"_toc.yml lists files that do not exist: {missing_files}"
    pages = {_strip_suffix(_rel(md)) for md in PAGES}
    unlisted = sorted(pages - set(listed))
    assert not unlisted, f"_toc.yml does not list: {unlisted}"
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    assert not duplicates, f"_toc.yml lists these more than once: {duplicates}"


@pytest.mark.parametrize("md", PAGES, ids=_rel)
def test_install_url_matches_config(md):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    for found in re.findall(r"git\+(https?://[^\s\"'@#]+)", md.read_text()):
        assert found.rstrip("/") == url, (
            f"{_rel(md)} installs from {found}, but _config.yml's repository.url is {url}"
        )


CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_anatomy(md):
    """The d2l-style anatomy every chapter shares, and a Colab-safe first code cell."""
    text = md.read_text()
    for heading in ("\n## What you will learn", "\n## Summary", "\n## Exercises"):
        assert heading.lower() in text.lower(), f"{_rel(md)} lacks {heading.strip()!r}"
    exercises = text.split("\n## Exercises", 1)[1]
    assert exercises.count("```{exercise}") >= 3, f"{_rel(md)} has fewer than 3 exercises"
    assert "focaledu.checks." in exercises or "checks." in exercises, f"{_rel(md)}: exercises without auto-checks"
    first_code = next(c for c in jupytext.read(md).cells if c.cell_type == "code")
    assert "except ImportError" in first_code.source and "pip install" in first_code.source
    assert "NBVAL_CHECK_OUTPUT" in text, f"{_rel(md)} pins no output for nbval"


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_explorer_has_a_kernel_free_version(md):
    """Sliders need a kernel; the static site gets pre-rendered frames instead."""
    text = md.read_text()
    if re.search(r"widgets\.\w*explorer\(", text):
        assert "frames_explorer(" in text, f"{_rel(md)} has an ipywidgets explorer but no frames_explorer"
