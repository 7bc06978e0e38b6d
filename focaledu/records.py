"""Results files: what they record about a run (command, machine, versions, date), and the shipped ones."""

from __future__ import annotations

import datetime
import importlib.resources
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

__all__ = ["json_default", "load_result", "recorded_results", "run_info"]


def run_info(command: str | None = None) -> dict:
    """``command``, ``machine``, ``versions`` and ``date`` for a results file."""
    import keras

    versions = {"python": platform.python_version(), "keras": keras.__version__,
                "backend": keras.backend.backend(), "numpy": np.__version__}
    for module in ("tensorflow", "jax", "jaxlib", "focaledu"):
        mod = sys.modules.get(module)
        if mod is None and module in ("tensorflow", "jax") and keras.backend.backend() == module:
            mod = __import__(module)
        if mod is not None:
            versions[module] = getattr(mod, "__version__", "?")
    return {
        "command": command if command is not None else shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": _machine(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count()}
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        pass
    gpus = []
    try:
        import jax

        gpus = ([f"{d} ({d.device_kind})" for d in jax.devices() if d.platform == "gpu"]
                if "jax" in sys.modules else [])
    except Exception:
        pass
    if not gpus and sys.modules.get("tensorflow") is not None:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    info["gpus"] = gpus
    return info


def json_default(value):
    """``json.dumps(default=...)`` for NumPy scalars, tuples, sets and paths."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _results_folder():
    return importlib.resources.files("focaledu") / "_results"


def recorded_results() -> list[str]:
    """The names of the recorded results this package ships, sorted."""
    folder = _results_folder()
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json")) if folder.is_dir() else []


def load_result(name: str) -> dict:
    """The recorded result ``name`` (e.g. ``"cifar10_cpu"``, written by ``benchmarks/cifar10_cpu.py``).

    Raises:
        FileNotFoundError: no recorded result has that name; the message lists those that exist.
    """
    stem = name[: -len(".json")] if name.endswith(".json") else name
    path = _results_folder() / f"{stem}.json"
    if not path.is_file():
        raise FileNotFoundError(f"name={name!r} is not a recorded result; recorded: {', '.join(recorded_results())}")
    return json.loads(path.read_text())
