"""The chapters as nbgrader assignments: ``python -m focaledu export-nbgrader --out COURSE``.

Writes ``COURSE/source/<chapter>/<chapter>.ipynb`` per chapter (nbgrader's source version, exercises as
autograded answers and tests, hidden checks as hidden tests) and ``COURSE/nbgrader_config.py`` when there is
none. nbgrader has none of ``focaledu.autograde``'s protections against submissions that tamper with the checks.
"""

from __future__ import annotations

import ast
import copy
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from focaledu.autograde import _check_calls, _code, exercises
from focaledu.student import (
    HIDDEN_CHECK_TAG,
    SOLUTION_TAG,
    NoChaptersError,
    _no_chapters_message,
    chapters,
    default_book,
    is_explorer,
    stubs,
)

if TYPE_CHECKING:
    import nbformat

SCHEMA_VERSION = 3
CONFIG = '''# Written by `python -m focaledu export-nbgrader`; yours to edit (it is not overwritten).
c = get_config()  # noqa: F821 (nbgrader's configuration object)
# The student version keeps focaledu's stub (above the solution region) and its hint.
c.ClearSolutions.code_stub = {"python": "# (your answer: replace the stub above)"}
# Seconds each cell may run when nbgrader executes a notebook.
c.Execute.timeout = 300
'''


def _meta(grade_id: str, *, solution=False, grade=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": grade, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _asserts(source: str, name: str) -> list[str]:
    """``assert`` lines for the ``checks.<name>(...)`` calls of a check cell (result kept in ``name``)."""
    code = _code(source)
    return [f"{name} = {ast.get_source_segment(code, call)}\nassert {name}, str({name})" for call in _check_calls(source)]


def _clean(cell):
    """A copy of ``cell`` without our solution tag, its collapsed view and its outputs."""
    cell = copy.deepcopy(cell)
    tags = [t for t in cell.metadata.pop("tags", []) if t not in (SOLUTION_TAG, HIDDEN_CHECK_TAG)]
    if tags:
        cell.metadata["tags"] = tags
    for collapsed in ("cellView", "jupyter"):
        cell.metadata.pop(collapsed, None)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def nbgrader_notebook(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """nbgrader's source notebook of the chapter ``nb``; ``name`` names the chapter in error messages.

    Raises:
        ValueError: the chapter has no exercise to export.
    """
    import nbformat

    found = [e for e in exercises(nb) if e.solution_cell is not None]
    if not found:
        raise ValueError(f"{name}: no exercise to export (no check cell calling checks.<name>(...) after a "
                         f"code cell tagged {SOLUTION_TAG!r}).")
    stub_of = stubs(nb)
    replaced = {}  # cell index -> its cells in the nbgrader notebook ([] drops it)
    ids = set()
    for exercise in found:
        grade_id = exercise.name
        while grade_id in ids:  # nbgrader's grade ids are unique
            grade_id += "_"
        ids.add(grade_id)
        if exercise.solution_cell not in replaced:  # one answer cell, named after its first exercise
            answer = _clean(nb.cells[exercise.solution_cell])
            answer.source = (f"{stub_of[exercise.solution_cell].rstrip()}\n### BEGIN SOLUTION\n"
                             f"{nb.cells[exercise.solution_cell].source.rstrip()}\n### END SOLUTION")
            answer.metadata["nbgrader"] = _meta(f"{grade_id}-answer", solution=True)
            replaced[exercise.solution_cell] = [answer]
        (visible, _), *hidden = exercise.checks
        lines = ["from focaledu import checks", *_asserts(nb.cells[visible].source, "check_result")]
        hidden_cells = sorted({cell for cell, _ in hidden})
        if hidden_cells:
            lines += ["### BEGIN HIDDEN TESTS",
                      *(a for i in hidden_cells for a in _asserts(nb.cells[i].source, "hidden_result")),
                      "### END HIDDEN TESTS"]
        # Printed, not the cell's value: nbgrader reads a test cell's value as partial credit.
        test = nbformat.v4.new_code_cell("\n".join([*lines, "print(check_result)"]))
        points = int(exercise.points) if float(exercise.points).is_integer() else exercise.points
        test.metadata["nbgrader"] = _meta(f"{grade_id}-tests", grade=True, points=points)
        replaced[visible] = [test]
        replaced.update({i: [] for i in hidden_cells})
    cells = []
    for i, cell in enumerate(nb.cells):
        if i in replaced:
            cells += replaced[i]
        elif SOLUTION_TAG not in cell.metadata.get("tags", []) and not is_explorer(cell):
            cells.append(copy.deepcopy(cell))
    out = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(nb.metadata))
    for key in ("widgets", "jupytext"):
        out.metadata.pop(key, None)
    return out


def write_nbgrader_course(out: Path | str, sources=None, book: Path | str | None = None) -> list[Path]:
    """Writes ``out/source/<chapter>/<chapter>.ipynb`` for every chapter (or ``sources``); returns them.

    Raises:
        focaledu.student.NoChaptersError: there is no chapter.
        ValueError: a chapter has no exercises (before anything is written).
    """
    import nbformat

    sources = list(sources or chapters(book))
    if not sources:
        raise NoChaptersError(_no_chapters_message(default_book() if book is None else book))
    notebooks = [(Path(s).stem, nbgrader_notebook(nbformat.read(s, as_version=4), Path(s).stem)) for s in sources]
    out = Path(out)
    written = []
    for stem, nb in notebooks:
        target = out / "source" / stem / f"{stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    if not (out / "nbgrader_config.py").exists():
        (out / "nbgrader_config.py").write_text(CONFIG)
    return written


# --------------------------------------------------------------------------- #
# command line (registered in focaledu.__main__)


def add_parser(sub):
    p = sub.add_parser(
        "export-nbgrader", help="write the chapters as an nbgrader course's source notebooks",
        description="Write an nbgrader course folder: source/<chapter>/<chapter>.ipynb per chapter (one "
                    "autograded answer per exercise, with focaledu's stub, and one test cell with its points "
                    "calling the check; hidden-check cells become hidden tests) and nbgrader_config.py.",
    )
    p.add_argument("--out", required=True, type=Path, metavar="COURSE_DIR")
    default = default_book()
    p.add_argument("--book", type=Path, default=None, metavar="PATH",
                   help="the book's folder, whose *.ipynb chapters are read (default: "
                        + (f"{default}, the checkout's book/)" if default else
                           "the book/ folder of the checkout the package runs from; a pip install has none, "
                           "so name it)"))
    p.add_argument("chapters", nargs="*", type=Path, metavar="CHAPTER.ipynb",
                   help="default: every *.ipynb of --book with solution cells")
    return p


def run(args) -> int:
    for path in args.chapters:
        if not path.is_file():
            print(f"error: {path} does not exist.", file=sys.stderr)
            return 2
    try:
        written = write_nbgrader_course(args.out, args.chapters or None, book=args.book)
    except (NoChaptersError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"{path}: nbgrader source; next, in {args.out}: nbgrader generate_assignment {path.parent.name}")
    return 0
