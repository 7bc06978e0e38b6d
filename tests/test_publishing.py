"""Publishing: the GitHub Pages workflow and the Binder configuration.

.github/workflows/book.yml builds the book with the README's command and
deploys what the Makefile builds; binder/ gives Binder the lock's pins and
installs focaledu itself. Everything here runs offline.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
BINDER = ROOT / "binder"

# check-jsonschema with every socket call failing: its vendored schemas must suffice.
OFFLINE_CHECK_JSONSCHEMA = """
import socket, sys
def no_network(*args, **kwargs):
    raise OSError("check-jsonschema tried the network")
socket.socket.connect = socket.create_connection = socket.getaddrinfo = no_network
sys.argv[0] = "check-jsonschema"
from check_jsonschema import main
main()
"""


def _workflow() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    if True in workflow:  # YAML 1.1 reads the key `on` as a boolean
        workflow["on"] = workflow.pop(True)
    return workflow


def _make(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return result.stdout


def _make_variable(name: str) -> str:
    return _make("-s", "--eval=print-%: ; @echo $($*)", f"print-{name}").strip()


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", OFFLINE_CHECK_JSONSCHEMA,
         "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120)


def _evaluate(condition: str | None, context: dict[str, str]) -> bool:
    """Evaluate an ``if:`` of ``name == 'literal'`` terms joined by && and || (no ``if:`` is true)."""
    if condition is None:
        return True
    expression = condition.strip().removeprefix("${{").removesuffix("}}")
    python = expression.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"\b(?:github|steps)\.[\w.-]+", lambda m: repr(context[m.group(0)]), python)
    assert re.fullmatch(r"[\s\w'/.\-=!()]*", python), f"unsupported condition: {condition}"
    return bool(eval(python, {"__builtins__": {}}))  # only names, literals and comparisons, checked above


# --------------------------------------------------------------------------- #
# the workflow


def test_workflow_is_a_valid_github_workflow_offline():
    result = _check_jsonschema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize("breakage, error", [
    (lambda w: w["jobs"]["build"].pop("runs-on"), "'runs-on' is a required property"),
    (lambda w: w["jobs"]["deploy"]["permissions"].update({"pages": "admin"}),
     "'admin' is not one of ['read', 'write', 'none']"),
])
def test_validator_rejects_a_broken_workflow(tmp_path, breakage, error):
    workflow = _workflow()
    breakage(workflow)
    broken = tmp_path / "book.yml"
    broken.write_text(yaml.safe_dump(workflow, sort_keys=False))
    result = _check_jsonschema(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout and error in result.stdout
    assert "tried the network" not in result.stdout + result.stderr


def test_workflow_builds_with_the_readme_command_and_uploads_what_it_builds():
    build = _workflow()["jobs"]["build"]["steps"]
    commands = [step["run"].strip() for step in build if step.get("run", "").startswith("make ")]
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    readme_commands = {line.split("#")[0].strip() for line in first_block.splitlines()}
    assert commands and commands[-1] in readme_commands, (
        f"the workflow builds with {commands[-1:]}, the README with {sorted(readme_commands)}")

    # Where the target the workflow runs says it writes the book (a dry run: nothing executes).
    dry_run = _make("-n", commands[-1].split()[1])
    built = re.search(r"(\S+)/index\.html", dry_run).group(1)
    uploads = [step for step in build if step.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert [step["with"]["path"] for step in uploads] == [built]


def test_workflow_caches_what_the_makefile_reuses():
    steps = _workflow()["jobs"]["build"]["steps"]
    cached = {path for step in steps if step.get("uses", "").startswith("actions/cache@")
              for path in step["with"]["path"].split()}
    execution_cache = re.search(r"--cache (\S+)", _make("-n", "book-student")).group(1)
    assert os.path.relpath(execution_cache, ROOT) in cached
    assert _make_variable("VENDOR") in cached
    python = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["cache-dependency-path"] == _make_variable("LOCK")


@pytest.mark.parametrize("event, ref, deploys", [
    ("push", "refs/heads/main", True),
    ("workflow_dispatch", "refs/heads/main", True),
    ("workflow_dispatch", "refs/heads/draft", False),
    ("pull_request", "refs/pull/7/merge", False),
])
def test_only_main_deploys(event, ref, deploys):
    workflow = _workflow()
    assert {"push", "pull_request", "workflow_dispatch"} <= set(workflow["on"])
    assert workflow["on"]["push"]["branches"] == ["main"]
    context = {"github.event_name": event, "github.ref": ref}
    deploy = workflow["jobs"]["deploy"]
    assert _evaluate(deploy.get("if"), context) is deploys
    pages_steps = [step for step in workflow["jobs"]["build"]["steps"]
                   if re.match(r"actions/(configure-pages|upload-pages-artifact)@", step.get("uses", ""))]
    assert len(pages_steps) == 2
    assert all(_evaluate(step.get("if"), context) is deploys for step in pages_steps)
    # deploy-pages needs both; the build job never gets write access.
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages" and deploy["needs"] == "build"
    assert "write" not in workflow["permissions"].values()
    assert "write" not in workflow["jobs"]["build"]["permissions"].values()


def test_actions_are_pinned_to_a_major_version():
    jobs = _workflow()["jobs"].values()
    uses = [step["uses"] for job in jobs for step in job["steps"] if "uses" in step]
    assert uses
    unpinned = [use for use in uses if not re.fullmatch(r"[\w-]+/[\w-]+@v\d+", use)]
    assert not unpinned, f"pin these to a major version (owner/action@vN): {unpinned}"


# --------------------------------------------------------------------------- #
# Binder


def _binder_environment() -> dict[str, str]:
    """Marker values of Binder's image: Linux, x86-64, the Python of binder/runtime.txt."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    version = re.fullmatch(r"python-(3\.\d+)", runtime)
    assert version, f"binder/runtime.txt says {runtime!r}, expected python-3.X"
    return {"python_version": version.group(1), "python_full_version": f"{version.group(1)}.0",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "platform_machine": "x86_64", "implementation_name": "cpython",
            "platform_python_implementation": "CPython"}


