"""Autograding: the instructor's checks run on what the student wrote, not on what the notebook printed.

``python -m focaledu autograde SUBMISSION.ipynb ... --book PATH`` runs the instructor's chapter in a fresh
kernel with the submission's definitions in place of its solution cells; ``book/appendix_instructors.md``
describes the procedure and its limits. Answers that use one of :data:`SUSPICIOUS` are marked ``review``.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import focaledu
from focaledu.student import HIDDEN_CHECK_TAG, SOLUTION_TAG, is_explorer, stubs

POINTS = re.compile(r"#\s*points:\s*(\d+(?:\.\d+)?)", re.I)
SUSPICIOUS = ("focaledu.checks", "import checks", "_core", "CheckResult", "sys.modules", "importlib", "__import__",
              "gc.", "inspect", "__code__", "__globals__", "__dict__", "builtins", "setattr", "getattr", "open(",
              "os.", "shutil", "pathlib", "threading", "ctypes", "_getframe", "f_back", "get_ipython",
              "history_manager", "sqlite", "subprocess", "exec(", "eval(")
PACKAGE = Path(focaledu.__file__).resolve().parent


@dataclass
class Grade:
    submission: str
    exercise: str
    status: str  # "passed", "not yet", "error" (the check raised or could not run) or "tampered"
    message: str
    points: float = 0.0
    max_points: float = 1.0
    review: list[str] = field(default_factory=list)  # suspicious names in the graded answer


@dataclass
class Exercise:
    name: str
    check_cell: int
    solution_cell: int | None  # the instructor's solution cell the check follows
    points: float
    # (cell, call): the k-th checks.<name>(...) call of a cell; the visible check first, then the hidden ones
    checks: list[tuple[int, int]] = field(default_factory=list)


def _code(source: str) -> str:
    """The Python of a cell: IPython magics and shell lines blanked out (line numbers kept)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _check_call(statement) -> ast.Call | None:
    value = statement.value if isinstance(statement, (ast.Expr, ast.Assign)) else None
    if isinstance(value, ast.Call):
        root = value.func
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id == "checks" and isinstance(value.func, ast.Attribute):
            return value
    return None


def _points(cell) -> float:
    meta = cell.metadata.get("focaledu", {}).get("points")
    match = POINTS.search(cell.source)
    return float(meta if meta is not None else match[1] if match else 1)


def _check_calls(source: str) -> list[ast.Call]:
    """The ``checks.<name>(...)`` calls of a cell, in order."""
    return [call for statement in ast.parse(_code(source)).body if (call := _check_call(statement)) is not None]


def exercises(nb) -> list[Exercise]:
    """The exercises of an instructor's chapter notebook, in order, each with its hidden checks.

    Raises:
        ValueError: for a ``hidden-check`` cell that calls no check or has no check cell before it.
    """
    found, solution = [], None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if SOLUTION_TAG in tags:
            solution = i
            continue
        calls = _check_calls(cell.source)
        if HIDDEN_CHECK_TAG in tags:
            if not calls or not found:
                why = "calls no checks.<name>(...)" if not calls else "has no check cell before it"
                raise ValueError(f"cell {i}, tagged {HIDDEN_CHECK_TAG!r}, {why}: a hidden check follows the "
                                 f"check cell of its exercise and calls checks.<name>(...):\n{cell.source[:200]}")
            found[-1].checks += [(i, k) for k in range(len(calls))]
            continue
        found += [Exercise(call.func.attr, i, solution, _points(cell), [(i, k)]) for k, call in enumerate(calls)]
    return found


