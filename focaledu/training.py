"""Training and evaluating FocalNet on CIFAR-10: :func:`fit` runs the recipe and writes a run directory.

Re-exports :mod:`focaledu.recipes`, :mod:`focaledu.pipelines` and :mod:`focaledu.records`, so
``from focaledu import training`` is all a chapter or script needs.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from focaledu import callbacks as fcb
from focaledu.pipelines import data_pipeline, load_data, make_pipelines, preprocess_images, steps_per_epoch
from focaledu.recipes import (
    NO_WEIGHT_DECAY,
    PROFILES,
    Recipe,
    build_model,
    compile_model,
    default_jit_compile,
    make_loss,
    make_optimizer,
    make_schedule,
    recipe,
    schedule_rates,
    schedule_steps,
)
from focaledu.records import json_default, run_info

__all__ = [
    "NO_WEIGHT_DECAY",
    "PROFILES",
    "Recipe",
    "ResumeMismatchError",
    "RunResult",
    "backup_epoch",
    "build_model",
    "compile_model",
    "data_pipeline",
    "default_jit_compile",
    "evaluate",
    "fit",
    "load_data",
    "make_loss",
    "make_optimizer",
    "make_pipelines",
    "make_schedule",
    "plot_history",
    "preprocess_images",
    "recipe",
    "run_info",
    "schedule_rates",
    "schedule_steps",
    "steps_per_epoch",
]


def evaluate(model, dataset, batch_size: int = 250, flip: bool = False) -> dict:
    """Test accuracy and (unsmoothed) cross-entropy of ``model`` on ``dataset``'s test split.

    Args:
        model: a FocalNet; its ``image_size`` and ``include_preprocessing`` decide the preprocessing.
        dataset: an ``ImageDataset``, ``(images, labels)`` of raw pixels, a ``tf.data`` pipeline or an
            :class:`~focaledu.array_pipeline.ArrayPipeline` (integer or one-hot labels).
        batch_size: for an ``ImageDataset`` or arrays (pipelines keep their own).
        flip: also ``flip_accuracy`` / ``flip_loss``, averaging the softmax of each image and its mirror.

    Returns:
        ``{"accuracy", "loss", "n"}`` (+ ``"flip_accuracy", "flip_loss"``).
    """
    from focaledu.array_pipeline import ArrayPipeline, model_scale

    if hasattr(dataset, "x_test"):
        dataset = (dataset.x_test, dataset.y_test)
    if isinstance(dataset, tuple):
        images, labels = dataset
        size = tuple(getattr(model, "image_size", np.shape(images)[1:3]))
        dataset = ArrayPipeline(images, labels, batch_size, image_size=size, scale=model_scale(model))
    one_hot = len(dataset[0][1].shape if isinstance(dataset, ArrayPipeline) else dataset.element_spec[1].shape) == 2
    result = _evaluate(model, dataset, one_hot, flip=False)
    if flip:
        result.update({f"flip_{k}": v for k, v in _evaluate(model, dataset, one_hot, flip=True).items() if k != "n"})
    return result


def _evaluate(model, dataset, one_hot: bool, flip: bool) -> dict:
    """``model.evaluate`` of ``model``'s softmax (averaged with its mirror image's when ``flip``)."""
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow: the model's tf.distribute strategy
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        inputs = keras.Input(model.input_shape[1:])
        probs = keras.layers.Softmax(dtype="float32")(model(inputs))
        if flip:  # test-time augmentation: the mean of the softmax of each image and of its mirror image
            mirrored = keras.layers.Softmax(dtype="float32")(model(keras.ops.flip(inputs, axis=2)))
            probs = keras.layers.Average(dtype="float32")([probs, mirrored])
        wrapper = keras.Model(inputs, probs)
        loss = keras.losses.CategoricalCrossentropy() if one_hot else keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.CategoricalAccuracy("accuracy") if one_hot \
            else keras.metrics.SparseCategoricalAccuracy("accuracy")
        wrapper.compile(loss=loss, metrics=[accuracy, _Count("n")], jit_compile=default_jit_compile())
    scores = wrapper.evaluate(dataset, verbose=0, return_dict=True)
    n = int(round(scores["n"]))
    # The metric is a float32 mean of 0/1 over n images: round it back to the exact fraction.
    return {"accuracy": round(scores["accuracy"] * n) / n, "loss": float(scores["loss"]), "n": n}


class _Count(keras.metrics.Sum):
    """The number of examples evaluated (a ``Sum`` of ones), as a compiled metric."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(keras.ops.ones_like(y_pred[:, 0]))


