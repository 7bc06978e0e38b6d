"""Packaging: one version, every import declared, no unused dependency, extras that install what they say.

pyproject.toml is the one place for the version and the dependencies;
CITATION.cff repeats the version, requirements/requirements.in lists every
declared distribution and requirements/lock.txt pins it.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import focaledu

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "focaledu"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# Import name -> distribution name, where they differ.
DISTRIBUTION = {
    "yaml": "pyyaml",
    "PIL": "pillow",
    "IPython": "ipython",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "sphinx_exercise": "sphinx-exercise",
    "google": "protobuf",
}
# Distributions that a lock may pin under another name (the CPU build).
SAME = {"tensorflow": {"tensorflow", "tensorflow-cpu"}}
# Where an import that the core does not need belongs.
EXTRA_OF = {
    "tensorflow": "tensorflow",
    "jax": "jax",
    "nbformat": "instructor",
    "nbclient": "instructor",
    "ipywidgets": "book",
    "ipython": "book",
    "pyyaml": "book",  # student.write_book_config, for `make book-student`
    "sphinx-exercise": "book",  # focaledu.student as a Sphinx extension of the student book
}
# Imported, deliberately not declared. Each with its reason.
UNDECLARED = {
    # receptive.py imports it only when keras.backend.backend() == "torch", i.e. when the user
    # already installed torch to run Keras on it; the course does not support that backend.
    "torch": "only under the torch backend",
}


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _requirements(extra: str | None = None, seen=None) -> set[str]:
    """Distribution names of the core dependencies or of ``extra``, self-references (focaledu[x]) resolved."""
    seen = set() if seen is None else seen
    if extra in seen:
        return set()
    seen.add(extra)
    raw = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    names = set()
    for line in raw:
        req = Requirement(line)
        if _name(req.name) == "focaledu":
            for inner in req.extras:
                names |= _requirements(inner, seen)
        else:
            names.add(_name(req.name))
    return names


def _third_party_imports(root: Path) -> dict[str, set[str]]:
    """Top-level import name -> the files of ``root`` that import it (any depth, lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("focaledu", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _distribution(import_name: str) -> str:
    return _name(DISTRIBUTION.get(import_name, import_name))


# --------------------------------------------------------------------------- #
# version


def test_version_is_defined_once():
    version = PROJECT["version"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(citation["version"]) == version, (
        f"CITATION.cff says version {citation['version']}, pyproject.toml says {version}: "
        "update CITATION.cff's `version:`"
    )
    assert "version" not in PROJECT.get("dynamic", [])
    assert focaledu.__version__ == version, (
        f"focaledu.__version__ is {focaledu.__version__} (the installed metadata), pyproject.toml says "
        f"{version}: reinstall (`make venv` or `pip install -e . --no-deps`)"
    )
    init = (PACKAGE / "__init__.py").read_text()
    assert not re.search(r"__version__\s*=\s*['\"]", init), "focaledu/__init__.py writes the version out again"


# --------------------------------------------------------------------------- #
# imports and dependencies


def test_every_module_imports():
    modules = [info.name for info in pkgutil.walk_packages(focaledu.__path__, "focaledu.")]
    assert "focaledu.student" in modules and "focaledu.checks" in modules
    for name in modules:
        importlib.import_module(name)


# The library wing: what a practitioner who pip-installs the layers uses.
LIBRARY = ["model", "layers", "block_parts", "attention", "zoo", "convert", "interpret", "weights", "data", "image_dataset",
           "readers", "hf_source", "synthetic", "pipelines", "tf_pipeline", "array_pipeline", "training",
           "recipes", "callbacks", "records", "distribute", "figures"]


def test_library_needs_no_plotting_or_widgets():
    """The library imports where matplotlib and ipywidgets cannot be imported: only the teaching modules
    (plots, diagrams, widgets, ...) need them. (Keras itself imports matplotlib when it is installed, so
    the test blocks it rather than looking at sys.modules.)"""
    code = ("import sys\nsys.modules['matplotlib'] = sys.modules['ipywidgets'] = None\nimport focaledu\n"
            + "".join(f"import focaledu.{name}\n" for name in LIBRARY))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    blocked = subprocess.run([sys.executable, "-c", code + "import focaledu.plots\n"], capture_output=True, text=True)
    assert "matplotlib" in blocked.stderr, "the block did not take: focaledu.plots imported without matplotlib"


def _package_imports() -> dict[str, set[str]]:
    """``{module: focaledu modules it imports}``, counting imports inside functions too."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("focaledu"):
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("focaledu")}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_library_never_imports_the_teaching_wing():
    library = {"focaledu", "focaledu._validate"} | {f"focaledu.{name}" for name in LIBRARY}
    graph = _package_imports()
    wrong = {m: sorted(graph[m] - library) for m in sorted(library & set(graph)) if graph[m] - library}
    assert not wrong, f"library modules importing the teaching wing: {wrong}"
    assert "focaledu.figures" in graph["focaledu.training"]  # an import inside a function counts too


def test_package_has_no_import_cycles():
    """Not even through imports inside functions, which only hide a cycle from the interpreter."""
    graph = _package_imports()
    assert graph["focaledu.layers"] >= {"focaledu.attention", "focaledu.block_parts"}  # the parser sees the edges
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles(graph) == []


def test_every_third_party_import_is_declared():
    imports = _third_party_imports(PACKAGE)
    core = _requirements()
    extras = {extra: _requirements(extra) for extra in PROJECT["optional-dependencies"]}
    undeclared = []
    for name, files in sorted(imports.items()):
        if name in UNDECLARED:
            continue
        dist = _distribution(name)
        where = EXTRA_OF.get(dist)
        if where is not None:
            ok = dist in extras.get(where, set())
            if not ok:
                undeclared.append(f"{name} ({dist}) belongs in the [{where}] extra: {', '.join(sorted(files))}")
        elif dist not in core and not any(dist in names for names in extras.values()):
            undeclared.append(f"{name} ({dist}): {', '.join(sorted(files))}")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)


def test_no_unused_core_dependency():
    imported = {_distribution(name) for name in _third_party_imports(PACKAGE)}
    unused = sorted(_requirements() - imported)
    assert not unused, f"declared in [project] dependencies but never imported by focaledu/: {unused}"


def test_extras():
    extras = {extra: _requirements(extra) for extra in PROJECT["optional-dependencies"]}
    assert set(extras) == {"tensorflow", "jax", "book", "dev", "instructor"}
    assert "tensorflow" in extras["book"]  # the book executes on TensorFlow
    assert {"nbformat", "nbclient", "ipykernel"} <= extras["instructor"]  # student-notebooks, autograde
    assert {"pytest", "nbval", "jupytext", "tensorflow", "jax", "pyyaml"} <= extras["dev"]
    assert extras["book"] | extras["instructor"] <= extras["dev"]  # the tests build and read both


def test_tests_imports_are_in_dev():
    """What the tests import (beyond focaledu's own imports) comes with [dev]."""
    dev = _requirements("dev") | _requirements()
    # Installed by [dev]'s packages, not named there: sphinx (jupyter-book), packaging (pytest).
    transitive = {"sphinx", "packaging"}
    missing = []
    for name, files in sorted(_third_party_imports(ROOT / "tests").items()):
        files = {f for f in files if not f.startswith("tests/fixtures/")}  # generators, run by hand
        local = (ROOT / "tests" / f"{name}.py").exists() or (ROOT / "tools" / f"{name}.py").exists()
        if files and name not in transitive and not local:
            if _distribution(name) not in dev:
                missing.append(f"{name}: {', '.join(sorted(files))}")
    assert not missing, "the tests import what [dev] does not install:\n" + "\n".join(missing)


def _pinned(path: Path) -> set[str]:
    names = set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(_name(Requirement(line).name))
    return names


@pytest.mark.parametrize("path", ["requirements/requirements.in", "requirements/lock.txt"])
def test_requirements_cover_every_declared_distribution(path):
    pinned = _pinned(ROOT / path)
    declared = _requirements().union(*(_requirements(e) for e in PROJECT["optional-dependencies"]))
    missing = sorted(d for d in declared if not (SAME.get(d, {d}) & pinned))
    assert not missing, f"{path} lacks {missing}"


def test_requirements_in_lists_nothing_undeclared():
    """requirements.in holds what pyproject.toml declares (plus backend builds), so nothing unused lingers."""
    declared = _requirements().union(*(_requirements(e) for e in PROJECT["optional-dependencies"]))
    aliases = {alias for names in SAME.values() for alias in names}
    extra = sorted(d for d in _pinned(ROOT / "requirements/requirements.in")
                   if d not in declared and d not in aliases)
    assert not extra, f"requirements/requirements.in lists what pyproject.toml does not declare: {extra}"


def test_readme_names_every_extra():
    readme = (ROOT / "README.md").read_text()
    for extra in PROJECT["optional-dependencies"]:
        assert re.search(rf"\[[\w,]*\b{extra}\b[\w,]*\]", readme), f"README.md does not show the [{extra}] extra"
