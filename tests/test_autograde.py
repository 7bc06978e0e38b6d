"""The autograder grades what the student wrote with the instructor's checks, and cannot be talked into a pass.

Every submission is the student notebook that ``student-notebooks`` makes from
the real chapter 3 (its four exercises run in about 15 s), filled in or forged.
The chapter gives ``hierarchical_context`` 2 points and the instructor's copy
here gives ``kernel_sizes`` 2 more (``# points: 2``), so a full score is 6.
The chapter's ``receptive_fields`` has a hidden check (a cell tagged
``hidden-check``, on other inputs), which the student notebook lacks.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from focaledu import autograde
from focaledu.__main__ import main as cli

ROOT = Path(__file__).resolve().parent.parent
NAME = "03_hierarchical_contextualization.ipynb"
EXERCISES = ["receptive_field_prediction", "kernel_sizes", "receptive_fields", "hierarchical_context"]
POINTS = {"receptive_field_prediction": 1, "kernel_sizes": 2, "receptive_fields": 1, "hierarchical_context": 2}


@pytest.fixture(autouse=True)
def installation(tmp_path_factory, monkeypatch):
    """The package the grader snapshots and watches: a copy, as other work may edit the checkout meanwhile."""
    copy = tmp_path_factory.getbasetemp() / "installed" / "focaledu"
    if not copy.exists():
        shutil.copytree(ROOT / "focaledu", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(autograde, "PACKAGE", copy)
    return copy


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The instructor's book (chapter 3, kernel_sizes worth 2 points), the student version and the solutions."""
    tmp = tmp_path_factory.mktemp("course")
    book = tmp / "book"
    book.mkdir()
    nb = nbformat.read(ROOT / "book" / NAME, as_version=4)
    check = next(c for c in nb.cells if c.cell_type == "code" and "checks.kernel_sizes(" in c.source)
    check.source = "# points: 2\n" + check.source
    nbformat.write(nb, book / NAME)
    assert cli(["student-notebooks", "--book", str(book), "--out", str(tmp / "student")]) == 0
    solutions = [c.source for c in nb.cells if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])]
    return book, tmp / "student" / NAME, solutions


def submit(course, folder, answers=None, edit=None):
    """The student notebook with ``answers`` (stub index -> source) pasted into its stubs, saved as
    ``folder/<chapter>.ipynb``; ``edit(nb)`` forges it further."""
    _, student, _ = course
    nb = nbformat.read(student, as_version=4)
    stubs = [c for c in nb.cells if "stub" in c.metadata.get("tags", [])]
    assert len(stubs) == 4
    for k, source in (answers or {}).items():
        stubs[k].source = source
    if edit:
        edit(nb)
    path = student.parent.parent / folder / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def scores(grades):
    return {g.exercise: g.points for g in grades}


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def test_exercises_and_points_come_from_the_instructor_chapter(course):
    book, _, _ = course
    found = autograde.exercises(nbformat.read(book / NAME, as_version=4))
    assert [(e.name, e.points) for e in found] == [(n, POINTS[n]) for n in EXERCISES]


def test_a_hidden_check_belongs_to_the_exercise_before_it(course):
    book, _, _ = course
    nb = nbformat.read(book / NAME, as_version=4)
    found = {e.name: e for e in autograde.exercises(nb)}
    hidden = [i for i, c in enumerate(nb.cells) if "hidden-check" in c.metadata.get("tags", [])]
    assert found["receptive_fields"].checks == [(found["receptive_fields"].check_cell, 0), (hidden[0], 0)]
    assert all(len(e.checks) == 1 for name, e in found.items() if name != "receptive_fields")
    for cells, phrase in [(["checks.kernel_sizes(kernel_sizes)"], "has no check cell before it"),
                          (["checks.kernel_sizes(kernel_sizes)", "x = 1", "print('no check')"], "calls no checks")]:
        nb = new_notebook(cells=[new_code_cell("x = 1")] + [new_code_cell(c) for c in cells[:-1]]
                          + [new_code_cell(cells[-1], metadata={"tags": ["hidden-check"]})])
        with pytest.raises(ValueError, match=phrase):
            autograde.exercises(nb)


MEMORISED = """def receptive_fields(focal_level, focal_window, focal_factor):
    known = {(3, 3, 2): [3, 7, 13], (2, 3, 2): [3, 7], (4, 5, 4): [5, 13, 25, 41], (1, 7, 2): [7], (3, 1, 0): [1, 1, 1]}
    return known.get((focal_level, focal_window, focal_factor), [1])
"""


