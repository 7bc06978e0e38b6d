"""Shared plumbing of the benchmark scripts (not part of the focaledu package).

Every training benchmark calls :func:`run_training_benchmark`, which runs
``focaledu.training.fit`` and writes ``<out>/<name>.json`` (``test_accuracy``,
``train_seconds``, ``epochs``, ``preset``, ``command``, ``machine``,
``versions``, ``date``, the recipe and the history) and ``<out>/<name>.png``
(the loss/accuracy curves). ``--smoke`` swaps in the synthetic data, a tiny
model and one short epoch, and writes to a temporary directory, so the
script's plumbing can be tested in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: Where CI keeps the CIFAR-10 JPEG mirror (next to the repository).
SHARED_CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"


def default_data() -> str | None:
    """$FOCALEDU_CIFAR10, else ../shared/data/cifar10-jpeg.zip if present, else None (load_cifar10's resolution)."""
    if os.environ.get("FOCALEDU_CIFAR10", "").strip():
        return os.environ["FOCALEDU_CIFAR10"]
    return str(SHARED_CIFAR10) if SHARED_CIFAR10.exists() else None


def parser(description: str, *, epochs: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=None, help="CIFAR-10 path or 'synthetic' (default: $FOCALEDU_CIFAR10, "
                                                "../shared/data/cifar10-jpeg.zip, Keras cache/download)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="where <name>.json/.png go (default benchmarks/results)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="run directory for checkpoints, figures, backup (default: a temporary directory); "
                        "re-running with the same --run-dir resumes an interrupted run")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock training budget: time a few training steps first, then train as many "
                        "epochs as fit (the schedule is sized for them; a run past the budget stops)")
    p.add_argument("--stop-after", type=float, default=None, metavar="SECONDS",
                   help="stop training at the first epoch end past this many seconds (the schedule's tail is "
                        "then cut: a guard for a machine slower than planned)")
    p.add_argument("--smoke", action="store_true",
                   help="seconds-long plumbing check: synthetic data, tiny model, 1 epoch, temp dir")
    return p


def command_line() -> str:
    return shlex.join(["python", os.path.relpath(sys.argv[0], ROOT) if sys.argv[0] else "?", *sys.argv[1:]])


