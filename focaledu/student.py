"""Student notebooks for instructors: ``python -m focaledu student-notebooks --out DIR [--book PATH]``.

Every code cell tagged ``solution`` becomes a stub raising ``NotImplementedError`` with the exercise's hint;
markdown solution cells and ``hidden-check`` cells are removed and outputs cleared. The chapter conventions
are in ``book/appendix_instructors.md``; grading is ``focaledu.autograde``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations; the functions import it themselves so the CLI does not need it
    import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
HIDDEN_CHECK_TAG = "hidden-check"
META_KEY = "focaledu"
RESULT_LINE = re.compile(r"^\[(PASSED|NOT YET)\] ([^:\n]+): (.*)$", re.M)
PYTHON_BLOCK = re.compile(r"^(`{3,})(?:python|py|ipython3?)\s*\n(.*?)^\1\s*$", re.M | re.S)
# A cell showing an ipywidgets explorer (widgets.<name>_explorer(...)). Graders run notebooks headless and
# leave these out: nbclient can wait out a whole cell timeout after one (jupyter/nbclient#312).
EXPLORER_CALL = re.compile(r"\bwidgets\.\w*explorer\(")


def is_explorer(cell) -> bool:
    """Whether ``cell`` is a code cell that shows an interactive (ipywidgets) explorer."""
    return cell.cell_type == "code" and bool(EXPLORER_CALL.search(cell.source))


# --------------------------------------------------------------------------- #
# student notebooks


def _defined_names(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _assigned_names(tree: ast.Module) -> set[str]:
    """Names a cell assigns at top level (a prediction such as ``predicted_side = 19``)."""
    targets = [t for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
    return {name.id for t in targets for name in ast.walk(t) if isinstance(name, ast.Name)}


def _is_stub_block(block: str, tree: ast.Module) -> bool:
    """Whether an exercise's code block is a stub (raises NotImplementedError or leaves ``...``)."""
    placeholders = any(isinstance(n, ast.Constant) and n.value in (Ellipsis, None) for n in ast.walk(tree))
    return "NotImplementedError" in block or (bool(_assigned_names(tree)) and placeholders)


def _generated_stub(node) -> str:
    hint = f"write `{node.name}`: see the exercise above"
    if isinstance(node, ast.ClassDef):
        return f"class {node.name}:\n    def __init__(self, *args, **kwargs):\n        raise NotImplementedError({hint!r})\n"
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({ast.unparse(node.args)}):\n    raise NotImplementedError({hint!r})\n"