def _top_level_names(source: str) -> set[str]:
    try:
        tree = ast.parse(_code(source))
    except SyntaxError:  # still found by name, so that the error costs that exercise only
        return {a or b for a, b in re.findall(r"^(?:async\s+)?(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.M)}
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    targets = [t for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) for t in
               (n.targets if isinstance(n, ast.Assign) else [n.target])]
    return names | {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def answers(instructor, submission) -> dict[int, str]:
    """The submission's source for each solution cell of ``instructor`` (the stub when unanswered).

    An answer is every submission cell that defines a name the stub defines; the last definition wins.
    """
    cells = [c.source for c in submission.cells if c.cell_type == "code"]
    defined = [_top_level_names(source) for source in cells]
    found = {}
    for index, stub in stubs(instructor).items():
        last = {}
        for name in _top_level_names(stub):
            where = [k for k, names in enumerate(defined) if name in names]
            if where:
                last[name] = where[-1]
        found[index] = "\n\n".join(cells[k] for k in sorted(set(last.values()))) if last else stub
    return found


# The grader's side in the kernel: defined by the prelude under a random name,
# before any student code runs. {name} is that name, {home} the private copy.
PRELUDE = '''
def _grader_factory():
    import importlib, json, os, pkgutil, sys, types
    import numpy
    import focaledu
    if not os.path.abspath(focaledu.__file__).startswith({home!r}):
        raise RuntimeError("focaledu was not imported from the grader's copy: " + focaledu.__file__)
    for info in pkgutil.walk_packages(focaledu.__path__, "focaledu."):
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional dependency missing: that module is not used by the checks
            pass
    from focaledu.checks._core import CheckResult
    names = [n for n in sys.modules if n == "focaledu" or n.startswith("focaledu.")] + ["numpy"]
    modules = {{n: sys.modules[n] for n in names}}
    dicts = {{n: dict(vars(m)) for n, m in modules.items()}}
    classes = {{v: dict(vars(v)) for m in modules.values() for v in vars(m).values()
               if isinstance(v, type) and str(getattr(v, "__module__", "")).startswith("focaledu")}}
    functions = [v for d in [*dicts.values(), *classes.values()] for v in d.values()
                 if isinstance(v, types.FunctionType)]
    code = {{f: (f.__code__, f.__defaults__, f.__kwdefaults__) for f in functions}}
    missing = object()

    def restore():
        for n, m in modules.items():
            sys.modules[n] = m
            vars(m).update(dicts[n])
        for c, d in classes.items():
            for k, v in d.items():
                if k not in ("__dict__", "__weakref__", "__doc__") and c.__dict__.get(k, missing) is not v:
                    setattr(c, k, v)
        for f, (c, d, kw) in code.items():
            f.__code__, f.__defaults__, f.__kwdefaults__ = c, d, kw

    def intact():
        return (all(sys.modules.get(n) is m and all(vars(m).get(k, missing) is v for k, v in dicts[n].items())
                    for n, m in modules.items())
                and all(c.__dict__.get(k, missing) is v for c, d in classes.items() for k, v in d.items())
                and all(f.__code__ is c and f.__defaults__ is d and f.__kwdefaults__ is kw
                        for f, (c, d, kw) in code.items()))

    def grade(path, call):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        restore()
        try:
            result = call(modules["focaledu.checks"])
            genuine = type(result) is CheckResult and intact()
            record = {{"passed": genuine and result.passed is True, "message": str(result.message)}}
            if not genuine:
                record["message"] = "tampering: the check's code or result was altered while it ran."
                record["tampered"] = True
        except BaseException as error:
            record = {{"passed": False, "message": "the check raised %s: %s" % (type(error).__name__, error)}}
        restore()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.close(fd)
        return "graded"

    return grade


{name} = _grader_factory()
del _grader_factory
try:  # the prelude's source, hence {name}, out of the history student code can read
    _history = get_ipython().history_manager
    del _history.input_hist_parsed[:], _history.input_hist_raw[:]
    _history._i00 = _history._i = _history._ii = _history._iii = ""
    for _key in [k for k in globals() if k in ("_i", "_ii", "_iii", "_i1", "In", "_ih")]:
        del globals()[_key]
    del _history, _key
except NameError:  # not IPython
    pass
'''


def _check_source(source: str, grader: str, paths: list[str]) -> str:
    """A check cell whose ``checks.<name>(...)`` calls go through the grader (one result file each)."""
    code = _code(source)
    tree = ast.parse(code)
    out, k = [], 0
    for statement in tree.body:
        segment = ast.get_source_segment(code, statement)
        call = _check_call(statement)
        if call is not None:
            segment = f"{grader}({paths[k]!r}, lambda checks: {ast.get_source_segment(code, call)})"
            k += 1
        out.append(segment)
    return "\n".join(out)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


class Autograder:
    """Grades submissions against instructor chapters (see ``book/appendix_instructors.md``).

    Args:
        book: a folder of chapter notebooks (matched by file name) or one chapter notebook.
        timeout: seconds each cell may run.
        kernel_name: the Jupyter kernel (default: the chapter's).
    """

    def __init__(self, book: Path | str, timeout: int = 300, kernel_name: str | None = None):
        self.book, self.timeout, self.kernel_name = Path(book), timeout, kernel_name
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        # Read before any submission runs: what every kernel imports, and what must not change.
        self.package = {rel: (PACKAGE / rel).read_bytes() for rel in _hashes(PACKAGE)}

    def chapter(self, submission: Path) -> Path:
        if self.book.suffix == ".ipynb":
            return self.book
        return self.book / Path(submission).name

    def grade(self, submission: Path | str) -> list[Grade]:
        import nbformat

        submission = Path(submission)
        chapter = self.chapter(submission)
        if not chapter.is_file():
            return [Grade(str(submission), "(notebook)", "error",
                          f"no instructor chapter {chapter} for this submission (named after it).", 0, 0)]
        instructor = nbformat.read(chapter, as_version=4)
        todo = exercises(instructor)
        try:
            mine = answers(instructor, nbformat.read(submission, as_version=4))
        except Exception as err:  # not a notebook: every exercise fails, one message
            return [Grade(str(submission), e.name, "error", f"unreadable submission: {err}", 0, e.points)
                    for e in todo]
        unanswered = stubs(instructor)
        lost: dict[int, str] = {}  # solution cell -> why its exercise is lost (timeout, dead kernel)
        while True:
            results, failure = self._run(instructor, {**mine, **{i: unanswered[i] for i in lost}})
            if failure is None or failure[0] is None or failure[0] in lost:
                break
            lost[failure[0]] = failure[1]
        grades = []
        for e in todo:
            answer = mine.get(e.solution_cell, "")
            review = [word for word in SUSPICIOUS if word in answer]
            record = _combined([(results.get(cell) or [])[k:k + 1] for cell, k in e.checks])
            if e.solution_cell in lost:
                grade = Grade(str(submission), e.name, "error", lost[e.solution_cell], 0, e.points)
            elif results.get("tampered"):
                grade = Grade(str(submission), e.name, "tampered", results["tampered"], 0, e.points)
            elif record is None:
                why = failure[1] if failure else "the check cell did not run (an earlier cell failed)."
                grade = Grade(str(submission), e.name, "error", why, 0, e.points)
            else:
                status = "passed" if record["passed"] else "tampered" if record.get("tampered") else "not yet"
                grade = Grade(str(submission), e.name, status, record["message"],
                              e.points if record["passed"] else 0, e.points)
            grade.review = review
            grades.append(grade)
        return grades

    def _run(self, instructor, substitutes: dict[int, str]):
        """Runs the chapter with ``substitutes``; returns ``(results, failure)``.

        ``results`` maps check cell -> records of its check calls; ``failure`` is
        ``(solution cell or None, message)`` when the run stopped early.
        """
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        nb = nbformat.v4.new_notebook(metadata=instructor.metadata)
        names = exercises(instructor)
        owner, work = {}, Path(tempfile.mkdtemp(prefix="focaledu-grade-"))
        installed = _hashes(PACKAGE)  # changed by an earlier submission: reported then, not now
        try:
            home = work / "package"
            for rel, data in self.package.items():
                (home / "focaledu" / rel).parent.mkdir(parents=True, exist_ok=True)
                (home / "focaledu" / rel).write_bytes(data)
            results_dir = work / f"results-{secrets.token_hex(8)}"
            results_dir.mkdir()
            grader = f"_grade_{secrets.token_hex(8)}"
            nb.cells.append(nbformat.v4.new_code_cell(PRELUDE.format(name=grader, home=str(home))))
            files = {}  # grading cell -> its checks' result files, in call order
            solution = None
            for i, cell in enumerate(instructor.cells):
                if cell.cell_type != "code":
                    continue
                source = "pass  # an interactive explorer, not run when grading" if is_explorer(cell) else cell.source
                if i in substitutes:
                    source, solution = substitutes[i], i
                here = any(i == cell_index for e in names for cell_index, _ in e.checks)
                if here:
                    paths = [str(results_dir / secrets.token_hex(12)) for _ in _check_calls(cell.source)]
                    source = _check_source(cell.source, grader, paths)
                    files[len(nb.cells)] = paths
                owner[len(nb.cells)] = solution if i in substitutes or here else None
                nb.cells.append(nbformat.v4.new_code_cell(source))
            results, failure, running = {"tampered": None}, None, {}
            index_of = {k: i for k, i in zip(range(1, len(nb.cells)), [i for i, c in enumerate(instructor.cells)
                                                                        if c.cell_type == "code"])}

            def started(cell, cell_index, **_):
                running["cell"] = cell_index

            def executed(cell, cell_index, **_):
                # Read at once: whatever runs later in the kernel cannot rewrite it.
                for path in files.get(cell_index, []):
                    try:
                        record = json.loads(Path(path).read_text())
                    except (OSError, ValueError):
                        record = {"passed": False, "message": _cell_error(cell) or "no result from the check."}
                    results.setdefault(index_of[cell_index], []).append(record)

            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(home), os.environ.get("PYTHONPATH")])),
                   "MPLBACKEND": "Agg"}
            options = {"kernel_name": self.kernel_name} if self.kernel_name else {}
            client = NotebookClient(nb, timeout=self.timeout, allow_errors=True, interrupt_on_timeout=False,
                                    resources={"metadata": {"path": str(work)}}, on_cell_start=started,
                                    on_cell_executed=executed, **options)
            try:
                client.execute(env=env)
            except (CellTimeoutError, DeadKernelError) as err:
                cell = running.get("cell")
                what = "ran past the time limit" if isinstance(err, CellTimeoutError) else "stopped the kernel"
                failure = (owner.get(cell), f"{what} ({self.timeout} s per cell): {type(err).__name__}.")
            if _hashes(home / "focaledu") != {rel: hashlib.sha256(data).hexdigest()
                                              for rel, data in self.package.items()}:
                results["tampered"] = "tampering: the submission rewrote focaledu's files."
            if _hashes(PACKAGE) != installed:
                results["tampered"] = f"tampering: the submission rewrote the installed focaledu ({PACKAGE})."
            return results, failure
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _combined(found: list[list[dict]]) -> dict | None:
    """One record for an exercise from its visible and hidden checks' records.

    Passed only when all passed; None when one did not run.
    """
    if not all(found):
        return None
    records = [r for [r] in found]
    visible, hidden = records[0], records[1:]
    failed = next((r for r in records if r.get("tampered")), None) or next((r for r in records if not r["passed"]), None)
    if failed is None:
        extra = f" It also passed {len(hidden)} hidden check{'s' * (len(hidden) > 1)}." if hidden else ""
        return {**visible, "message": visible["message"] + extra}
    if failed is visible:
        return failed
    return {**failed, "message": "passed the check shown in the notebook, but not a hidden check of this "
                                 f"exercise: {failed['message']}"}