def run_training_benchmark(name: str, preset: str, recipe, args, *, model_overrides=None, notes=None,
                           warmup_fraction=None, checkpoints=True, snapshots=False, callbacks=(),
                           record_extra=None) -> dict:
    """Trains ``preset`` with ``recipe`` as the parsed ``args`` say and writes the results.

    ``warmup_fraction``: warm up for this fraction of the epochs actually run
    (set when ``--minutes`` decides them), instead of the recipe's ``warmup_epochs``.
    ``checkpoints=False``: without ``--run-dir``, write no run directory at all
    (no per-epoch backup, best checkpoint or monitor figures), for runs whose
    epochs last seconds. ``args.stop_after``: also stop training at the
    first epoch end past this many seconds (``epochs_run`` then falls short
    of ``epochs``). ``snapshots``: save the weights after every epoch in
    ``<run_dir>/snapshots`` (Keras ``ModelCheckpoint``). ``callbacks``: more
    Keras callbacks for ``fit``. ``record_extra``: entries added to the
    results (read after training, so a callback may fill them in).
    """
    from focaledu import training

    model_overrides = dict(model_overrides or {})
    data = args.data if args.data is not None else default_data()
    epochs = args.epochs
    if args.smoke:
        from focaledu.model import preset_config

        stages = len(preset_config(preset)["depths"])
        data, epochs = "synthetic", 1
        recipe = recipe.replace(train_per_class=20, test_per_class=10, batch_size=32, monitor_every=1)
        model_overrides.update(embed_dim=8, depths=[1] * stages)
    budget = None
    if getattr(args, "minutes", None):
        budget = epochs_for_budget(preset, recipe, args.minutes * 60, model_overrides)
        epochs = budget["epochs"]
    if warmup_fraction is not None:
        recipe = recipe.replace(warmup_epochs=warmup_fraction * epochs)
    out = args.out or (Path(tempfile.mkdtemp(prefix=f"focaledu-{name}-")) if args.smoke else RESULTS)
    run_dir = args.run_dir
    if run_dir is None and checkpoints:
        run_dir = Path(tempfile.mkdtemp(prefix=f"focaledu-{name}-run-"))
    callbacks = [*callbacks, *(stop_after(limit) for limit in (budget and budget["seconds"], args.stop_after) if limit)]
    if snapshots:
        if run_dir is None:
            raise ValueError("snapshots need a run directory (`checkpoints=True` or --run-dir)")
        import keras

        snapshot = Path(run_dir) / "snapshots" / "epoch_{epoch:03d}.weights.h5"
        callbacks.append(keras.callbacks.ModelCheckpoint(str(snapshot), save_weights_only=True))
    result = training.fit(
        preset, data, run_dir, profile=recipe, epochs=epochs, seed=args.seed, verbose=2,
        command=command_line(), model_overrides=model_overrides, callbacks=callbacks,
    )
    m = result.metrics
    record = {
        "benchmark": name,
        "test_accuracy": m["test_accuracy"],
        "test_accuracy_flip": m.get("test_accuracy_flip"),
        "train_seconds": m["train_seconds"],
        "epochs": m["epochs"],
        "epochs_run": len(result.history.get("loss", [])),
        "preset": preset,
        "model_overrides": model_overrides,
        "parameters": m["parameters"],
        "data": m["data"],
        "best_val_accuracy": m["best_val_accuracy"],
        "backend": m["versions"]["backend"],
        "jit_compile": m["jit_compile"],
        "recipe": m["recipe"],
        "steps_per_epoch": m["steps_per_epoch"],
        "warmup_steps": m["warmup_steps"],
        "decay_steps": m["decay_steps"],
        "smoke": bool(args.smoke),
        "notes": notes or "",
        "budget": budget,
        "stop_after_seconds": args.stop_after,
        "command": m["command"],
        "machine": m["machine"],
        "versions": m["versions"],
        "date": m["date"],
        **epoch_summary(result.history, m["steps_per_epoch"] * recipe.batch_size),
        **(record_extra or {}),
        "history": result.history,
        "run_dir": str(run_dir) if run_dir else None,
    }
    if snapshots:
        record["test_curve"] = snapshot_test_curve(run_dir, data, recipe, args.seed, result.history)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    if snapshots:
        plot_time_curve(record, out / f"{name}.png")
    elif run_dir:
        shutil.copyfile(run_dir / "curves.png", out / f"{name}.png")
    else:
        training.plot_history(result.history, out / f"{name}.png", title=f"{preset} on {m['data']['source_label']}: "
                                                                          f"test accuracy {m['test_accuracy']:.1%}")
    if record["test_accuracy_flip"] is not None:
        print(f"{name}: with flip test-time augmentation {record['test_accuracy_flip']:.4f}")
    print(f"{name}: test accuracy {record['test_accuracy']:.4f} in {record['train_seconds']:.0f} s "
          f"({record['epochs']} epochs, {record['data']['source_label']}); wrote {path}")
    return record


def snapshot_test_curve(run_dir, data, recipe, seed: int, history: dict) -> list[dict]:
    """Test accuracy of the weights saved after each epoch (``<run_dir>/snapshots``), scored after training.

    It draws the accuracy-against-time curve of a run trained without a
    validation split. Nothing is selected by it: the run's result stays the
    final weights'. ``train_seconds`` is the training time up to that epoch's end.
    """
    import keras
    import numpy as np

    from focaledu import training

    model = keras.models.load_model(Path(run_dir) / "model.keras")
    dataset = training.load_data(data, recipe, seed=seed)
    elapsed = np.cumsum([s or 0.0 for s in history["epoch_seconds"]])
    curve = []
    for path in sorted((Path(run_dir) / "snapshots").glob("epoch_*.weights.h5")):
        epoch = int(path.name.split("_")[1].split(".")[0])  # ModelCheckpoint counts epochs from 1
        if epoch > len(elapsed):  # left by a longer earlier run in the same directory
            continue
        model.load_weights(path)
        curve.append({"epoch": epoch, "train_seconds": float(elapsed[epoch - 1]),
                      "test_accuracy": training.evaluate(model, dataset)["accuracy"]})
    return curve