def stub_source(solution: str, exercise_blocks: list[str]) -> str:
    """The student version of a solution cell: its imports, then stubs of its definitions."""
    tree = ast.parse(solution)
    wanted = _defined_names(tree) | _assigned_names(tree)
    stubs, covered = [], set()
    for block in exercise_blocks:
        try:
            block_tree = ast.parse(block)
        except SyntaxError:
            continue
        names = _defined_names(block_tree) | _assigned_names(block_tree)
        if names & wanted and not names & covered and _is_stub_block(block, block_tree):
            stubs.append(block.strip("\n") + "\n")
            covered |= names
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name not in covered:
            stubs.append(_generated_stub(node))
            covered.add(node.name)
    imports = [ast.get_source_segment(solution, n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    parts = ["# Your solution: replace the `raise NotImplementedError(...)` below.", *imports]
    return "\n".join(parts) + "\n\n\n" + "\n\n".join(stubs).rstrip("\n")


def _check_names(cell) -> list[str]:
    names = []
    for output in cell.get("outputs", []):
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        text = "".join(text) if isinstance(text, list) else text
        names += [m[2] for m in RESULT_LINE.finditer(text)]
    return names


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the chapter ``nb`` with the solutions replaced by stubs, no hidden checks and no outputs."""
    nb = copy.deepcopy(nb)
    cells, blocks, stubs, expected = [], [], 0, []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code":
            if SOLUTION_TAG not in tags:
                blocks += [m[2] for m in PYTHON_BLOCK.finditer(cell.source)] if cell.cell_type == "markdown" else []
                cells.append(cell)
            continue
        if HIDDEN_CHECK_TAG in tags:
            continue
        names = _check_names(cell)
        if names:
            expected += names
            cell.metadata[META_KEY] = {"checks": names}
        cell.outputs, cell.execution_count = [], None
        if SOLUTION_TAG in tags:
            cell.source = stub_source(cell.source, blocks)
            for collapsed in ("cellView", "jupyter"):  # the stub is the learner's to edit: shown
                cell.metadata.pop(collapsed, None)
            cell.metadata["tags"] = [t for t in tags if t != SOLUTION_TAG] + ["stub"]
            cell.metadata[META_KEY] = {"stub": True}
            blocks, stubs = [], stubs + 1
        cells.append(cell)
    nb.cells = cells
    for key in ("widgets", "jupytext"):
        nb.metadata.pop(key, None)
    nb.metadata[META_KEY] = {"student": True, "stubs": stubs, "checks": expected}
    return nb


def stubs(nb: nbformat.NotebookNode) -> dict[int, str]:
    """The student version (stub) of each solution code cell of the chapter ``nb``, by that cell's index."""
    solutions = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and SOLUTION_TAG in c.metadata.get("tags", [])]
    return dict(zip(solutions, (c.source for c in student_notebook(nb).cells if "stub" in c.metadata.get("tags", []))))


def default_book() -> Path | None:
    """The ``book/`` folder of the checkout this package runs from, or None (a pip install)."""
    book = ROOT / "book"
    return book if book.is_dir() and (ROOT / "pyproject.toml").is_file() else None


class NoChaptersError(LookupError):
    """No chapter notebook found where ``student-notebooks`` looked."""


def chapters(book: Path | str | None = None) -> list[Path]:
    """The chapter notebooks, ``book/*.ipynb`` with a solution cell (``book``: :func:`default_book`)."""
    import nbformat  # here, not at the top: `python -m focaledu train` must not need it

    book = default_book() if book is None else book
    if book is None:
        return []
    found = []
    for path in sorted(Path(book).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(SOLUTION_TAG in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"):
            found.append(path)
    return found


def _no_chapters_message(book: Path | str | None) -> str:
    if book is None:
        return ("no book to read: focaledu runs from an installed package, which has no book/ folder. "
                "Pass the book's folder with --book PATH (the book/ folder of a clone of the repository), "
                "or name chapter notebooks (CHAPTER.ipynb ...).")
    where = Path(book)
    what = "does not exist" if not where.is_dir() else "holds no chapter notebook"
    return (f"--book {str(where)!r} {what}: looked for {where / '*.ipynb'} with at least one code cell "
            f"tagged {SOLUTION_TAG!r}. Pass the book's folder with --book PATH (the book/ folder of a clone "
            "of the repository, whose .ipynb notebooks `make notebooks` generates from its .md chapters).")


def write_student_notebooks(out: Path | str, sources=None, book: Path | str | None = None) -> list[Path]:
    """Writes the student version of every chapter of ``book`` (or of ``sources``) into ``out``.

    Raises:
        NoChaptersError: there is no chapter (before anything is written).
    """
    import nbformat

    sources = list(sources or chapters(book))
    if not sources:
        raise NoChaptersError(_no_chapters_message(default_book() if book is None else book))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        nb = student_notebook(nbformat.read(source, as_version=4))
        target = out / Path(source).name
        nbformat.write(nb, target)
        written.append(target)
    return written


# --------------------------------------------------------------------------- #
# running a notebook (the autograder itself is focaledu.autograde)


def execute(path: Path | str, timeout: int = 600, kernel_name: str | None = None) -> nbformat.NotebookNode:
    """Runs every cell of the notebook at ``path`` (errors are recorded, not raised)."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    options = {"kernel_name": kernel_name} if kernel_name else {}
    client = NotebookClient(
        nb, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}, **options
    )
    client.execute()
    return nb


# --------------------------------------------------------------------------- #
# command line (registered in focaledu.__main__; also ``python -m focaledu.student``)


def add_student_notebooks_parser(sub):
    p = sub.add_parser(
        "student-notebooks", help="write the chapters without their solutions",
        description="Write student notebooks: solutions replaced by NotImplementedError stubs, "
                    "exercises and check cells kept, outputs cleared.",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    default = default_book()
    p.add_argument("--book", type=Path, default=None, metavar="PATH",
                   help="the book's folder, whose *.ipynb chapters are read (default: "
                        + (f"{default}, the checkout's book/)" if default else
                           "the book/ folder of the checkout the package runs from; a pip install has none, "
                           "so name it)"))
    p.add_argument("chapters", nargs="*", type=Path, metavar="CHAPTER.ipynb",
                   help="default: every *.ipynb of --book with solution cells")
    return p


def run_student_notebooks(args) -> int:
    import nbformat

    for path in args.chapters:
        if not path.is_file():
            print(f"error: {path} does not exist.", file=sys.stderr)
            return 2
    try:
        written = write_student_notebooks(args.out, args.chapters or None, book=getattr(args, "book", None))
    except NoChaptersError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        nb = nbformat.read(path, as_version=4)
        print(f"{path}: {nb.metadata[META_KEY]['stubs']} exercises")
    return 0


def write_book_config(source: Path, target: Path, cache: str | None = None) -> None:
    """The configuration of the student edition: ``source`` with ``hide_solutions: true``.

    No launch buttons and no ``_sources``: they would open the notebooks with solutions.
    """
    import yaml

    config = yaml.safe_load(Path(source).read_text())
    config["title"] = f"{config.get('title', '')} (student edition)".strip()
    sphinx = config.setdefault("sphinx", {})
    extensions = sphinx.setdefault("extra_extensions", [])
    if "focaledu.student" not in extensions:
        extensions.append("focaledu.student")
    sphinx.setdefault("config", {}).update(hide_solutions=True, html_copy_source=False)
    config.pop("launch_buttons", None)
    if cache:
        config.setdefault("execute", {})["cache"] = cache
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# Written by `make book-student`; edit _config.yml instead.\n" + yaml.safe_dump(config, sort_keys=False))


# --------------------------------------------------------------------------- #
# Sphinx extension of the student book


def _take_over_hide_solutions(app, config):
    # sphinx-exercise 1.2 drops a hidden `solution-start` but keeps its
    # `solution-end` node (the build then fails on it) and the content between.
    # So the solutions are built as usual and removed from each doctree instead.
    config.focaledu_hide_solutions = bool(config.hide_solutions)
    config.hide_solutions = False


def _remove_solutions(app, doctree):
    if not app.config.focaledu_hide_solutions:
        return
    from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node

    for kind in (solution_node, solution_start_node, solution_end_node):
        for node in list(doctree.findall(kind)):
            node.parent.remove(node)


def setup(app):
    """``focaledu.student`` as a Sphinx extension: ``hide_solutions: true`` hides gated solutions too."""
    app.setup_extension("sphinx_exercise")
    app.add_config_value("focaledu_hide_solutions", False, "env")
    app.connect("config-inited", _take_over_hide_solutions, priority=900)
    app.connect("doctree-read", _remove_solutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m focaledu.student")
    sub = parser.add_subparsers(dest="command", required=True)
    add_student_notebooks_parser(sub)
    cfg = sub.add_parser("book-config", help="write the _config.yml of the student book (make book-student)")
    cfg.add_argument("source", type=Path)
    cfg.add_argument("target", type=Path)
    cfg.add_argument("--cache", default=None, help="execution cache folder to share with `make book`")
    args = parser.parse_args(argv)
    if args.command == "student-notebooks":
        return run_student_notebooks(args)
    write_book_config(args.source, args.target, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