def _cell_error(cell) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"the check cell raised {output.get('ename')}: {output.get('evalue')}"
    return None


def autograde(submissions, book: Path | str, timeout: int = 300, kernel_name: str | None = None) -> list[Grade]:
    """Grades every submission against its chapter in ``book``; see :class:`Autograder`."""
    grader = Autograder(book, timeout=timeout, kernel_name=kernel_name)
    return [g for path in submissions for g in grader.grade(path)]


def student_of(submission: str, book: Path | str) -> str:
    """The student a submission belongs to: its folder when the book is a folder, else the file's stem."""
    path = Path(submission)
    return path.parent.name if Path(book).suffix != ".ipynb" else path.stem


def format_report(grades: list[Grade]) -> str:
    """One block per submission: its score, then each exercise with the check's message."""
    lines, by_file = [], {}
    for grade in grades:
        by_file.setdefault(grade.submission, []).append(grade)
    for submission, rows in by_file.items():
        score, total = sum(g.points for g in rows), sum(g.max_points for g in rows)
        lines.append(f"{submission}: {score:g}/{total:g} points, {sum(g.status == 'passed' for g in rows)}/"
                     f"{len(rows)} exercises passed")
        for g in rows:
            flag = f" [review: uses {', '.join(g.review)}]" if g.review else ""
            lines.append(f"  {g.status.upper():8} {g.exercise} ({g.points:g}/{g.max_points:g}): {g.message}{flag}")
    return "\n".join(lines)


