"""The chapters' notebooks, generated from their MyST sources: what Colab, Binder and JupyterLab open.

Each ``book/<page>.md`` with a jupytext header is the one source of its page:
the book builds from it, and this script writes ``book/<page>.ipynb``, the
notebook the launch buttons open. Markup only Sphinx renders becomes plain
Markdown there:

- an exercise becomes a heading ``Exercise: <title>`` and its text;
- a solution's text becomes a collapsed ``<details>`` cell tagged ``solution``,
  and the code cells of a solution, like hidden-input cells, are collapsed
  (Colab's form view, JupyterLab's hidden input) but still run;
- ``{cite}`` becomes "(Author et al., year)" linked to the source, ``{term}``
  its text, ``{doc}`` and ``{ref}`` a link to the page (its Colab notebook, or
  the Markdown file in the repository), and a ``repo:`` link a repository URL.

It also writes every setup cell's install line (``%pip install ...``) from
``_config.yml`` (``repository.url``) and ``pyproject.toml`` (the version:
the release tag ``v<version>``), in the Markdown sources first, and the other
places that name the repository: the ``repo:`` link scheme of ``_config.yml``
and ``CITATION.cff``'s ``repository-code``. A fork changes ``repository.url``
and runs ``make notebooks``.

    python tools/notebooks.py                # sync setup cells, regenerate and execute every notebook
    python tools/notebooks.py 04_gated_aggregation   # some pages only
    python tools/notebooks.py --check        # exit 1 if a notebook or setup cell is out of date

Executing needs a kernel with focaledu (``make notebooks`` runs it from the
project's venv, cwd ``book/``, as the book build does).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
COLAB = "https://colab.research.google.com/github"
FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}\s*(?P<arg>.*)$")
OPTION = re.compile(r"^:[\w-]+:")
TARGET = re.compile(r"^\((?P<label>[\w-]+)\)=\s*$")
ROLE = re.compile(r"\{(?P<role>cite(?::[pt])?|term|doc|ref)\}`(?P<body>[^`]+)`")
REPO_LINK = re.compile(r"\]\(repo:(?P<path>[^)\s]+)\)")
INSTALL = re.compile(r'^(?P<indent>\s*)%pip install --quiet "focaledu @ [^"]*"', re.M)
# The other places that name the repository, written from repository.url too.
REPO_SCHEME = re.compile(r'^(?P<indent>\s*)repo: "[^"]*"', re.M)  # _config.yml's myst_url_schemes
CITATION_CODE = re.compile(r'^(?P<indent>)repository-code: "[^"]*"', re.M)  # CITATION.cff
HIDDEN = {"hide-input", "remove-input", "solution"}


@dataclass(frozen=True)
class Project:
    """What the generated notebooks link to and install."""

    url: str  # https://github.com/<owner>/<repo>
    branch: str
    version: str
    book: Path

    @classmethod
    def read(cls, root: Path = ROOT) -> "Project":
        config = yaml.safe_load((root / "_config.yml").read_text())
        version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
        repo = config["repository"]
        return cls(repo["url"].rstrip("/"), repo.get("branch", "main"), version, root / "book")

    @property
    def install_line(self) -> str:
        return f'%pip install --quiet "focaledu @ git+{self.url}@v{self.version}"'

    def file_url(self, path: str) -> str:
        return f"{self.url}/blob/{self.branch}/{path}"

    def page_url(self, stem: str) -> str:
        """Where a page opens outside the book: its notebook in Colab, else its Markdown on GitHub."""
        if (self.book / f"{stem}.md").is_file() and is_notebook_page(self.book / f"{stem}.md"):
            return f"{COLAB}/{self.url.split('github.com/', 1)[1]}/blob/{self.branch}/book/{stem}.ipynb"
        return self.file_url(f"book/{stem}.md")


def is_notebook_page(md: Path) -> bool:
    """A page with a jupytext header (kernelspec) is a notebook; the others are plain MyST pages."""
    text = md.read_text()
    return text.startswith("---\n") and "\nkernelspec:" in text.split("\n---\n", 1)[0]


def notebook_pages(book: Path) -> list[Path]:
    return [md for md in sorted(book.glob("*.md")) if is_notebook_page(md)]


# --------------------------------------------------------------------------- #
# references: the bibliography, page titles and labels


def _authors(field: str) -> str:
    names = [n.strip() for n in re.split(r"\s+and\s+", field)]
    last = [n.strip("{}") if n.startswith("{") else (n.split(",")[0] if "," in n else n.split()[-1]) for n in names]
    last = [n.replace("{", "").replace("}", "") for n in last]
    return last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2 else f"{last[0]} et al."


def read_bibliography(path: Path) -> dict[str, tuple[str, str, str | None]]:
    """``{key: (authors, year, url)}`` of a BibTeX file, authors as cited ("Yang et al.")."""
    entries = {}
    for match in re.finditer(r"^@\w+\{(?P<key>[^,\s]+),(?P<body>.*?)^\}", path.read_text(), re.M | re.S):
        fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*?)\},?\s*$", match["body"], re.M))
        entries[match["key"]] = (_authors(fields.get("author", "?")), fields.get("year", "n.d."), fields.get("url"))
    return entries


def read_labels(book: Path) -> dict[str, tuple[str, str]]:
    """``{label: (page stem, title)}`` for ``(label)=`` targets and exercise labels."""
    labels = {}
    for md in sorted(book.glob("*.md")):
        lines = md.read_text().split("\n")
        for i, line in enumerate(lines):
            target = TARGET.match(line)
            if target:
                heading = next((l for l in lines[i + 1:] if l.startswith("#")), "").lstrip("#").strip()
                labels[target["label"]] = (md.stem, heading)
            fence = FENCE_OPEN.match(line)
            if fence and fence["name"] == "exercise":
                for option in lines[i + 1:i + 5]:
                    if option.startswith(":label:"):
                        labels[option.split(":", 2)[2].strip()] = (md.stem, f"Exercise: {fence['arg'].strip()}")
    return labels


def page_title(md: Path) -> str:
    return next((l[2:].strip() for l in md.read_text().split("\n") if l.startswith("# ")), md.stem)


class Renderer:
    """Turns the MyST roles and links of a page's Markdown into plain Markdown."""

    def __init__(self, project: Project, page: str):
        self.project, self.page = project, page
        self.bibliography = read_bibliography(project.book / "references.bib")
        self.labels = read_labels(project.book)

    def _cite(self, keys: list[str], textual: bool) -> str:
        parts = []
        for key in keys:
            if key not in self.bibliography:
                raise KeyError(f"{self.page}: {{cite}} key {key!r} is not in references.bib")
            authors, year, url = self.bibliography[key]
            text = f"{authors} ({year})" if textual else f"{authors}, {year}"
            parts.append(f"[{text}]({url})" if url else text)
        return " and ".join(parts) if textual else "(" + "; ".join(parts) + ")"

    def _link(self, text: str, stem: str) -> str:
        return f"[{text}]({self.project.page_url(stem)})" if stem != self.page else text

    def role(self, match: re.Match) -> str:
        role, body = match["role"], match["body"]
        explicit = re.fullmatch(r"(?P<text>.*?)\s*<(?P<target>[^>]+)>", body, re.S)
        text, target = (explicit["text"], explicit["target"]) if explicit else (None, body)
        if role.startswith("cite"):
            return self._cite([k.strip() for k in target.split(",")], textual=role == "cite:t")
        if role == "term":
            return text or target
        if role == "doc":
            stem = Path(target).stem
            return self._link(text or page_title(self.project.book / f"{stem}.md"), stem)
        if target not in self.labels:
            raise KeyError(f"{self.page}: {{ref}} label {target!r} is not defined in book/")
        stem, title = self.labels[target]
        return self._link(text or title, stem)

    def __call__(self, text: str) -> str:
        text = ROLE.sub(self.role, text)
        return REPO_LINK.sub(lambda m: f"]({self.project.file_url(m['path'])})", text)


