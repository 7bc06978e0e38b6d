"""Trained FocalNets shipped with the package: list them, read their manifests, load them.

A shipped model is ``weights/<name>.npz`` (one array per Keras variable path) and ``weights/<name>.json``
(its manifest: sha256, config, preprocessing, accuracies, recipe, reproduce commands).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from focaledu.image_dataset import first_per_class

__all__ = [
    "FORMAT",
    "SUBSET_PER_CLASS",
    "WEIGHTS_DIR",
    "ChecksumError",
    "file_sha256",
    "fixed_subset",
    "list_pretrained",
    "load",
    "pretrained_info",
    "subset_fingerprint",
]

#: Where the shipped ``<name>.npz`` / ``<name>.json`` live (package data).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Test images per class in :func:`fixed_subset` (10 classes: 1,000 images).
SUBSET_PER_CLASS = 100
FORMAT = "focaledu-pretrained-v1"


class ChecksumError(ValueError):
    """A shipped weights file does not have the sha256 its manifest records."""


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def list_pretrained(directory=None) -> list[str]:
    """Names of the shipped models: one per ``<name>.json`` manifest, sorted."""
    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def pretrained_info(name: str, directory=None) -> dict:
    """The manifest of ``name``: sha256, config, accuracies, recipe, date, reproduce commands."""
    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    names = list_pretrained(folder)
    if name not in names:
        raise ValueError(
            f"Unknown pretrained model {name!r}. Accepted values: {', '.join(names) or '(none shipped)'} "
            f"(manifests in {folder})."
        )
    path = folder / f"{name}.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"The manifest {path} is not readable JSON ({err}); reinstall focaledu.") from err
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a focaledu pretrained manifest (expected format {FORMAT!r}).")
    return info


def load(model_class, name: str, directory=None):
    """``model_class`` (``FocalNet`` or a subclass) with the shipped weights of ``name``, sha256 checked first.

    Args:
        model_class: the class whose ``from_config`` rebuilds the manifest's config.
        name: a name from :func:`list_pretrained`.
        directory: where the manifests and weights are (default: the package's ``weights/``).

    Raises:
        ValueError: unknown name or unreadable manifest.
        FileNotFoundError: the manifest's weights file is missing.
        ChecksumError: (a ``ValueError``) the weights file is corrupt or not the one exported.
    """
    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    info = pretrained_info(name, folder)
    path = folder / info["weights_file"]
    if not path.is_file():
        raise FileNotFoundError(f"The weights of {name!r} ({path}) are missing; reinstall focaledu.")
    actual = file_sha256(path)
    if actual != info["sha256"]:
        raise ChecksumError(
            f"The weights file {path} is corrupt or not the exported one: sha256 {actual}, but its manifest "
            f"{folder / (name + '.json')} expects {info['sha256']}. Reinstall focaledu (pip install "
            f"--force-reinstall focaledu, or git checkout the file), or re-export it with: {_export_hint(info)}"
        )
    arrays = _read_npz(path)
    model = model_class.from_config(info["config"])
    _assign(model, arrays, path)
    return model


def _export_hint(info) -> str:
    commands = info.get("reproduce") or []
    return commands[-1] if commands else "benchmarks/export_pretrained.py RUN_DIR --name NAME"


def file_sha256(path) -> str:
    """The sha256 of a file, as its manifest records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_npz(path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except Exception as err:  # zipfile / format errors: a bad file either way
        raise ValueError(f"{path} is not a readable weights .npz ({err!r}); reinstall focaledu.") from err


def _assign(model, arrays: dict, where) -> None:
    """Checks every variable has an array of its shape, then assigns them all (cast to the variable's dtype)."""
    variables = {v.path: v for v in model.weights}
    missing = sorted(set(variables) - set(arrays))
    unexpected = sorted(set(arrays) - set(variables))
    wrong = [f"{k}: {arrays[k].shape} vs {tuple(v.shape)}" for k, v in variables.items()
             if k in arrays and tuple(arrays[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{where} does not match the model built from its manifest: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}."
        )
    for key, variable in variables.items():
        variable.assign(arrays[key].astype(variable.dtype))


# --------------------------------------------------------------------------
# Evaluation on the fixed subset
# --------------------------------------------------------------------------


def fixed_subset(dataset, per_class: int = SUBSET_PER_CLASS):
    """``(images, labels)``: the first ``per_class`` test images of each class of ``dataset``, order kept."""
    labels = np.asarray(dataset.y_test)
    keep = first_per_class(labels, per_class)
    return dataset.x_test[keep], labels[keep]


def subset_fingerprint(images, labels) -> str:
    """sha256 of the ``uint8`` pixels and ``int64`` labels: says whether two subsets are the same images."""
    digest = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()
