"""``export-nbgrader``: chapter 3 as an nbgrader course, released and graded by nbgrader itself.

nbgrader's ``generate_assignment`` makes the student version (stubs with their
hints, no solutions, no hidden test) and its ``autograde`` grades two
submissions: the chapter's solutions (full marks) and one whose
``receptive_fields`` knows the visible check's five inputs by heart (it passes
that check, fails the hidden one, and scores 0 on that exercise). Runs the
chapter twice, about a minute in all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from focaledu.__main__ import main as cli

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "03_hierarchical_contextualization.ipynb"
NAME = CHAPTER.stem
POINTS = {"receptive_field_prediction": 1, "kernel_sizes": 1, "receptive_fields": 1, "hierarchical_context": 2}
MEMORISED = """def receptive_fields(focal_level, focal_window, focal_factor):
    known = {(3, 3, 2): [3, 7, 13], (2, 3, 2): [3, 7], (4, 5, 4): [5, 13, 25, 41], (1, 7, 2): [7], (3, 1, 0): [1, 1, 1]}
    return known.get((focal_level, focal_window, focal_factor), [1])
"""


def nbgrader(course: Path, *args: str) -> str:
    """Runs nbgrader's command line in ``course`` (its kernels on this interpreter); returns its log."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _nbgrader(cell, key, default=None):
    return cell.metadata.get("nbgrader", {}).get(key, default)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    assert cli(["export-nbgrader", "--out", str(course), str(CHAPTER)]) == 0
    nbgrader(course, "generate_assignment", NAME, "--force")
    return course


def test_source_has_an_answer_and_a_test_cell_per_exercise(course):
    nb = nbformat.read(course / "source" / NAME / f"{NAME}.ipynb", as_version=4)
    answers = [c for c in nb.cells if _nbgrader(c, "solution")]
    tests = {_nbgrader(c, "grade_id"): c for c in nb.cells if _nbgrader(c, "grade")}
    assert [_nbgrader(c, "grade_id") for c in answers] == [f"{n}-answer" for n in POINTS]
    assert {k: _nbgrader(c, "points") for k, c in tests.items()} == {f"{n}-tests": p for n, p in POINTS.items()}
    hidden = tests["receptive_fields-tests"].source
    assert "### BEGIN HIDDEN TESTS\nhidden_result = checks.receptive_fields(receptive_fields, cases=" in hidden
    assert sum("### BEGIN HIDDEN TESTS" in c.source for c in tests.values()) == 1
    assert not any("solution" in c.metadata.get("tags", []) or "<summary><b>Solution" in c.source for c in nb.cells)
    assert (course / "nbgrader_config.py").is_file()


def test_release_keeps_the_stubs_and_hides_solutions_and_hidden_tests(course):
    nb = nbformat.read(course / "release" / NAME / f"{NAME}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    answers = [c.source for c in nb.cells if _nbgrader(c, "solution")]
    assert 'raise NotImplementedError("start from 1 and add k - 1 per level")' in answers[2], answers[2]
    assert "predicted_side = ...  # your prediction, in tokens" in answers[0]
    assert "BEGIN SOLUTION" not in text and "return [focal_factor * k + focal_window" not in text
    assert "cases=" not in text and "HIDDEN TESTS" not in text
    assert "check_result = checks.receptive_fields(receptive_fields)\nassert check_result" in text


def test_nbgrader_autograde_scores_the_hidden_check(course):
    from nbgrader.api import Gradebook

    source = nbformat.read(course / "source" / NAME / f"{NAME}.ipynb", as_version=4)
    solutions = {_nbgrader(c, "grade_id"): c.source.split("### BEGIN SOLUTION\n")[1].split("\n### END SOLUTION")[0]
                 for c in source.cells if _nbgrader(c, "solution")}
    for student, answers in [("right", {}), ("memoriser", {"receptive_fields-answer": MEMORISED})]:
        nb = nbformat.read(course / "release" / NAME / f"{NAME}.ipynb", as_version=4)
        for cell in nb.cells:
            if _nbgrader(cell, "solution"):
                cell.source = answers.get(_nbgrader(cell, "grade_id"), solutions[_nbgrader(cell, "grade_id")])
        path = course / "submitted" / student / NAME / f"{NAME}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    nbgrader(course, "autograde", NAME, "--create", "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {student: {g.name.removesuffix("-tests"): g.score for g in
                            gradebook.find_submission(NAME, student).notebooks[0].grades}
                  for student in ("right", "memoriser")}
    assert scores["right"] == POINTS, scores
    assert scores["memoriser"] == {**POINTS, "receptive_fields": 0}, scores
    graded = nbformat.read(course / "autograded" / "memoriser" / NAME / f"{NAME}.ipynb", as_version=4)
    test = next(c for c in graded.cells if _nbgrader(c, "grade_id") == "receptive_fields-tests")
    error = next(o for o in test.outputs if o.output_type == "error")
    assert error.ename == "AssertionError" and "(input: focal_level=6, focal_window=3, focal_factor=2)" in error.evalue


def test_export_needs_chapters(tmp_path, capsys):
    assert cli(["export-nbgrader", "--out", str(tmp_path / "c"), str(tmp_path / "missing.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["export-nbgrader", "--out", str(tmp_path / "c"), "--book", str(tmp_path)]) == 2
    assert "--book" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_every_chapter_exports_one_answer_per_solution_and_one_test_per_exercise():
    from focaledu import autograde, export_nbgrader, student

    for path in student.chapters():
        nb = nbformat.read(path, as_version=4)
        out = export_nbgrader.nbgrader_notebook(nb, path.stem)
        found = autograde.exercises(nb)
        assert sum(bool(_nbgrader(c, "solution")) for c in out.cells) == len(student.stubs(nb)), path.name
        assert [_nbgrader(c, "points") for c in out.cells if _nbgrader(c, "grade")] == [e.points for e in found]
        assert not any(set(c.metadata.get("tags", [])) & {"solution", "hidden-check"} for c in out.cells)


def test_interactive_explorers_are_left_out_and_their_static_versions_kept():
    """nbclient can stall a whole cell timeout after an ipywidgets cell (jupyter/nbclient#312): graders skip them."""
    from focaledu import export_nbgrader, student

    with_explorers = []
    for path in student.chapters():
        nb = nbformat.read(path, as_version=4)
        out = export_nbgrader.nbgrader_notebook(nb, path.stem)
        if any(student.is_explorer(c) for c in nb.cells):
            with_explorers.append(path.stem[:2])
            assert any("frames_explorer(" in c.source for c in out.cells), path.name
        assert not any(student.is_explorer(c) for c in out.cells), path.name
    assert with_explorers == ["03", "04", "08"]