# --------------------------------------------------------------------------- #
# notebooks


def _markdown_segments(text: str, in_solution: bool):
    """Splits a MyST markdown cell into ``(text, is_solution)`` segments, exercises rendered.

    Returns the segments and whether a solution is still open at the end.
    """
    segments, current, lines, i = [], [], text.split("\n"), 0

    def flush(solution):
        body = "\n".join(current).strip("\n")
        if body.strip():
            segments.append((body, solution))
        current.clear()

    while i < len(lines):
        line = lines[i]
        if TARGET.match(line):
            i += 1
            continue
        fence = FENCE_OPEN.match(line)
        if fence is None:
            current.append(line)
            i += 1
            continue
        name, end = fence["name"], i + 1
        while end < len(lines) and lines[end].strip() != fence["fence"]:
            end += 1
        body = [l for l in lines[i + 1:end] if not OPTION.match(l)]
        i = end + 1
        if name == "exercise":
            current += [f"#### Exercise: {fence['arg'].strip()}", *body]
        elif name in ("solution-start", "solution-end"):
            flush(in_solution)
            in_solution = name == "solution-start"
        else:
            raise ValueError(f"no plain-Markdown rendering for the {{{name}}} directive")
    flush(in_solution)
    return segments, in_solution


def colab_notebook(source: nbformat.NotebookNode, render: Renderer) -> nbformat.NotebookNode:
    """The plain-Markdown notebook of a jupytext MyST notebook (not executed)."""
    nb = copy.deepcopy(source)
    cells, in_solution = [], False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            segments, in_solution = _markdown_segments(cell.source, in_solution)
            for text, solution in segments:
                text = render(text)
                if solution:
                    text = f"<details>\n<summary><b>Solution</b></summary>\n\n{text}\n\n</details>"
                cells.append(nbformat.v4.new_markdown_cell(text, metadata={"tags": ["solution"]} if solution else {}))
            continue
        cell = nbformat.v4.new_code_cell(cell.source, metadata=dict(cell.metadata))
        tags = set(cell.metadata.get("tags", []))
        if in_solution and "solution" not in tags:  # student notebooks turn tagged cells into stubs
            raise ValueError(f"a code cell inside a solution is not tagged 'solution':\n{cell.source[:200]}")
        if HIDDEN & tags:
            cell.metadata["cellView"] = "form"  # Colab: collapsed, "Show code"
            cell.metadata["jupyter"] = {"source_hidden": True}  # JupyterLab / Notebook 7
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("jupytext", None)
    return nb


