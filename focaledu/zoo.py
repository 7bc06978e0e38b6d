"""Trained FocalNets shipped with the package: ``pretrained(name)``, and ``export`` to add one.

A shipped model is two files in ``focaledu/weights/`` (plus a generated model
card, ``<name>.md``):

* ``<name>.npz``: the weights, one array per Keras variable keyed by its path
  (``stem/proj/kernel``, ...), in the manifest's ``storage_dtype`` (float16:
  half the bytes of float32; :func:`export` measures what it costs in
  accuracy). A deflated zip with fixed timestamps, so the same weights always
  give the same bytes and the same sha256;
* ``<name>.json``: the manifest: the npz's sha256, the ``FocalNet`` config,
  class names, preprocessing, the documented accuracies, the training recipe,
  date and the commands that reproduce it.

:func:`pretrained` checks the sha256 before it reads a single array, rebuilds
``FocalNet(**config)``, loads the arrays as float32 and returns the model. It
reads only these files: no network, no TensorFlow-specific code (works on
every Keras backend).

The documented accuracies are on the full CIFAR-10 test set and on a fixed
1,000-image subset, :func:`fixed_subset`: the first 100 test images of each
class in the order :func:`focaledu.data.load_cifar10` returns them (for the
JPEG zip: file names sorted within each class), which is also what
``load_cifar10(path, limit_per_class=(1, 100))`` loads. Another copy of
CIFAR-10 may order its files differently (the JPEG-bytes ``.npz`` does), so the
manifest records the source file's name and a fingerprint of the subset.

(The module is ``zoo``, not ``pretrained``, so that ``focaledu.pretrained``
can be the function without hiding a module of the same name.)
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from focaledu.image_dataset import first_per_class

__all__ = [
    "MAX_ACCURACY_DROP",
    "MAX_BYTES",
    "SUBSET_PER_CLASS",
    "WEIGHTS_DIR",
    "ChecksumError",
    "accuracy",
    "export",
    "fixed_subset",
    "list_pretrained",
    "pretrained",
    "pretrained_info",
    "subset_fingerprint",
]

#: Where the shipped ``<name>.npz`` / ``<name>.json`` live (package data).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Test images per class in :func:`fixed_subset` (10 classes: 1,000 images).
SUBSET_PER_CLASS = 100
#: :func:`export` refuses a weights file larger than this (10 MB).
MAX_BYTES = 10_000_000
#: :func:`export` refuses when the stored weights lose more test accuracy than this (0.2 points).
MAX_ACCURACY_DROP = 0.002
FORMAT = "focaledu-pretrained-v1"
PREPROCESSING = (
    "float32 RGB images (B, 32, 32, 3) scaled to [0, 1] (x / 255), then standardised per channel "
    "with CIFAR10_MEAN / CIFAR10_STD: focaledu.training.preprocess_images(uint8_images)"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: identical weights, identical bytes


class ChecksumError(ValueError):
    """A shipped weights file does not have the sha256 its manifest records."""


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def list_pretrained(directory=None) -> list[str]:
    """Names accepted by :func:`pretrained`: one per ``<name>.json`` manifest, sorted."""
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


def pretrained(name: str, *, directory=None):
    """A ready-to-use ``FocalNet`` with the shipped weights of ``name`` (see :func:`list_pretrained`).

    The same as ``FocalNet.from_preset(name)``, the entry point for presets
    with and without weights.

    The weights file's sha256 is checked first; a mismatch raises
    :class:`ChecksumError` and no model is built. The model expects inputs
    prepared as ``pretrained_info(name)["preprocessing"]`` says
    (``focaledu.training.preprocess_images``) and returns logits over
    ``pretrained_info(name)["class_names"]``.

    Args:
        name: a name from :func:`list_pretrained`.
        directory: where the manifests and weights are (default: the package's ``weights/``).

    Raises:
        ValueError: unknown name or unreadable manifest.
        FileNotFoundError: the manifest's weights file is missing.
        ChecksumError: (a ``ValueError``) the weights file is corrupt or not the one exported.
    """
    from focaledu.model import FocalNet

    return load(FocalNet, name, directory)


def load(model_class, name: str, directory=None):
    """:func:`pretrained` building ``model_class`` (``FocalNet`` or a subclass): ``FocalNet.from_preset``'s loader."""
    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    info = pretrained_info(name, folder)
    path = folder / info["weights_file"]
    if not path.is_file():
        raise FileNotFoundError(f"The weights of {name!r} ({path}) are missing; reinstall focaledu.")
    actual = _sha256(path)
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


def _sha256(path) -> str:
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
    """``(images, labels)``: the first ``per_class`` test images of each class of ``dataset``, order kept.

    The same images as ``load_cifar10(path, limit_per_class=(1, per_class)).x_test``.
    """
    labels = np.asarray(dataset.y_test)
    keep = first_per_class(labels, per_class)
    return dataset.x_test[keep], labels[keep]


def subset_fingerprint(images, labels) -> str:
    """sha256 of the ``uint8`` pixels and ``int64`` labels: says whether two subsets are the same images."""
    digest = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def accuracy(model, images, labels, batch_size: int = 250) -> float:
    """Top-1 accuracy of ``model`` on raw ``uint8`` images (preprocessed as the manifest says)."""
    from focaledu.training import preprocess_images

    inputs = preprocess_images(images, getattr(model, "image_size", None))
    logits = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def _write_npz(path, arrays: dict) -> None:
    """``np.savez_compressed`` with fixed timestamps, so the bytes depend on the arrays only."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def export(
    model,
    name: str,
    *,
    dataset,
    directory=None,
    facts: dict | None = None,
    reproduce: list[str] | tuple[str, ...] = (),
    storage_dtype: str = "float16",
    max_bytes: int = MAX_BYTES,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    subset_per_class: int = SUBSET_PER_CLASS,
) -> dict:
    """Writes ``<name>.npz``, ``<name>.json`` and ``<name>.md`` for a trained FocalNet; returns the manifest.

    The stored file is loaded back through :func:`pretrained`, and both
    models are evaluated on ``dataset``'s whole test split and on
    :func:`fixed_subset`. Nothing is written (and ``ValueError`` says why)
    when the weights file would exceed ``max_bytes``, a weight overflows
    ``storage_dtype``, or the stored model loses more than
    ``max_accuracy_drop`` test accuracy.

    Args:
        model: a ``FocalNet``, or the path of a saved one (``model.keras``).
        name: the name :func:`pretrained` will take (letters, digits, ``_``, ``-``).
        dataset: an ``ImageDataset`` whose test split measures the accuracies
            (synthetic data is refused for the package's own ``weights/``).
        directory: output folder (default: the package's ``weights/``).
        facts: extra manifest entries, e.g. the run's recipe, date and training time.
        reproduce: the commands that retrain and re-export the model.
        storage_dtype: ``"float16"`` or ``"float32"``.
    """
    import keras

    from focaledu.model import FocalNet

    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"`name` must be letters, digits, '_' or '-'; received {name!r}.")
    if storage_dtype not in ("float16", "float32"):
        raise ValueError(f"`storage_dtype` must be 'float16' or 'float32'; received {storage_dtype!r}.")
    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    if dataset.is_synthetic and folder.resolve() == WEIGHTS_DIR:
        raise ValueError("Refusing to ship weights measured on synthetic data into the package's weights/.")
    if isinstance(model, (str, os.PathLike)):
        model = keras.saving.load_model(model)
    if not isinstance(model, FocalNet):
        raise ValueError(f"`model` must be a focaledu FocalNet; received {type(model).__name__}.")

    arrays = {}
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        with np.errstate(over="ignore"):  # overflow is checked just below
            stored = value.astype(storage_dtype) if np.issubdtype(value.dtype, np.floating) else value
        if not np.all(np.isfinite(stored[np.isfinite(value)])):
            raise ValueError(f"Refusing to export: {variable.path} overflows {storage_dtype}.")
        arrays[variable.path] = stored

    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{name}.staging"
    staging.mkdir(exist_ok=True)
    try:
        weights = staging / f"{name}.npz"
        _write_npz(weights, arrays)
        size = weights.stat().st_size
        if size > max_bytes:
            raise ValueError(f"Refusing to export: {weights.name} is {size:,} bytes, over the limit of {max_bytes:,}.")
        config = model.get_config()
        manifest = {"format": FORMAT, "name": name, "weights_file": weights.name, "sha256": _sha256(weights),
                    "bytes": size, "storage_dtype": storage_dtype, "architecture": "FocalNet", "config": config}
        (staging / f"{name}.json").write_text(json.dumps(manifest))
        stored_model = pretrained(name, directory=staging)  # the round trip through the real file

        x_sub, y_sub = fixed_subset(dataset, subset_per_class)
        scores = {
            "test": {"float32": accuracy(model, dataset.x_test, dataset.y_test),
                     "stored": accuracy(stored_model, dataset.x_test, dataset.y_test), "n": int(len(dataset.y_test))},
            "subset": {"float32": accuracy(model, x_sub, y_sub), "stored": accuracy(stored_model, x_sub, y_sub),
                       "n": int(len(y_sub)), "per_class": subset_per_class,
                       "definition": f"first {subset_per_class} test images of each class in load_cifar10 order "
                                     f"(load_cifar10(path, limit_per_class=(1, {subset_per_class})))",
                       "sha256": subset_fingerprint(x_sub, y_sub)},
        }
        drop = scores["test"]["float32"] - scores["test"]["stored"]
        if drop > max_accuracy_drop:
            raise ValueError(
                f"Refusing to export: {storage_dtype} storage lowers test accuracy from "
                f"{scores['test']['float32']:.4f} to {scores['test']['stored']:.4f} (more than {max_accuracy_drop})."
            )
        manifest.update({
            "parameters": int(model.count_params()),
            "class_names": list(dataset.class_names),
            "data": dataset.source_label,
            "data_source": Path(dataset.source).name,
            "preprocessing": PREPROCESSING,
            "mean": list(_cifar_stats()[0]),
            "std": list(_cifar_stats()[1]),
            "accuracy": scores,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "reproduce": list(reproduce),
            **(facts or {}),
        })
        (staging / f"{name}.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        (staging / f"{name}.md").write_text(model_card(manifest))
        for suffix in (".npz", ".md", ".json"):  # the manifest last: it is what makes the name visible
            os.replace(staging / f"{name}{suffix}", folder / f"{name}{suffix}")
    finally:
        for leftover in staging.glob("*"):
            leftover.unlink()
        staging.rmdir()
    return manifest


def _cifar_stats():
    from focaledu.data import CIFAR10_MEAN, CIFAR10_STD

    return CIFAR10_MEAN, CIFAR10_STD


def model_card(info: dict) -> str:
    """A Markdown summary of a manifest (written next to it as ``<name>.md``)."""
    acc = info["accuracy"]
    recipe = info.get("recipe") or {}
    # The epochs trained, not the profile's default (a run may override them).
    recipe_line = ", ".join([f"epochs={info.get('epochs', recipe.get('epochs'))}"] + [f"{k}={recipe[k]}" for k in (
        "batch_size", "learning_rate", "warmup_epochs", "weight_decay", "label_smoothing", "augment")
        if k in recipe])
    seconds = info.get("train_seconds_all_epochs") or info.get("train_seconds")
    trained_on = (info.get("training_data") or {}).get("source_label", "?")
    lines = [
        f"# {info['name']}",
        "",
        f"FocalNet, {info['parameters']:,} parameters, trained on {trained_on}, measured on {info['data']} "
        f"({info['data_source']}); weights stored as {info['storage_dtype']} ({info['bytes']:,} bytes, "
        f"sha256 `{info['sha256']}`).",
        "",
        "| | float32 | as stored | images |",
        "|---|---|---|---|",
        f"| test set | {acc['test']['float32']:.2%} | {acc['test']['stored']:.2%} | {acc['test']['n']:,} |",
        f"| fixed subset | {acc['subset']['float32']:.2%} | {acc['subset']['stored']:.2%} | {acc['subset']['n']:,} |",
        "",
        f"- load: `focaledu.pretrained({info['name']!r})`; inputs: {info['preprocessing']}",
        f"- subset: {acc['subset']['definition']}",
        f"- config: `{json.dumps(info['config'])}`",
        f"- recipe: {recipe.get('name', '?')} ({recipe_line})" if recipe else "- recipe: (not recorded)",
        f"- trained: {info.get('date', '?')}"
        + (f", {seconds / 60:.1f} minutes on {(info.get('machine') or {}).get('cpu', '?')}" if seconds else ""),
        f"- exported: {info['exported']}",
        "- reproduce:",
        "",
        "```sh",
        *(info.get("reproduce") or ["(not recorded)"]),
        "```",
        "",
    ]
    return "\n".join(lines)