def plot_history(history: dict, path, title: str | None = None):
    """Loss and accuracy curves (train and validation, by epoch) to ``path`` (PNG)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from focaledu.figures import curves

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        series = {f"{name} {metric}": history[key] for name, key in (("train", metric), ("validation", f"val_{metric}"))
                  if history.get(key)}
        epochs = np.arange(1, max(len(v) for v in series.values()) + 1) if series else None
        curves(series, x=epochs, xlabel="epoch", ylabel=metric, ax=ax,
               styles={f"validation {metric}": {"linestyle": "--"}})
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


@dataclass
class RunResult:
    """What :func:`fit` returns.

    Attributes:
        history: per-epoch metrics of the whole run (resumed runs included), ``{"epoch": [...], "loss": [...], ...}``.
        test_accuracy: final model on the test split, in [0, 1].
        test_loss: its unsmoothed cross-entropy.
        metrics: the content of ``metrics.json``.
        model: the trained model.
        out_dir: the run directory (None if nothing was written).
    """

    history: dict
    test_accuracy: float
    test_loss: float
    metrics: dict
    model: Any = field(repr=False)
    out_dir: Path | None = None


def backup_epoch(out_dir) -> int:
    """Completed epochs recorded by ``BackupAndRestore`` in ``out_dir/backup`` (0 if none)."""
    path = Path(out_dir) / "backup" / "training_metadata.json"
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class ResumeMismatchError(ValueError):
    """The run directory holds an interrupted run whose settings differ from this call's."""


# Recipe fields that change what a run reports, not how it trains: a resumed run may change them.
_REPORTING_ONLY = ("name", "monitor_every", "monitor_images", "test_time_flip", "jit_compile")


def _run_settings(preset, config, recipe_, epochs, seed, dataset) -> dict:
    """What a resumed run must share with the run it continues (as JSON would read it back)."""
    settings = {
        "preset": preset,
        "model": config,
        "epochs": epochs,  # the schedule's length (the recipe's own default is overridden by it)
        "seed": seed,
        "recipe": {k: v for k, v in recipe_.to_dict().items() if k not in (*_REPORTING_ONLY, "epochs")},
        "data": {"source_label": dataset.source_label, "train_images": int(len(dataset.y_train)),
                 "test_images": int(len(dataset.y_test))},
    }
    return json.loads(json.dumps(settings, default=json_default))