def read_page(md: Path) -> nbformat.NotebookNode:
    return jupytext.reads(md.read_text(), fmt="md:myst")


def generate(md: Path, project: Project) -> nbformat.NotebookNode:
    return colab_notebook(read_page(md), Renderer(project, md.stem))


def sync_setup(text: str, project: Project) -> str:
    """``text`` with every setup cell's install line written from ``project``."""
    return INSTALL.sub(lambda m: m["indent"] + project.install_line, text)


def sync_repository_links(project: Project, root: Path = ROOT) -> list[str]:
    """Writes the ``repo:`` link scheme (``_config.yml``) and ``CITATION.cff``'s
    ``repository-code`` from ``repository.url``; returns the files that changed."""
    values = {"_config.yml": (REPO_SCHEME, f'repo: "{project.file_url("{{path}}")}"'),
              "CITATION.cff": (CITATION_CODE, f'repository-code: "{project.url}"')}
    changed = []
    for name, (pattern, value) in values.items():
        text = (root / name).read_text()
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"{name}: expected one line matching {pattern.pattern!r}")
        new = pattern.sub(lambda m: m["indent"] + value, text)
        if new != text:
            (root / name).write_text(new)
            changed.append(name)
    return changed


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 600) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _comparable(nb: nbformat.NotebookNode) -> list:
    return [(c.cell_type, c.source, {k: v for k, v in c.metadata.items() if k != "execution"}) for c in nb.cells]