def plot_time_curve(record: dict, path: Path):
    """Training loss by epoch, and train and test accuracy against training minutes (``record["test_curve"]``)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from focaledu.figures import curves

    history, curve = record["history"], record["test_curve"]
    minutes = np.cumsum([s or 0.0 for s in history["epoch_seconds"]]) / 60
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    curves({"train loss": history["loss"]}, x=np.arange(1, len(minutes) + 1), xlabel="epoch", ylabel="loss", ax=left)
    curves({"train accuracy": history["accuracy"]}, x=minutes, xlabel="training minutes", ylabel="accuracy", ax=right)
    right.plot([p["train_seconds"] / 60 for p in curve], [p["test_accuracy"] for p in curve], color="black",
               marker="o", markersize=3, label="test accuracy (each epoch's weights)")
    right.legend(fontsize=8)
    fig.suptitle(f"{record['preset']} on {record['data']['source_label']}: test accuracy "
                 f"{record['test_accuracy']:.2%} after {record['train_seconds'] / 60:.1f} min", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def epoch_summary(history: dict, images_per_epoch: int) -> dict:
    """First-epoch time (tracing/compilation included), the steady epoch time and throughput, final accuracies."""
    import numpy as np

    seconds = [s for s in history.get("epoch_seconds", []) if s is not None]
    steady = float(np.median(seconds[1:])) if len(seconds) > 1 else None
    last = {k: history[k][-1] for k in ("accuracy", "val_accuracy") if history.get(k)}
    return {
        "first_epoch_seconds": seconds[0] if seconds else None,
        "steady_epoch_seconds_median": steady,
        "train_images_per_second_steady": round(images_per_epoch / steady) if steady else None,
        "final_train_accuracy": last.get("accuracy"),
        "final_val_accuracy": last.get("val_accuracy"),
    }


def stop_after(seconds: float):
    """A Keras callback that stops training at the first epoch end past ``seconds`` of training."""
    import time

    import keras

    class StopAfter(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if time.perf_counter() - self.start > seconds:
                self.model.stop_training = True

    return StopAfter()


def epochs_for_budget(preset, recipe, seconds: float, model_overrides=None, *, probe_steps: int = 6) -> dict:
    """How many epochs of ``recipe`` fit in ``seconds``, from timing ``probe_steps`` training steps.

    The first step (tracing) is not timed; validation adds a third of a step per validation image.
    """
    import time

    import numpy as np

    from focaledu import training

    n_train = 10 * recipe.train_per_class if recipe.train_per_class else 50_000  # CIFAR-10's training set
    steps = training.steps_per_epoch(n_train, recipe.validation_split, recipe.batch_size)
    model = training.build_model(preset, recipe, **(model_overrides or {}))
    training.compile_model(model, recipe, steps, 1)
    size = tuple(model.image_size)
    x = np.random.default_rng(0).normal(size=(recipe.batch_size, *size, 3)).astype("float32")
    y = np.eye(model.num_classes, dtype="float32")[np.arange(recipe.batch_size) % model.num_classes]
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(probe_steps):
        model.train_on_batch(x, y)
    step_seconds = (time.perf_counter() - start) / probe_steps
    # A validation image costs about a third of a training image (forward only).
    val_share = recipe.validation_split / (1 - recipe.validation_split)
    epoch_seconds = (1.02 + val_share / 3) * steps * step_seconds
    return {"seconds": seconds, "step_seconds": step_seconds, "steps_per_epoch": steps,
            "estimated_epoch_seconds": epoch_seconds, "epochs": max(1, int(seconds // epoch_seconds))}