def _differences(saved, now, key: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(now, dict):
        return [d for k in sorted(set(saved) | set(now), key=str)
                for d in _differences(saved.get(k), now.get(k), f"{key}.{k}" if key else str(k))]
    return [] if saved == now else [f"{key} {saved!r} -> {now!r}"]


def _check_resume(out: Path, settings: dict, done: int):
    """Refuse to continue an interrupted run with other settings (weights, schedule and data would not match)."""
    path = out / "settings.json"
    if not path.exists():  # written by a version that did not record settings
        return
    changed = _differences(json.loads(path.read_text()), settings)
    if changed:
        raise ResumeMismatchError(
            f"{out} holds an interrupted run ({done} epoch{'s' * (done != 1)} done) with other settings: "
            f"{'; '.join(changed)} (saved -> this call). Run again with the saved settings to resume it, or "
            f"choose another output directory; deleting {out / 'backup'} starts a new run here.")


def _truncate_csv(path: Path, rows: int):
    """Keep the header and the first ``rows`` epochs of a CSVLogger file."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: 1 + rows]))


def fit(
    preset: str = "focalnet_cifar_tiny",
    data=None,
    out_dir=None,
    *,
    profile: str | Recipe = "quick",
    epochs: int | None = None,
    seed: int = 0,
    callbacks=(),
    verbose="auto",
    command: str | None = None,
    model_overrides: dict | None = None,
    model_class=None,
    devices: int | None = None,
    **recipe_overrides,
) -> RunResult:
    """Trains a FocalNet preset with the recipe and writes a run directory.

    Args:
        preset: a ``focaledu.model.PRESETS`` name.
        data: ``"synthetic"``, a CIFAR-10 path, an ``ImageDataset``, or None (see :func:`load_data`).
        out_dir: run directory; None writes nothing (no resume, no figures).
        profile: ``"quick"``, ``"full"`` or a :class:`Recipe`.
        epochs: overrides the recipe's epochs.
        seed: seeds weights, shuffling, augmentation and the synthetic data.
        callbacks: extra Keras callbacks, run after the built-in ones.
        verbose: passed to ``model.fit``.
        command: recorded in ``metrics.json`` (default: this call).
        model_overrides: constructor overrides of the preset.
        model_class: ``FocalNet`` or a subclass to build (None: ``FocalNet``).
        devices: train data-parallel on this many devices; ``batch_size`` stays the global batch.
        **recipe_overrides: :class:`Recipe` fields (None values ignored).

    ``out_dir`` gets ``history.csv``, ``history.json``, ``curves.png``, ``monitor/``, ``best.keras``,
    ``model.keras``, ``metrics.json``, ``settings.json`` and, while running, ``backup/``, from which a rerun
    resumes after the last completed epoch.

    Returns:
        A :class:`RunResult`.

    Raises:
        ResumeMismatchError: ``out_dir`` holds an interrupted run with other settings.
    """
    from focaledu.distribute import data_parallel
    from focaledu.model import preset_config

    recipe_ = recipe(profile, **recipe_overrides)
    epochs = recipe_.epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer; received {epochs!r}.")
    recipe_ = recipe_.replace(epochs=epochs)  # so the recorded recipe names the run's length
    model_overrides = dict(model_overrides or {})
    config = preset_config(preset, **model_overrides)  # validates the preset name early
    if command is None:
        command = f"focaledu.training.fit(preset={preset!r}, data={str(data)!r}, epochs={epochs}, seed={seed})"

    dataset = load_data(data, recipe_, seed=seed)
    with data_parallel(devices, recipe_.batch_size) as device_names:
        return _fit(preset, dataset, out_dir, recipe_, epochs, seed, callbacks, verbose, command, model_overrides,
                    model_class, config, device_names)


def _fit(preset, dataset, out_dir, recipe_, epochs, seed, callbacks, verbose, command, model_overrides, model_class,
         config, device_names) -> RunResult:
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(preset, recipe_, model_class=model_class, **model_overrides)
    pipelines = make_pipelines(dataset, recipe_, model.num_classes or dataset.num_classes, model.image_size, seed)
    steps = steps_per_epoch(len(dataset.y_train), recipe_.validation_split, recipe_.batch_size)
    compile_model(model, recipe_, steps, epochs)
    warmup_steps, decay_steps = schedule_steps(recipe_, steps, epochs)

    cbs = [fcb.EpochLogger()]
    resumed_from = 0
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        resumed_from = backup_epoch(out)
        settings = _run_settings(preset, config, recipe_, epochs, seed, dataset)
        if resumed_from == 0:  # a fresh run: drop what an earlier run left here
            for stale in ("history.csv", "history.json", "metrics.json"):
                (out / stale).unlink(missing_ok=True)
            for stale in (out / "monitor").glob("modulation_epoch_*.png"):
                stale.unlink()
            (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
        else:
            _check_resume(out, settings, resumed_from)
            _truncate_csv(out / "history.csv", resumed_from)
            if hasattr(pipelines.train, "start_at"):  # NumPy batches: continue the epoch sequence
                pipelines.train.start_at(resumed_from)
        has_val = pipelines.validation is not None
        monitor = "val_accuracy" if has_val else "accuracy"
        previous = fcb.read_history(out / "history.json", resumed_from).get(monitor, [])
        cbs += [
            keras.callbacks.BackupAndRestore(str(out / "backup")),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=resumed_from > 0),
            fcb.HistoryJSON(out / "history.json"),
            keras.callbacks.ModelCheckpoint(
                str(out / "best.keras"), monitor=monitor, mode="max", save_best_only=True,
                initial_value_threshold=max(previous) if previous else None,
            ),
        ]
        if recipe_.monitor_every:
            n = min(recipe_.monitor_images, len(dataset.x_test))
            picks = _monitor_picks(dataset.y_test, n)
            cbs.append(fcb.ModulationMonitor(
                dataset.x_test[picks], every=recipe_.monitor_every, out_dir=out / "monitor",
                labels=[dataset.class_names[i] for i in dataset.y_test[picks]],
                source_label=dataset.source_label,
            ))
    cbs += list(callbacks)

    start = time.perf_counter()
    keras_history = model.fit(
        pipelines.train, validation_data=pipelines.validation, epochs=epochs, callbacks=cbs, verbose=verbose,
        shuffle=False,  # the pipelines shuffle (seeded); Keras would only warn
    )
    train_seconds = time.perf_counter() - start
    history = (fcb.read_history(out / "history.json") if out_dir is not None
               else {"epoch": list(keras_history.epoch), **keras_history.history})
    test = evaluate(model, pipelines.test, flip=recipe_.test_time_flip)

    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_accuracy_flip": test.get("flip_accuracy"),
        "test_images": test["n"],
        "best_val_accuracy": max(history["val_accuracy"]) if history.get("val_accuracy") else None,
        "final_train_loss": history["loss"][-1] if history.get("loss") else None,
        "epochs": epochs,
        "resumed_from_epoch": resumed_from,
        "train_seconds": train_seconds,
        "train_seconds_all_epochs": float(sum(v for v in history.get("epoch_seconds", []) if v is not None)),
        "preset": preset,
        "model_config": config,
        "parameters": int(model.count_params()),
        "seed": seed,
        "recipe": recipe_.to_dict(),
        "steps_per_epoch": steps,
        "warmup_steps": warmup_steps,
        "decay_steps": decay_steps,
        "jit_compile": model.jit_compile if hasattr(model, "jit_compile") else None,
        "data_pipeline": data_pipeline(recipe_),
        "devices": list(device_names),
        "data": {
            "source_label": dataset.source_label,
            "source": dataset.source,
            "train_images": int(len(dataset.y_train)),
            "test_images": int(len(dataset.y_test)),
            "validation_split": recipe_.validation_split,
        },
        **run_info(command),
    }
    if out_dir is not None:
        model.save(out / "model.keras")
        plot_history(history, out / "curves.png",
                     title=f"{preset} on {dataset.source_label}: test accuracy {test['accuracy']:.1%}")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=json_default) + "\n")
    return RunResult(history, test["accuracy"], test["loss"], metrics, model,
                     Path(out_dir) if out_dir is not None else None)


def _monitor_picks(labels: np.ndarray, n: int) -> np.ndarray:
    """The first test image of each of the first ``n`` classes (fixed across runs)."""
    picks = []
    for label in np.unique(labels):
        picks.append(int(np.flatnonzero(labels == label)[0]))
        if len(picks) == n:
            break
    return np.asarray(picks[:n] or list(range(n)), dtype=np.int64)
