"""Ship a trained run with the package: RUN_DIR/model.keras -> focaledu/weights/NAME.{npz,json,md}.

    .venv/bin/python benchmarks/export_pretrained.py /work/runs/cifar10_cpu --name focalnet_cifar_tiny_cifar10

Loads the run's model, stores its weights as float16 (:func:`export`),
measures float32 and stored accuracy on the full CIFAR-10 test set and the
fixed 1,000-image subset, and refuses (writing nothing) when the stored
weights lose more than 0.2 points or the file exceeds 10 MB. The manifest
records the run's metrics.json facts: recipe, epochs, training time, date and
the command that trained it, followed by this export command.
"""

import argparse
import datetime
import io
import json
import os
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import _common  # noqa: E402
import numpy as np  # noqa: E402

from focaledu import zoo  # noqa: E402
from focaledu.data import CIFAR10_MEAN, CIFAR10_STD  # noqa: E402
from focaledu.model import FocalNet  # noqa: E402

#: :func:`export` refuses a weights file larger than this (10 MB).
MAX_BYTES = 10_000_000
#: :func:`export` refuses when the stored weights lose more test accuracy than this (0.2 points).
MAX_ACCURACY_DROP = 0.002
PREPROCESSING = (
    "RGB images (B, 32, 32, 3) as they come, uint8 or float pixels in 0-255: the model scales them (x / 255) "
    "and standardises them per channel with CIFAR10_MEAN / CIFAR10_STD itself (include_preprocessing=True)"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: identical weights, identical bytes

#: metrics.json entries copied into the manifest (``test_accuracy`` as ``run_test_accuracy``).
RUN_FACTS = ("preset", "model_config", "parameters", "epochs", "seed", "recipe", "train_seconds",
             "train_seconds_all_epochs", "best_val_accuracy", "steps_per_epoch", "jit_compile", "machine",
             "versions", "date")


def accuracy(model, images, labels) -> float:
    """Top-1 accuracy of ``model`` on raw ``uint8`` images (``focaledu.training.evaluate``)."""
    from focaledu.training import evaluate

    return evaluate(model, (images, labels))["accuracy"]


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
    subset_per_class: int = 100,
) -> dict:
    """Writes ``<name>.npz``, ``<name>.json`` and ``<name>.md`` for a trained FocalNet; returns the manifest.

    The stored file is loaded back through ``focaledu.zoo.load``, and both
    models are evaluated on ``dataset``'s whole test split and on
    ``focaledu.zoo.fixed_subset``. Nothing is written (and ``ValueError`` says why)
    when the weights file would exceed ``max_bytes``, a weight overflows
    ``storage_dtype``, or the stored model loses more than
    ``max_accuracy_drop`` test accuracy.

    Args:
        model: a ``FocalNet``, or the path of a saved one (``model.keras``).
        name: the name ``FocalNet.from_preset`` will take (letters, digits, ``_``, ``-``).
        dataset: an ``ImageDataset`` whose test split measures the accuracies
            (synthetic data is refused for the package's own ``weights/``).
        directory: output folder (default: the package's ``weights/``).
        facts: extra manifest entries, e.g. the run's recipe, date and training time.
        reproduce: the commands that retrain and re-export the model.
        storage_dtype: ``"float16"`` or ``"float32"``.
    """
    import keras

    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"`name` must be letters, digits, '_' or '-'; received {name!r}.")
    if storage_dtype not in ("float16", "float32"):
        raise ValueError(f"`storage_dtype` must be 'float16' or 'float32'; received {storage_dtype!r}.")
    folder = Path(directory) if directory is not None else zoo.WEIGHTS_DIR
    if dataset.is_synthetic and folder.resolve() == zoo.WEIGHTS_DIR:
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
        # Trained on standardised batches; shipped to take pixels as they come (keras.applications' convention).
        config = {**model.get_config(), "include_preprocessing": True, "mean": list(CIFAR10_MEAN),
                  "std": list(CIFAR10_STD)}
        manifest = {"format": zoo.FORMAT, "name": name, "weights_file": weights.name, "sha256": zoo.file_sha256(weights),
                    "bytes": size, "storage_dtype": storage_dtype, "architecture": "FocalNet", "config": config}
        (staging / f"{name}.json").write_text(json.dumps(manifest))
        stored_model = zoo.load(FocalNet, name, directory=staging)  # the round trip through the real file

        x_sub, y_sub = zoo.fixed_subset(dataset, subset_per_class)
        scores = {
            "test": {"float32": accuracy(model, dataset.x_test, dataset.y_test),
                     "stored": accuracy(stored_model, dataset.x_test, dataset.y_test), "n": int(len(dataset.y_test))},
            "subset": {"float32": accuracy(model, x_sub, y_sub), "stored": accuracy(stored_model, x_sub, y_sub),
                       "n": int(len(y_sub)), "per_class": subset_per_class,
                       "definition": f"first {subset_per_class} test images of each class in load_cifar10 order "
                                     f"(load_cifar10(path, limit_per_class=(1, {subset_per_class})))",
                       "sha256": zoo.subset_fingerprint(x_sub, y_sub)},
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
        f"- load: `focaledu.FocalNet.from_preset({info['name']!r})`; inputs: {info['preprocessing']}",
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a focaledu.training.fit run directory (model.keras, metrics.json)")
    p.add_argument("--name", required=True, help="the name FocalNet.from_preset() will take")
    p.add_argument("--model", default="model.keras", help="model file inside RUN_DIR (default model.keras)")
    p.add_argument("--data", default=None, help="CIFAR-10 copy to measure on (default: $FOCALEDU_CIFAR10, "
                                                "else ../shared/data/cifar10-jpeg.zip)")
    p.add_argument("--weights-dir", type=Path, default=None, help="output folder (default focaledu/weights)")
    p.add_argument("--storage-dtype", default="float16", choices=("float16", "float32"))
    args = p.parse_args(argv)

    from focaledu.data import load_cifar10

    metrics_path = args.run_dir / "metrics.json"
    if not metrics_path.is_file():
        sys.exit(f"{metrics_path} is missing: is {args.run_dir} a finished focaledu.training.fit run?")
    run = json.loads(metrics_path.read_text())
    data = args.data or _common.default_data()
    if data is None:
        sys.exit("No CIFAR-10 copy: pass --data or set FOCALEDU_CIFAR10.")
    dataset = load_cifar10(data, limit_per_class=(1, None), download=False)  # the test split is what counts

    facts = {key: run[key] for key in RUN_FACTS if key in run}
    facts["run_test_accuracy"] = run.get("test_accuracy")
    facts["run_test_accuracy_flip"] = run.get("test_accuracy_flip")  # mean of image and mirror image
    facts["training_data"] = run.get("data")
    train_command = run.get("command") or "(not recorded)"
    manifest = export(
        args.run_dir / args.model, args.name, dataset=dataset, directory=args.weights_dir, facts=facts,
        reproduce=[train_command, _common.command_line()], storage_dtype=args.storage_dtype,
    )

    acc = manifest["accuracy"]
    out = args.weights_dir or zoo.WEIGHTS_DIR
    print(f"wrote {out / manifest['weights_file']} ({manifest['bytes']:,} bytes, sha256 {manifest['sha256']})")
    print(f"test accuracy: float32 {acc['test']['float32']:.4f}, {args.storage_dtype} {acc['test']['stored']:.4f} "
          f"({acc['test']['n']} images; the run's metrics.json says {run.get('test_accuracy')})")
    print(f"fixed subset:  float32 {acc['subset']['float32']:.4f}, {args.storage_dtype} {acc['subset']['stored']:.4f} "
          f"({acc['subset']['n']} images)")
    same_data = (run.get("data") or {}).get("test_images") == acc["test"]["n"]
    if same_data and run.get("test_accuracy") is not None and abs(run["test_accuracy"] - acc["test"]["float32"]) > 0.002:
        print("WARNING: the float32 accuracy differs from the run's own measurement by more than 0.2 points; "
              "check the preprocessing and the data copy before shipping.", file=sys.stderr)
    print(f"model card: {out / (args.name + '.md')}")
    return manifest


if __name__ == "__main__":
    main()