def write_csv(grades: list[Grade], path: Path | str, book: Path | str) -> None:
    """The class gradebook: one row per student, one column per exercise, the total, and flags."""
    columns, rows = [], {}
    for g in grades:
        if g.exercise not in columns:
            columns.append(g.exercise)
        row = rows.setdefault(student_of(g.submission, book), {"review": set()})
        row[g.exercise] = g.points
        row["total"] = row.get("total", 0) + g.points
        if g.review or g.status == "tampered":
            row["review"].add(g.exercise)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *columns, "total", "review"])
        for student, row in rows.items():
            writer.writerow([student, *(f"{row[c]:g}" if c in row else "" for c in columns), f"{row['total']:g}",
                             " ".join(sorted(row["review"]))])


def gradescope(grades: list[Grade]) -> dict:
    """Gradescope's ``results.json`` for one student's submissions (every notebook Gradescope received)."""
    tests = [{"name": f"{Path(g.submission).stem}: {g.exercise}", "score": g.points, "max_score": g.max_points,
              "status": "passed" if g.status == "passed" else "failed",
              "output": f"{g.status.upper()}: {g.message}" + (" (flagged for review)" if g.review else "")}
             for g in grades]
    return {"score": sum(g.points for g in grades), "tests": tests}


def grades_json(grades: list[Grade]) -> str:
    return json.dumps([asdict(g) for g in grades], indent=2) + "\n"


