"""Run every chapter of the book alone, the way a reader runs it on Colab.

Each notebook page of ``_toc.yml`` is copied alone into a fresh empty folder
and executed top to bottom there (nbclient, a timeout per cell), in a kernel
of the interpreter that runs this script, without ``FOCALEDU_CIFAR10`` and
with empty Keras and Hugging Face caches (one pair for the whole run, so a
download happens once): no repository, no ``../shared``, no local data.
focaledu must come from the installed package; a last cell, added to the
copy, checks that it did and that the kernel ran this interpreter.

``make test-colab`` runs it with ``.venv-colab/bin/python`` (Colab's versions,
focaledu installed from its wheel). Prints one line per chapter as it ends,
then a table (chapter, result, seconds) and each failure's cell and error;
exits 1 if any chapter failed.

Usage:
    python tests/scripts/run_chapters_alone.py [--timeout SECONDS] [CHAPTER ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "focaledu-alone"

# What the added last cell asserts: focaledu was imported from this
# interpreter's site-packages (the wheel), not from a checkout or a %pip install.
ORIGIN_CHECK = """\
import sys
import focaledu
assert sys.prefix == {prefix!r}, f"the kernel ran {{sys.executable}}, not {executable!r}"
assert focaledu.__file__.startswith({site!r}), (
    f"focaledu was imported from {{focaledu.__file__}}, not from the installed package in {site!r}"
)
"""


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """Every page of ``_toc.yml`` that has a paired ``.ipynb``, in the book's order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part.get("chapters", [])]
    return [root / f"{name}.ipynb" for name in files if (root / f"{name}.ipynb").is_file()]


def kernel_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a chapter's kernel: a fresh Colab runtime's, as far as it matters.

    Args:
        cache_dir: An empty folder for the Keras and Hugging Face caches.
    """
    env = dict(os.environ)
    for name in ("FOCALEDU_CIFAR10", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env.update(
        KERAS_BACKEND="tensorflow",
        # A new runtime has empty caches (the host's may hold CIFAR-10).
        KERAS_HOME=str(cache_dir / "keras"),
        HF_HOME=str(cache_dir / "huggingface"),
        # The setup cell's `%pip install` fallback must fail, not reach a server.
        PIP_NO_INDEX="1",
        GIT_TERMINAL_PROMPT="0",
        PYTHONNOUSERSITE="1",
        JUPYTER_PLATFORM_DIRS="1",
        # The kernel's stderr is this job's log: TensorFlow's C++ notices and
        # debugpy's note on frozen modules (ipykernel 6) only clutter it.
        TF_CPP_MIN_LOG_LEVEL="2",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


def write_kernelspec(jupyter_dir: Path) -> None:
    """A kernelspec for this interpreter, found first through ``JUPYTER_PATH``."""
    spec = jupyter_dir / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.prefix})",
        "language": "python",
    }))


def run_chapter(notebook: Path, timeout: int, env: dict[str, str]) -> dict:
    """Copy ``notebook`` alone into an empty folder and execute it there.

    Args:
        notebook: The chapter's ``.ipynb``.
        timeout: Seconds allowed per cell.
        env: The kernel's environment (:func:`kernel_env`).

    Returns:
        ``{"chapter", "ok", "seconds", "cell", "error"}``; ``cell`` (1-based
        index among all cells, with its first line) and ``error`` are empty
        for a chapter that passed.
    """
    with tempfile.TemporaryDirectory(prefix=f"{notebook.stem}-") as tmp:
        workdir = Path(tmp) / "content"
        workdir.mkdir()
        copy = workdir / notebook.name
        shutil.copyfile(notebook, copy)
        nb = nbformat.read(copy, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(ORIGIN_CHECK.format(
            prefix=sys.prefix, executable=sys.executable, site=sysconfig.get_paths()["purelib"])))

        current = {"index": None}
        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL,
                                resources={"metadata": {"path": str(workdir)}})
        client.on_cell_start = lambda cell, cell_index: current.update(index=cell_index)
        result = {"chapter": notebook.stem, "ok": True, "cell": "", "error": ""}
        start = time.perf_counter()
        try:
            client.execute(env=env, cwd=str(workdir))
        except Exception as err:  # a cell's error, a timeout, a dead kernel: this chapter failed, the next ones run
            result.update(ok=False, cell=_describe_cell(nb, current["index"]), error=_describe_error(err))
        result["seconds"] = time.perf_counter() - start
        return result


def _describe_cell(nb, index: int | None) -> str:
    if index is None:
        return "(before the first cell)"
    if index == len(nb.cells) - 1:
        return f"{index + 1} (the added check of where focaledu came from)"
    lines = nb.cells[index].source.strip().splitlines()
    return f"{index + 1}: {lines[0][:60] if lines else '(empty)'}"


def _describe_error(err: Exception) -> str:
    if isinstance(err, CellExecutionError) and err.ename:
        return f"{err.ename}: {err.evalue}".strip()
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


def print_table(results: list[dict]) -> None:
    width = max(len("chapter"), *(len(r["chapter"]) for r in results))
    print(f"\n{'chapter':<{width}}  result  seconds")
    for r in results:
        print(f"{r['chapter']:<{width}}  {'pass' if r['ok'] else 'FAIL':<6}  {r['seconds']:7.1f}")
    failed = [r for r in results if not r["ok"]]
    total = sum(r["seconds"] for r in results)
    print(f"{len(results) - len(failed)} of {len(results)} chapters passed in {total:.0f} s")
    for r in failed:
        print(f"\n{r['chapter']}: cell {r['cell']}\n    {r['error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER",
                        help="chapter names (e.g. 01_self_attention); default: every notebook page of _toc.yml")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    args = parser.parse_args(argv)

    notebooks = toc_notebooks()
    if not notebooks:
        print(f"no notebook pages in {ROOT / '_toc.yml'}: nothing to run", file=sys.stderr)
        return 1
    if args.chapters:
        known = {nb.stem: nb for nb in notebooks}
        unknown = [name for name in args.chapters if name not in known]
        if unknown:
            parser.error(f"unknown chapter(s) {unknown}; accepted: {sorted(known)}")
        notebooks = [known[name] for name in args.chapters]

    # A CI timeout's SIGTERM unwinds through nbclient, which shuts the kernel down.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="focaledu-alone-") as tmp:
        jupyter_dir = Path(tmp) / "jupyter"
        write_kernelspec(jupyter_dir)
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter_dir), os.environ.get("JUPYTER_PATH")]))
        env = kernel_env(Path(tmp) / "caches")
        print(f"Running {len(notebooks)} chapter(s) alone with {sys.executable}", flush=True)
        results = []
        for notebook in notebooks:
            result = run_chapter(notebook, args.timeout, env)
            results.append(result)
            print(f"  {result['chapter']}: {'pass' if result['ok'] else 'FAIL'} in {result['seconds']:.1f} s",
                  flush=True)
    print_table(results)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
