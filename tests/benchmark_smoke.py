"""Runs a benchmark script's ``--smoke`` mode in a subprocess (as a user would) and reads its results file."""

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_smoke(name: str, out: Path, *args: str, timeout: float = 300) -> dict:
    """``python benchmarks/<name>.py --smoke <args> --out <out>``; fails the test with the script's
    stderr on a non-zero exit, else returns ``<out>/<name>.json``."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--smoke", *args, "--out", str(out)],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{name}.json").read_text())
