"""tools/notebooks.py: the notebooks Colab opens are generated from the MyST pages, and are current."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import notebooks  # noqa: E402

PROJECT = notebooks.Project.read()
PAGES = notebooks.notebook_pages(PROJECT.book)

PAGE = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

(tiny-page)=
# A tiny page

Focal modulation {cite}`yang2022focalnet` replaces attention {cite:p}`vaswani2017attention,dosovitskiy2021vit`;
{cite:t}`liu2021swin` use windows. A {term}`gate <gates>` weighs each {term}`token`; see {doc}`other`,
{ref}`the exercise <ex-double>`, {ref}`tiny-page` and [a file](repo:benchmarks/results/x.json).

```{code-cell} ipython3
try:
    import focaledu
except ImportError:  # e.g. on Colab
    %pip install --quiet "focaledu @ git+https://example.org/old"
    import focaledu
```

## Exercises

````{exercise} Double
:label: ex-double

Return twice `x`, e.g. $2x$.

```python
def double(x):
    raise NotImplementedError("multiply by two")
```
````

````{solution-start} ex-double
:class: dropdown
````

SECRET: multiplying by two doubles.

```{code-cell} ipython3
:tags: [solution]

def double(x):
    return 2 * x
```

````{solution-end}
````

After the solution.

```{code-cell} ipython3
:tags: [hide-input]

print(double(2))
```
'''


@pytest.fixture
def project(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (book / "references.bib").write_text((PROJECT.book / "references.bib").read_text())
    (book / "tiny.md").write_text(PAGE)
    (book / "other.md").write_text("# The other page\n\nPlain MyST, no notebook.\n")
    return notebooks.Project("https://github.com/someone/fork", "main", "1.2.3", book)


def test_every_notebook_page_has_a_current_notebook():
    assert [p.stem for p in PAGES][:2] == ["01_self_attention", "02_interaction_vs_aggregation"]
    problems = [p for p in (notebooks.stale(md, PROJECT) for md in PAGES) if p]
    assert not problems, "\n".join(problems) + "\nrun `make notebooks`"


def test_setup_cells_install_the_release_of_the_configured_repository():
    line = f'%pip install --quiet "focaledu @ git+{PROJECT.url}@v{PROJECT.version}"'
    for md in PAGES:
        nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
        setup = next(c for c in nb.cells if c.cell_type == "code")
        assert line in setup.source and "except ImportError" in setup.source, md.name
        assert line in md.read_text(), md.name
        # The backend is chosen before anything imports Keras, and an environment's choice wins.
        choose = 'os.environ.setdefault("KERAS_BACKEND", "tensorflow")'
        assert 0 <= setup.source.find(choose) < setup.source.index("import focaledu"), md.name


def test_a_rendered_page_has_no_myst_left(project):
    nb = notebooks.generate(project.book / "tiny.md", project)
    markdown = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not re.search(r"\{[a-z:-]+\}`|^`{3,}\{|^\([\w-]+\)=", markdown, re.M), markdown
    assert "(tiny-page)=" not in markdown and "# A tiny page" in markdown
    assert "([Yang et al., 2022](https://arxiv.org/abs/2203.11926))" in markdown
    assert "([Vaswani et al., 2017](https://arxiv.org/abs/1706.03762); [Dosovitskiy et al., 2021](" in markdown
    assert "[Liu et al. (2021)](https://arxiv.org/abs/2103.14030) use windows" in markdown
    assert "A gate weighs each token" in markdown
    assert "[The other page](https://github.com/someone/fork/blob/main/book/other.md)" in markdown
    assert "the exercise, A tiny page and" in markdown  # labels on this page: text, no link
    assert "[a file](https://github.com/someone/fork/blob/main/benchmarks/results/x.json)" in markdown
    exercise = next(c for c in nb.cells if "Exercise: Double" in c.source)
    assert "\n#### Exercise: Double\n\nReturn twice `x`, e.g. $2x$." in exercise.source
    assert ":label:" not in exercise.source and "```python\ndef double(x):" in exercise.source


def test_solutions_are_collapsed_and_tagged(project):
    nb = notebooks.generate(project.book / "tiny.md", project)
    (explanation,) = [c for c in nb.cells if "SECRET" in c.source]
    assert explanation.cell_type == "markdown" and explanation.metadata["tags"] == ["solution"]
    assert explanation.source.startswith("<details>\n<summary><b>Solution</b></summary>")
    assert explanation.source.endswith("</details>")
    code = [c for c in nb.cells if c.cell_type == "code"]
    solution, shown = code[1], code[2]
    assert "return 2 * x" in solution.source
    assert solution.metadata["cellView"] == "form" and solution.metadata["jupyter"] == {"source_hidden": True}
    assert shown.metadata["tags"] == ["hide-input"] and shown.metadata["cellView"] == "form"
    assert "cellView" not in code[0].metadata  # the setup cell is shown
    after = next(c for c in nb.cells if "After the solution." in c.source)
    assert "tags" not in after.metadata and "<details>" not in after.source
    assert "jupytext" not in nb.metadata


def test_stale_reports_a_setup_cell_and_a_notebook_out_of_date(project):
    md = project.book / "tiny.md"
    assert "does not install git+https://github.com/someone/fork@v1.2.3" in notebooks.stale(md, project)
    md.write_text(notebooks.sync_setup(md.read_text(), project))
    assert "@v1.2.3" in md.read_text() and "example.org" not in md.read_text()
    assert notebooks.stale(md, project) == "tiny.ipynb does not exist"
    nbformat.write(notebooks.generate(md, project), md.with_suffix(".ipynb"))
    assert notebooks.stale(md, project) is None
    md.write_text(md.read_text().replace("After the solution.", "After the solution, edited."))
    assert notebooks.stale(md, project) == "tiny.ipynb differs from what tiny.md generates"


def test_seed_cache_serves_a_current_notebooks_outputs_to_the_book_build(project, tmp_path):
    from jupyter_cache import get_cache
    from myst_nb.core.read import read_myst_markdown_notebook

    md = project.book / "tiny.md"
    md.write_text(notebooks.sync_setup(md.read_text(), project))
    nb = notebooks.generate(md, project)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):  # as if executed
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"cell {i}\n")]
        cell.execution_count = i + 1
    nbformat.write(nb, md.with_suffix(".ipynb"))
    assert notebooks.seed_cache(tmp_path / "cache", [md], project) == []
    # MyST-NB finds the outputs under the page's code as it reads the .md, and keeps the page's tags.
    page = read_myst_markdown_notebook(md.read_text(), path=str(md))
    _, merged = get_cache(tmp_path / "cache").merge_match_into_notebook(page)
    served = [c for c in merged.cells if c.cell_type == "code"]
    assert [c.outputs[0]["text"] for c in served] == [f"cell {i}\n" for i in range(len(code))]
    assert served[-1].metadata["tags"] == ["hide-input"]
    # A page edited after its notebook is left to execute: nothing is cached for its new code.
    md.write_text(md.read_text().replace("print(double(2))", "print(double(3))"))
    assert notebooks.seed_cache(tmp_path / "fresh", [md], project) == ["tiny"]
    with pytest.raises(KeyError):
        get_cache(tmp_path / "fresh").match_cache_notebook(read_myst_markdown_notebook(md.read_text(), path=str(md)))


@pytest.mark.parametrize("change, error, match", [
    ("{cite}`yang2022focalnet`", "{cite}`nobody2099`", r"tiny: \{cite\} key 'nobody2099' is not in references.bib"),
    ("{ref}`tiny-page`", "{ref}`nowhere`", r"tiny: \{ref\} label 'nowhere' is not defined"),
    (":tags: [solution]", ":tags: []", r"code cell inside a solution is not tagged 'solution'"),
    ("After the solution.", "```{note}\nA note.\n```", r"no plain-Markdown rendering for the \{note\} directive"),
])
def test_what_cannot_be_rendered_is_named(project, change, error, match):
    md = project.book / "tiny.md"
    md.write_text(md.read_text().replace(change, error, 1))
    with pytest.raises((KeyError, ValueError), match=match):
        notebooks.generate(md, project)


def test_the_repository_url_is_defined_once():
    """_config.yml's repository.url is the one place; the repo: links and CITATION.cff must agree with it."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    scheme = config["sphinx"]["config"]["myst_url_schemes"]["repo"]
    assert scheme == f"{PROJECT.url}/blob/{PROJECT.branch}/{{{{path}}}}"
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["repository-code"] == PROJECT.url
    for md in sorted(PROJECT.book.glob("*.md")):
        prose = "\n".join(line for line in md.read_text().split("\n") if "%pip install" not in line)
        hard_coded = [u for u in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", prose) if u.startswith(PROJECT.url)]
        assert not hard_coded, f"{md.name}: write repository links as [text](repo:path), not {hard_coded[0]}"


def test_check_command_exits_non_zero_and_names_the_page(project, monkeypatch, capsys):
    monkeypatch.setattr(notebooks.Project, "read", classmethod(lambda cls, root=None: project))
    assert notebooks.main(["--check", "tiny"]) == 1
    assert "tiny.md: a setup cell does not install" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        notebooks.main(["--check", "nonexistent"])
    assert "are not notebook pages of book/; choose from: tiny" in capsys.readouterr().err


def test_a_fork_changes_one_value_and_the_links_follow(project, tmp_path):
    for name in ("_config.yml", "CITATION.cff"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    assert notebooks.sync_repository_links(project, tmp_path) == ["_config.yml", "CITATION.cff"]
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert config["sphinx"]["config"]["myst_url_schemes"]["repo"] == "https://github.com/someone/fork/blob/main/{{path}}"
    assert yaml.safe_load((tmp_path / "CITATION.cff").read_text())["repository-code"] == project.url
    assert notebooks.sync_repository_links(project, tmp_path) == []  # nothing left to change