# --------------------------------------------------------------------------- #
# command line (``python -m focaledu autograde``, registered through focaledu.student)


def add_parser(sub):
    from focaledu.student import default_book

    p = sub.add_parser(
        "autograde", help="grade submitted notebooks with the instructor's checks",
        description="Grade submitted notebooks: the instructor's chapter runs in a fresh kernel with the "
                    "student's answers in place of its solutions, and the checks of focaledu.checks decide. "
                    "Printed output and the submission's metadata are ignored. Exit status 0 when every "
                    "exercise of every submission passed, else 1.",
    )
    p.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSION.ipynb",
                   help="named like the chapter (03_hierarchical_contextualization.ipynb), one folder per "
                        "student (the folder names the student in the CSV); or any name with --book CHAPTER.ipynb")
    default = default_book()
    p.add_argument("--book", type=Path, default=default, metavar="PATH",
                   help="the instructor's book folder (chapters matched by file name) or one chapter notebook "
                        f"(default: {default or 'none: a pip install has no book, so name it'})")
    p.add_argument("--timeout", type=int, default=300, metavar="S",
                   help="seconds each cell may run; a solution past it loses its exercise only (default 300)")
    p.add_argument("--kernel", default=None, help="kernel name (default: the chapter's)")
    p.add_argument("--csv", type=Path, default=None, metavar="FILE",
                   help="class gradebook: one row per student, one column per exercise, the total")
    p.add_argument("--gradescope", type=Path, default=None, metavar="FILE",
                   help="Gradescope's results.json for the submissions given (one student's)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="every grade as JSON")
    return p


def run(args) -> int:
    import sys

    missing = [str(p) for p in args.submissions if not p.is_file()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.book is None or not args.book.exists():
        print(f"error: --book {'is required' if args.book is None else repr(str(args.book)) + ' does not exist'}: "
              "the instructor's book folder (its *.ipynb chapters, with solutions) or one chapter notebook.",
              file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print(f"error: --timeout must be a positive number of seconds, got {args.timeout}.", file=sys.stderr)
        return 2
    grades = autograde(args.submissions, args.book, timeout=args.timeout, kernel_name=args.kernel)
    if not grades:
        print(f"error: no exercise to grade: no check cell of {args.book} calls checks.<name>(...) "
              "of focaledu.checks.", file=sys.stderr)
        return 1
    print(format_report(grades))
    for target, write in ((args.csv, lambda t: write_csv(grades, t, args.book)),
                          (args.gradescope, lambda t: t.write_text(json.dumps(gradescope(grades), indent=2) + "\n")),
                          (args.json, lambda t: t.write_text(grades_json(grades)))):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            write(target)
    return 0 if grades and all(g.status == "passed" for g in grades) else 1
