"""Keras callbacks for training FocalNets: the modulation monitor (:class:`ModulationMonitor`) and run logs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from focaledu.pipelines import preprocess_images

__all__ = ["EpochLogger", "HistoryJSON", "ModulationMonitor", "read_history"]


class EpochLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the optimizer's rate after the epoch) and ``epoch_seconds`` to the epoch logs.

    Put it first in the callback list so ``CSVLogger`` and the history see both.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if getattr(self, "_start", None) is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start
        if getattr(self.model, "optimizer", None) is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def read_history(path, epochs: int | None = None) -> dict:
    """``history.json`` as ``{"epoch": [...], metric: [...]}``, optionally its first ``epochs`` entries."""
    try:
        history = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if epochs is not None:
        history = {key: values[:epochs] for key, values in history.items()}
    return history


class HistoryJSON(keras.callbacks.Callback):
    """Writes the per-epoch logs to ``path`` as JSON columns (plus a 0-based ``"epoch"``) after every epoch.

    Entries at or after the epoch being written are replaced, so a ``BackupAndRestore`` resume continues the file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        history = read_history(self.path)
        keep = sum(1 for e in history.get("epoch", []) if e < epoch)
        history = {key: values[:keep] for key, values in history.items()}
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        for key in set(history) | set(row):
            column = history.setdefault(key, [None] * keep)
            column.append(row.get(key))
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(history, indent=1) + "\n")
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------
# Modulation monitor
# --------------------------------------------------------------------------


def _default_block(model) -> str | None:
    """The last focal block of the first stage; None when the model has no focal-modulation blocks."""
    names = list(model.modulation_outputs)
    if not names:
        return None
    first_stage = [name for name in names if name.startswith("layers_0_")]
    return (first_stage or names)[-1]


class ModulationMonitor(keras.callbacks.Callback):
    """Saves a gates / modulator figure of fixed images every ``every`` epochs; ``self.paths`` lists the files.

    Args:
        images: raw images ``(B, H, W, 3)`` in 0..255, fed to the model after ``preprocess``.
        every: save after epochs ``every``, ``2 * every``, ... (1-based).
        out_dir: where ``modulation_epoch_NNN.png`` files go.
        block: block name (``model.block_names``); default the last block of the first stage.
        preprocess: raw images -> model inputs; default the training pipelines' scaling and resizing.
        labels: optional caption per image.
        source_label: the data's provenance, put in the figure title.
    """

    def __init__(self, images, every=1, out_dir="monitor", block=None, preprocess=None, labels=None,
                 source_label=None):
        super().__init__()
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"`images` must have shape (batch, height, width, 3); received {images.shape}.")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"`every` must be a positive integer; received {every!r}.")
        self.images = images
        self.every = every
        self.out_dir = Path(out_dir)
        self.block = block
        self.preprocess = preprocess
        self.labels = list(labels) if labels is not None else None
        self.source_label = source_label
        self.paths: list[Path] = []

    def _inputs(self):
        if self.preprocess is not None:
            return np.asarray(self.preprocess(self.images), dtype="float32")
        return preprocess_images(self.images, model=self.model)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.save(epoch + 1)

    def save(self, epoch: int) -> Path | None:
        """Writes the figure for the model's current weights, labelled ``epoch``.

        Returns None for a model without focal-modulation blocks.
        """
        import matplotlib.pyplot as plt

        from focaledu.interpret import modulation_maps
        from focaledu.figures import modulation_overlay

        block = self.block or _default_block(self.model)
        if block is None:
            return None
        maps = modulation_maps(self.model, self._inputs(), blocks=[block])[block]
        display = self.images if self.images.dtype == np.uint8 else np.clip(self.images, 0, 255).astype(np.uint8)
        title = f"{block} after epoch {epoch}"
        if self.source_label:
            title += f" ({self.source_label})"
        fig = modulation_overlay(display, maps["gates"], maps["modulator"], titles=self.labels, suptitle=title)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"modulation_epoch_{epoch:03d}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        self.paths.append(path)
        return path
