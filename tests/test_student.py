"""Student notebooks (solutions replaced by stubs); the autograder is tested in test_autograde.py.

Executes one real chapter (the student version of chapter 3, about 10 s) and a
few tiny synthetic notebooks written in the chapters' format.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from focaledu import student
from focaledu.__main__ import main as cli

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "03_hierarchical_contextualization.ipynb"

EXERCISE = '''## Exercises

#### Exercise: Double

Return twice `x`.

```python
def double(x):
    raise NotImplementedError("multiply by two")
```'''

SOLUTION = "<details>\n<summary><b>Solution</b></summary>\n\nSECRET EXPLANATION: multiplying by two doubles.\n\n</details>"

CHECK = '''import numpy as np
from focaledu.checks._core import compare

def check_{name}(fn):
    return compare("{name}", fn, {reference}, [("x=3", (3.0,)), ("array", (np.arange(4.0),))])
'''


def _synthetic(path: Path) -> Path:
    """A chapter in the format of the generated notebooks: exercise, collapsed solution, check cell."""
    hidden = {"tags": ["solution"], "cellView": "form", "jupyter": {"source_hidden": True}}
    cells = [
        new_markdown_cell("# A tiny chapter"),
        new_code_cell(CHECK.format(name="double", reference="lambda x: 2 * x")
                      + CHECK.format(name="halve", reference="lambda x: x / 2")),
        new_markdown_cell(EXERCISE),
        new_markdown_cell(SOLUTION, metadata={"tags": ["solution"]}),
        new_code_cell("import math\n\n\ndef double(x):\n    return 2 * x\n\n\nSECRET_CONSTANT = 42\nprint(double(2))",
                      metadata=dict(hidden)),
        new_markdown_cell("After the solution."),
        new_code_cell("check_double(double)"),
        new_markdown_cell("#### Exercise: Halve\n\nNo stub here."),
        new_code_cell("def halve(x, *, exact=True):\n    return x / 2", metadata=dict(hidden)),
        new_code_cell("check_halve(halve)"),
        new_code_cell("print('the end')"),
    ]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    })
    cells[6].outputs = [new_output("execute_result", {"text/plain": "[PASSED] double: matches."}, execution_count=1)]
    cells[9].outputs = [new_output("execute_result", {"text/plain": "[PASSED] halve: matches."}, execution_count=2)]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synthetic")
    source = _synthetic(tmp / "chapter.ipynb")
    out = tmp / "student"
    assert cli(["student-notebooks", "--out", str(out), str(source)]) == 0
    return source, out / "chapter.ipynb"


def _all_text(nb):
    return "\n".join(cell.source for cell in nb.cells)


def test_student_notebook_replaces_solutions_with_stubs(synthetic):
    _, path = synthetic
    nb = nbformat.read(path, as_version=4)
    text = _all_text(nb)
    assert "SECRET" not in text and "return 2 * x" not in text and "return x / 2" not in text
    assert "<details>" not in text
    assert "After the solution." in text and "Exercise: Double" in text and "check_double(double)" in text
    stubs = [c for c in nb.cells if "stub" in c.metadata.get("tags", [])]
    assert len(stubs) == 2 and not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    assert not any("cellView" in c.metadata or "jupyter" in c.metadata for c in stubs)  # shown, to be edited
    assert 'raise NotImplementedError("multiply by two")' in stubs[0].source  # the exercise's own stub
    assert "import math" in stubs[0].source
    generated = ast.parse(stubs[1].source).body[-1]
    assert generated.name == "halve" and ast.unparse(generated.args) == "x, *, exact=True"
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["focaledu"] == {"student": True, "stubs": 2, "checks": ["double", "halve"]}


def test_autograde_a_chapter_without_package_checks_says_so(synthetic, capsys):
    """Only focaledu.checks decide (a check defined in the notebook could be the student's): a chapter
    whose check cells call none has no exercise to grade, and the command says so."""
    source, student_path = synthetic
    assert cli(["autograde", str(student_path), "--book", str(source), "--timeout", "120"]) == 1
    assert "no exercise to grade" in capsys.readouterr().err


def test_every_chapter_student_version_hides_its_solutions(tmp_path):
    sources = student.chapters()
    assert any(p.name == CHAPTER.name for p in sources)
    for source in sources:
        chapter = nbformat.read(source, as_version=4)
        solutions = [c for c in chapter.cells if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])]
        nb = student.student_notebook(chapter)
        text = _all_text(nb)
        assert nb.metadata["focaledu"]["stubs"] == len(solutions), source.name
        assert "<details>" not in text and "Solution</b>" not in text, source.name
        for cell in solutions:
            body = [ast.get_source_segment(cell.source, n) for n in ast.parse(cell.source).body
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
            for segment in body:
                assert segment not in text, f"{source.name}: solution left in the student notebook"
            for name in student._defined_names(ast.parse(cell.source)):
                assert f"def {name}(" in text or f"class {name}" in text, f"{source.name}: no stub for {name}"
        for stub in (c for c in nb.cells if "stub" in c.metadata.get("tags", [])):
            ast.parse(stub.source)
            assert "NotImplementedError" in stub.source or "..." in stub.source, stub.source


def _names_bound(source):
    tree = ast.parse(source)
    bound = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    return bound


def test_every_check_in_a_student_notebook_gets_defined_names():
    """What a check cell hands to its check is defined in the student version, stub or prediction alike
    (a prediction left out of the stubs made the check cell raise NameError)."""
    for source in student.chapters():
        nb = student.student_notebook(nbformat.read(source, as_version=4))
        bound = set()
        for cell in (c for c in nb.cells if c.cell_type == "code"):
            code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            for statement in ast.parse(code).body:  # in order: a stub may assign, then call its check
                for call in (n for n in ast.walk(statement) if isinstance(n, ast.Call)):
                    if "checks." in ast.unparse(call.func):
                        used = {n.id for arg in call.args for n in ast.walk(arg) if isinstance(n, ast.Name)}
                        missing = used - bound - set(dir(__builtins__))
                        assert not missing, f"{source.name}: {ast.unparse(call)} uses undefined {sorted(missing)}"
                bound |= _names_bound(ast.unparse(statement))


def test_a_prediction_stub_comes_from_the_exercise_and_an_unanswered_check_says_so():
    solution = "predicted_side = 1 + 4 + 8\nseen = measure()\nprint(predicted_side)\n"
    stub = student.stub_source(solution, ["predicted_side = ...  # your prediction, in tokens\n"])
    assert "predicted_side = ...  # your prediction" in stub and "1 + 4 + 8" not in stub and "measure" not in stub
    from focaledu import checks

    result = checks.receptive_field_prediction(...)
    assert not result and result.message.startswith("not implemented yet. Hint: ")
    assert not checks.perturbation_reach({"a": None}, [1], [2]) and checks.receptive_field_prediction(19)


def test_student_notebooks_from_the_book_folder(tmp_path, capsys):
    """`student-notebooks --book book/` writes one student notebook per chapter."""
    expected = [p.name for p in student.chapters(ROOT / "book")]
    assert expected and student.default_book() == ROOT / "book"  # the tests run from a checkout
    out = tmp_path / "student"
    assert cli(["student-notebooks", "--book", str(ROOT / "book"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ipynb")) == expected
    printed = capsys.readouterr().out
    assert all(f"{out / name}: " in printed for name in expected), printed


def test_student_notebooks_without_chapters_fails_and_names_book(tmp_path, capsys):
    empty, out = tmp_path / "empty", tmp_path / "student"
    empty.mkdir()
    assert cli(["student-notebooks", "--book", str(empty), "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "--book" in err and str(empty / "*.ipynb") in err and "holds no chapter notebook" in err, err
    assert not out.exists()  # nothing written, not even the folder
    assert cli(["student-notebooks", "--book", str(tmp_path / "nowhere"), "--out", str(out)]) != 0
    assert "does not exist" in capsys.readouterr().err


def test_student_notebooks_from_a_pip_install_needs_book(tmp_path, monkeypatch, capsys):
    """Installed in site-packages, the package has no book/ beside it: no default, a clear error."""
    monkeypatch.setattr(student, "ROOT", tmp_path / "site-packages")
    assert student.default_book() is None and student.chapters() == []
    assert cli(["student-notebooks", "--out", str(tmp_path / "student")]) != 0
    err = capsys.readouterr().err
    assert "--book PATH" in err and "no book/ folder" in err, err
    assert not (tmp_path / "student").exists()


def _printed_results(nb):
    texts = [o.get("text") or o.get("data", {}).get("text/plain", "") for c in nb.cells if c.cell_type == "code"
             for o in c.outputs]
    return [m for text in texts for m in student.RESULT_LINE.findall("".join(text))]


def test_chapter_solutions_pass_every_check():
    """The committed chapter (its outputs are checked by `make test` with nbval) passes every check:
    one per exercise, and the hidden check of receptive_fields."""
    results = _printed_results(nbformat.read(CHAPTER, as_version=4))
    assert len(results) == 5 and all(mark == "PASSED" for mark, _, _ in results), results


def test_student_version_leaves_out_the_hidden_checks(tmp_path):
    """Chapter 3's hidden check (a cell tagged hidden-check) is not in the student notebook; its visible
    check cells all are."""
    nb = nbformat.read(CHAPTER, as_version=4)
    hidden = [c.source for c in nb.cells if student.HIDDEN_CHECK_TAG in c.metadata.get("tags", [])]
    assert len(hidden) == 1 and "checks.receptive_fields(receptive_fields, cases=" in hidden[0], hidden
    path = student.write_student_notebooks(tmp_path, [CHAPTER])[0]
    sources = [c.source for c in nbformat.read(path, as_version=4).cells]
    assert not any("cases=" in s or student.HIDDEN_CHECK_TAG in s for s in sources)
    visible = [s for s in sources if "checks." in s and "import" not in s]
    assert len(visible) == 4 and any(s.endswith("checks.receptive_fields(receptive_fields)") for s in visible)


def test_chapter_student_version_fails_exactly_at_the_stubs(tmp_path):
    path = student.write_student_notebooks(tmp_path, [CHAPTER])[0]
    nb = student.execute(path, timeout=300)
    errors = [(i, o.ename, o.evalue) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    results = _printed_results(nb)
    assert [name for _, name, _ in results] == nb.metadata["focaledu"]["checks"]
    assert len(results) == nb.metadata["focaledu"]["stubs"] == 4
    for mark, name, message in results:
        assert mark == "NOT YET" and message.startswith("not implemented yet. Hint: "), (name, message)


def test_student_book_config(tmp_path):
    target = tmp_path / "student.yml"
    assert student.main(["book-config", str(ROOT / "_config.yml"), str(target), "--cache", "/x/cache"]) == 0
    config = yaml.safe_load(target.read_text())
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert config["execute"]["cache"] == "/x/cache"
    assert config["title"].endswith("(student edition)")
    assert "focaledu.student" in config["sphinx"]["extra_extensions"]  # hides gated solutions too
    assert config["sphinx"]["config"]["html_copy_source"] is False  # no .md/.ipynb with the solutions
    assert "launch_buttons" not in config
    assert yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["hide_solutions"] is False


PAGE = '''# Page

````{exercise} Double
:label: ex-double

Write `double`.
````

````{solution-start} ex-double
````

GATED SECRET

```python
def double(x):
    return 2 * x
```

````{solution-end}
````

```{solution} ex-double
PLAIN SECRET
```

After the solutions.
'''


@pytest.mark.parametrize("hide", [True, False])
def test_sphinx_extension_hides_gated_solutions(tmp_path, hide):
    """sphinx-exercise 1.2 alone fails on hidden gated solutions; focaledu.student removes them."""
    from sphinx.cmd.build import build_main

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "index.md").write_text(PAGE)
    status = build_main(["-q", "-b", "html", "-C", "-D", "extensions=myst_parser,sphinx_exercise,focaledu.student",
                         "-D", f"hide_solutions={int(hide)}", str(src), str(out)])
    assert status == 0
    html = (out / "index.html").read_text()
    assert "Write <code" in html and "After the solutions." in html
    assert ("GATED SECRET" in html) is (not hide) and ("PLAIN SECRET" in html) is (not hide)