def stale(md: Path, project: Project) -> str | None:
    """Why ``md``'s notebook is out of date, or None."""
    if sync_setup(md.read_text(), project) != md.read_text():
        return f"{md.name}: a setup cell does not install {project.install_line.split('@ ', 1)[1]}"
    ipynb = md.with_suffix(".ipynb")
    if not ipynb.exists():
        return f"{ipynb.name} does not exist"
    if _comparable(nbformat.read(ipynb, as_version=4)) != _comparable(generate(md, project)):
        return f"{ipynb.name} differs from what {md.name} generates"
    return None


def seed_cache(cache_dir: Path, pages: list[Path], project: Project) -> list[str]:
    """Stores each current notebook's outputs in the book's execution cache (jupyter-cache).

    The outputs go under the hash of the page's code cells as MyST-NB reads the
    ``.md``, so ``jupyter-book build`` renders them instead of executing the
    page. ``make test`` runs every notebook and checks its stored outputs, so
    these are tested outputs. Returns the pages left to execute: those whose
    notebook is out of date (:func:`stale`).
    """
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import read_myst_markdown_notebook

    cache = get_cache(cache_dir)
    left = []
    for md in pages:
        if stale(md, project):
            left.append(md.stem)
            continue
        page = read_myst_markdown_notebook(md.read_text(), path=str(md))
        notebook = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
        code = [c for c in page.cells if c.cell_type == "code"]
        for cell, run in zip(code, [c for c in notebook.cells if c.cell_type == "code"], strict=True):
            cell.outputs, cell.execution_count = run.outputs, run.execution_count
        if "widgets" in notebook.metadata:
            page.metadata["widgets"] = notebook.metadata["widgets"]
        cache.cache_notebook_bundle(CacheBundleIn(page, str(md.resolve()), data={"seeded_from": md.with_suffix(".ipynb").name}),
                                    check_validity=False, overwrite=True)
    return left


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("pages", nargs="*", help="page names (default: every notebook page of book/)")
    parser.add_argument("--check", action="store_true", help="only report out-of-date notebooks (exit 1 if any)")
    parser.add_argument("--no-execute", action="store_true", help="write the notebooks without outputs")
    parser.add_argument("--seed-cache", type=Path, metavar="DIR",
                        help="store the up-to-date notebooks' outputs in the book's execution cache DIR "
                             "(what `make book` does), and list the pages left to execute")
    args = parser.parse_args(argv)
    project = Project.read()
    pages = notebook_pages(project.book)
    if args.pages:
        by_name = {md.stem: md for md in pages}
        unknown = [p for p in args.pages if Path(p).stem not in by_name]
        if unknown:
            parser.error(f"pages {unknown} are not notebook pages of book/; choose from: {', '.join(by_name)}")
        pages = [by_name[Path(p).stem] for p in args.pages]
    if args.seed_cache:
        left = seed_cache(args.seed_cache, pages, project)
        print(f"reusing the tested outputs of {len(pages) - len(left)} notebooks"
              + (f"; executing {', '.join(left)} (out of date: run `make notebooks`)" if left else ""))
        return 0
    if args.check:
        problems = [p for p in (stale(md, project) for md in pages) if p]
        text = {name: (ROOT / name).read_text() for name in ("_config.yml", "CITATION.cff")}
        if f'repo: "{project.file_url("{{path}}")}"' not in text["_config.yml"]:
            problems.append("_config.yml: the repo: link scheme does not start with repository.url")
        if f'repository-code: "{project.url}"' not in text["CITATION.cff"]:
            problems.append("CITATION.cff: repository-code is not repository.url")
        print("\n".join(problems) if problems else f"{len(pages)} notebooks up to date")
        if problems:
            print("run `make notebooks` to regenerate them", file=sys.stderr)
        return 1 if problems else 0
    for name in sync_repository_links(project):
        print(f"wrote {name} (repository links from repository.url)")
    for md in pages:
        md.write_text(sync_setup(md.read_text(), project))
        nb = generate(md, project)
        if not args.no_execute:
            print(f"executing {md.stem} ...", flush=True)
            nb = execute(nb, project.book)
        nbformat.write(nb, md.with_suffix(".ipynb"))
        print(f"wrote {md.with_suffix('.ipynb').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