def _binder_pins() -> dict[str, str]:
    """Distribution -> version that pip installs from binder/requirements.txt on Binder.

    Read with pip's own parser (pip has no public API for it) from the repository root,
    where repo2docker runs pip.
    """
    script = ("import json\n"
              "from pip._internal.network.session import PipSession\n"
              "from pip._internal.req.req_file import parse_requirements\n"
              "lines = parse_requirements('binder/requirements.txt', session=PipSession())\n"
              "print(json.dumps([line.requirement for line in lines]))\n")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    environment = _binder_environment()
    pins = {}
    for line in json.loads(result.stdout):
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            pins[_name(requirement.name)] = version
    return pins


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _declared(extra: str | None, project: dict) -> set[str]:
    """Distributions that focaledu (with ``extra``) needs, its self-references resolved."""
    lines = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names = set()
    for line in lines:
        requirement = Requirement(line)
        if _name(requirement.name) == "focaledu":
            for inner in requirement.extras:
                names |= _declared(inner, project)
        else:
            names.add(_name(requirement.name))
    return names


def test_binder_installs_the_lock_for_its_python():
    pins = _binder_pins()
    lock = [Requirement(line.split("#")[0]) for line in (ROOT / "requirements/lock.txt").read_text().splitlines()
            if line.split("#")[0].strip()]
    environment = _binder_environment()
    expected = {_name(r.name): str(r.specifier).removeprefix("==") for r in lock
                if r.marker is None or r.marker.evaluate(environment)}
    assert pins == expected
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert environment["python_full_version"] in SpecifierSet(project["requires-python"])


def test_binder_covers_focaledu_and_every_chapter_import():
    """postBuild installs focaledu with --no-deps: the pins must bring what it and the chapters import."""
    pins = set(_binder_pins())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    aliases = {"tensorflow": {"tensorflow", "tensorflow-cpu"}}  # the lock pins the CPU build
    missing = sorted(d for d in _declared(None, project) | _declared("book", project)
                     if not aliases.get(d, {d}) & pins)
    assert not missing, f"binder/requirements.txt does not pin focaledu[book]'s {missing}"

    to_python = TransformerManager().transform_cell  # %pip ... becomes get_ipython().run_line_magic(...)
    imported: dict[str, set[str]] = {}
    for chapter in sorted((ROOT / "book").glob("*.md")):
        if not chapter.read_text().startswith("---\njupytext:"):
            continue  # a plain MyST page: its code blocks are shown, not run (e.g. shell commands)
        for cell in jupytext.read(chapter).cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(to_python(cell.source))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    imported.setdefault(name.split(".")[0], set()).add(chapter.name)
    assert "focaledu" in imported and "keras" in imported  # the parse found the chapters' imports

    providers = importlib.metadata.packages_distributions()
    uncovered = []
    for module, chapters in sorted(imported.items()):
        if module in sys.stdlib_module_names or module == "focaledu":
            continue
        if not {_name(d) for d in providers.get(module, [])} & pins:
            uncovered.append(f"{module} ({', '.join(sorted(chapters))})")
    assert not uncovered, "imported by chapters but not installed on Binder: " + "; ".join(uncovered)


def test_postbuild_installs_the_repository(tmp_path):
    """Run binder/postBuild on a copy of the repository, from elsewhere, with pip kept offline."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "focaledu", repo / "focaledu", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BINDER, repo / "binder")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, repo / name)
    site = tmp_path / "site"
    env = {
        "HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this as --no-build-isolation: build with this setuptools
        "PIP_TARGET": str(site),  # install beside, not into, the running environment
    }
    postbuild = repo / "binder" / "postBuild"
    assert os.access(postbuild, os.X_OK)
    result = subprocess.run([str(postbuild)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (site / f"focaledu-{version}.dist-info").is_dir()
    assert not list(site.glob("*.pth")), "postBuild made an editable install"
    installed = {p.relative_to(site / "focaledu") for p in (site / "focaledu").rglob("*") if p.is_file()}
    assert Path("__init__.py") in installed
    shipped = {p.relative_to(ROOT / "focaledu") for p in (ROOT / "focaledu" / "weights").iterdir()}
    assert shipped and shipped <= installed, "the pretrained weights must reach Binder"
    assert not [p for p in site.iterdir() if p.name not in {"focaledu", f"focaledu-{version}.dist-info", "bin"}], (
        "postBuild installed more than focaledu (--no-deps)")