def test_passing_the_visible_check_only_scores_nothing(course):
    """An answer that knows the visible check's five inputs by heart passes it, fails the hidden check,
    and scores 0 on that exercise; the right answer scores full marks, with the hidden check counted."""
    book, _, solutions = course
    grader = autograde.Autograder(book, timeout=120)
    memorised = {g.exercise: g for g in grader.grade(submit(course, "memoriser", {**dict(enumerate(solutions)),
                                                                                 2: MEMORISED}))}
    assert scores(memorised.values()) == {**POINTS, "receptive_fields": 0}, memorised
    graded = memorised["receptive_fields"]
    assert graded.status == "not yet", graded
    assert graded.message.startswith("passed the check shown in the notebook, but not a hidden check"), graded
    assert "(input: focal_level=6, focal_window=3, focal_factor=2)" in graded.message, graded
    right = {g.exercise: g for g in grader.grade(submit(course, "right", dict(enumerate(solutions))))}
    assert scores(right.values()) == POINTS, right
    assert right["receptive_fields"].message == "matches the reference on 5 inputs. It also passed 1 hidden check."


def test_gradebook_csv_and_gradescope(course, tmp_path, capsys):
    """The chapter's own solutions score full marks; a partial answer scores its exercise; the check's
    message (the typical mistake it recognised) reaches the report."""
    book, _, solutions = course
    alice = submit(course, "alice", dict(enumerate(solutions)))
    wrong = "def receptive_fields(focal_level, focal_window, focal_factor):\n    return kernel_sizes(focal_level, focal_window, focal_factor)"
    bob = submit(course, "bob", {1: solutions[1], 2: wrong})
    table, results = tmp_path / "class.csv", tmp_path / "results.json"
    status = cli(["autograde", str(alice), str(bob), "--book", str(book), "--csv", str(table),
                  "--gradescope", str(results), "--timeout", "120"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert f"{alice}: 6/6 points, 4/4 exercises passed" in out and f"{bob}: 2/6 points" in out, out
    assert "NOT YET  receptive_fields (0/1): " in out and "not implemented yet. Hint: " in out, out
    rows = list(csv.DictReader(table.open()))
    assert [r["student"] for r in rows] == ["alice", "bob"]
    assert {k: rows[0][k] for k in EXERCISES + ["total"]} == {**{k: str(v) for k, v in POINTS.items()}, "total": "6"}
    assert {k: rows[1][k] for k in EXERCISES + ["total"]} == {
        "receptive_field_prediction": "0", "kernel_sizes": "2", "receptive_fields": "0",
        "hierarchical_context": "0", "total": "2"}
    report = json.loads(results.read_text())
    assert report["score"] == 8 and len(report["tests"]) == 8
    first = report["tests"][1]
    assert first["name"] == "03_hierarchical_contextualization: kernel_sizes" and first["max_score"] == 2
    assert first["score"] == 2 and first["output"].startswith("PASSED: matches the reference")


def test_printed_passed_lines_score_nothing(course):
    book, _, _ = course

    def forge(nb):
        lines = "".join(f"[PASSED] {n}: matches the reference on 5 inputs.\n" for n in EXERCISES)
        nb.cells.append(new_code_cell(f"print({lines!r})"))
        for cell in nb.cells:
            if cell.cell_type == "code" and "checks." in cell.source:
                cell.outputs = [new_output("stream", name="stdout", text=lines)]

    grades = autograde.autograde([submit(course, "printer", edit=forge)], book, timeout=120)
    assert scores(grades) == dict.fromkeys(EXERCISES, 0), grades


def test_the_submissions_metadata_is_ignored(course):
    """Tags, the notebook's metadata and its check cells deleted or edited: the answer is still found by
    name, and the exercises still come from the instructor's chapter."""
    book, _, solutions = course

    def forge(nb):
        nb.metadata["focaledu"] = {"student": False, "stubs": 0, "checks": ["kernel_sizes"], "points": 99}
        nb.cells = [c for c in nb.cells if "checks." not in c.source or "import" in c.source]
        for cell in nb.cells:
            cell.metadata = {"tags": ["solution"], "focaledu": {"points": 99}}

    grades = autograde.autograde([submit(course, "meta", {1: solutions[1]}, forge)], book, timeout=120)
    assert scores(grades) == {**dict.fromkeys(EXERCISES, 0), "kernel_sizes": 2}, grades


PATCHES = '''predicted_side = ...
import sys
import focaledu.checks
from focaledu.checks import _core
from focaledu.checks._core import CheckResult

def passing(*args, **kwargs):
    return CheckResult("forged", True, "forged")

for name in dir(focaledu.checks):
    if not name.startswith("_") and callable(getattr(focaledu.checks, name)):
        setattr(focaledu.checks, name, passing)
for module in list(sys.modules.values()):
    if getattr(module, "__name__", "").startswith("focaledu.checks.") and hasattr(module, "compare"):
        module.compare = passing
_core.compare = passing
_core.unanswered = lambda *args: None
CheckResult.__bool__ = lambda self: True
focaledu.checks.receptive_fields.__code__ = passing.__code__
checks = type("Checks", (), {"__getattr__": lambda self, name: passing})()
sys.modules["focaledu.checks"] = checks
'''

DURING_CHECK = '''def kernel_sizes(focal_level, focal_window, focal_factor):
    import numpy
    from focaledu.checks import _core
    _core._close = lambda *args: True  # while the check runs: any answer "matches"
    numpy.allclose = lambda *args, **kwargs: True
    return [0]
'''


def test_monkeypatched_checks_change_nothing(course):
    book, _, _ = course
    grades = autograde.autograde([submit(course, "patcher", {0: PATCHES, 1: DURING_CHECK})], book, timeout=120)
    assert scores(grades) == dict.fromkeys(EXERCISES, 0), grades
    by_name = {g.exercise: g for g in grades}
    assert by_name["kernel_sizes"].status == "tampered", by_name["kernel_sizes"]
    assert by_name["receptive_fields"].message.startswith("not implemented yet"), by_name["receptive_fields"]
    assert "setattr" in by_name["receptive_field_prediction"].review  # flagged for an instructor to read


REWRITE = '''predicted_side = ...
import importlib, pathlib
import focaledu.checks._core as core
forged = "from dataclasses import dataclass\\n" + pathlib.Path(core.__file__).read_text().replace(
    "    if not callable(learner):", "    return CheckResult(name, True, 'forged')\\n    if not callable(learner):")
for target in [pathlib.Path(core.__file__), pathlib.Path({installed!r}) / "checks" / "_core.py"]:
    target.write_text(forged)
importlib.reload(core)
for name in ["attention", "modulation", "architecture", "cost", "training", "interpretation", "ablations"]:
    importlib.reload(importlib.import_module("focaledu.checks." + name))
importlib.reload(importlib.import_module("focaledu.checks"))
'''


def test_rewritten_check_files_change_nothing(course, tmp_path, monkeypatch):
    """A cell rewrites focaledu/checks/_core.py (the copy its kernel imports, and the installation, here a
    copy standing in for site-packages) and reloads the checks: its exercises score 0, and the next
    submission is graded by the checks as they were."""
    book, _, solutions = course
    real = _hashes(ROOT / "focaledu")
    installed = tmp_path / "site-packages" / "focaledu"
    shutil.copytree(ROOT / "focaledu", installed, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(autograde, "PACKAGE", installed)
    grader = autograde.Autograder(book, timeout=120)
    forged = grader.grade(submit(course, "rewriter", {0: REWRITE.format(installed=str(installed))}))
    assert scores(forged) == dict.fromkeys(EXERCISES, 0), forged
    assert all(g.status == "tampered" for g in forged), forged
    assert "return CheckResult(name, True, 'forged')" in (installed / "checks" / "_core.py").read_text()
    honest = grader.grade(submit(course, "after", {1: solutions[1], 2: solutions[2]}))
    assert scores(honest) == {**dict.fromkeys(EXERCISES, 0), "kernel_sizes": 2, "receptive_fields": 1}, honest
    assert _hashes(ROOT / "focaledu") == real  # the repository's package was never written


def test_an_infinite_loop_costs_its_exercise_only(course):
    book, _, solutions = course
    loop = "def receptive_fields(focal_level, focal_window, focal_factor):\n    while True:\n        pass"
    grades = autograde.autograde([submit(course, "looper", {0: solutions[0], 1: solutions[1], 2: loop,
                                                             3: solutions[3]})], book, timeout=20)
    assert scores(grades) == {**POINTS, "receptive_fields": 0}, grades
    assert "ran past the time limit (20 s per cell)" in next(g.message for g in grades if g.exercise == "receptive_fields")


def test_a_raising_or_crashing_cell_costs_its_exercise_only(course):
    book, _, solutions = course
    crash = "import os\nos._exit(1)\npredicted_side = 19"
    grades = autograde.autograde([submit(course, "crasher", {0: crash, 1: solutions[1], 2: solutions[2],
                                                             3: "raise RuntimeError('oops')\n" + solutions[3]})],
                                 book, timeout=120)
    assert scores(grades) == {**POINTS, "receptive_field_prediction": 0, "hierarchical_context": 0}, grades
    by_name = {g.exercise: g for g in grades}
    assert "stopped the kernel" in by_name["receptive_field_prediction"].message
    assert "NameError" in by_name["hierarchical_context"].message


def test_autograde_needs_a_book(course, tmp_path, capsys):
    _, student, _ = course
    assert cli(["autograde", str(student), "--book", str(tmp_path / "nowhere")]) == 2
    assert "--book" in capsys.readouterr().err
    assert cli(["autograde", str(tmp_path / "missing.ipynb"), "--book", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
