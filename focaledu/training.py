"""The training recipe for FocalNet on CIFAR-10, assembled from Keras built-ins.

Nothing here is hand-written that Keras already has:

* **optimizer**: ``keras.optimizers.AdamW`` with ``epsilon=1e-8`` (FocalNet's
  value; Keras defaults to 1e-7), decoupled weight decay that skips LayerNorm
  scales/offsets, biases and layer-scale gammas
  (``exclude_from_weight_decay(var_names=...)``, called before the optimizer
  is built), and ``global_clipnorm`` gradient clipping;
* **schedule**: ``keras.optimizers.schedules.CosineDecay`` with a linear
  warm-up. ``CosineDecay`` lasts ``warmup_steps + decay_steps``, so
  ``decay_steps`` is the run length *minus* the warm-up; passing the whole
  run length (the common mistake) leaves the rate well above its minimum at
  the end;
* **loss**: ``keras.losses.CategoricalCrossentropy(label_smoothing=...)`` on
  one-hot labels. ``SparseCategoricalCrossentropy`` has no
  ``label_smoothing`` argument in Keras 3, and one-hot targets are also what
  mixup/cutmix need (``Recipe(mixup_alpha=..., cutmix_alpha=...)``, mixed in
  the NumPy pipeline);
* **precision**: optional ``mixed_float16`` / ``mixed_bfloat16`` through
  ``keras.mixed_precision.set_dtype_policy`` (set only while the model is
  built; Keras adds loss scaling for float16 by itself);
* **callbacks**: ``BackupAndRestore`` (a killed run resumes at the next
  epoch), ``ModelCheckpoint(save_best_only=True)`` to ``best.keras``,
  ``CSVLogger``, a JSON history and the ``ModulationMonitor`` figures.

:class:`Recipe` holds the hyper-parameters; :data:`PROFILES` has ``quick``
(a ~1 minute CPU smoke run on a subset) and ``full`` (the measured CIFAR-10
recipe). :func:`fit` runs everything and writes a run directory.

Recorded in ``benchmarks/results/cifar10_cpu.json`` (2-core CPU, TensorFlow):
``focalnet_cifar_tiny`` with the overlapping stem (``use_conv_embed=True``),
the ``full`` profile for 34 epochs: 84.5 % test accuracy after 59 minutes
(85.2 % with flip test-time augmentation).
Those weights ship as ``focaledu.pretrained("focalnet_cifar_tiny_cifar10")``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "NO_WEIGHT_DECAY",
    "PROFILES",
    "Recipe",
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
    "recipe",
    "run_info",
    "schedule_steps",
]

#: Substrings of variable *names* that get no weight decay (regular
#: expressions, matched with ``re.search`` by Keras): LayerNormalization
#: ``gamma``/``beta``, every ``bias``, and the layer-scale ``gamma_1``/``gamma_2``
#: of ``FocalNetBlock``. Only kernels (dense, convolution, depthwise) decay,
#: as in the official code, which skips all 1-D parameters.
NO_WEIGHT_DECAY: tuple[str, ...] = ("gamma", "beta", "bias")

PRECISIONS = {
    None: None,
    "off": None,
    "float32": None,
    "float16": "mixed_float16",
    "mixed_float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
    "mixed_bfloat16": "mixed_bfloat16",
}

DATA_PIPELINES = ("auto", "tf.data", "numpy")


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of a training run.

    Learning rates are per step: the rate rises linearly from
    ``warmup_learning_rate`` to ``learning_rate`` over ``warmup_epochs``, then
    follows a cosine down to ``min_learning_rate`` at the last step.

    Attributes:
        name: profile name, recorded in ``metrics.json``.
        epochs: default number of epochs (``fit(epochs=...)`` overrides it).
        batch_size: training batch size.
        learning_rate: peak AdamW learning rate, reached at the end of warm-up.
        warmup_learning_rate: rate at step 0.
        min_learning_rate: rate at the end of the run.
        warmup_epochs: warm-up length (fractions allowed); shortened to at
            most half of a run that is too short for it.
        weight_decay: decoupled AdamW weight decay.
        beta_1, beta_2, epsilon: AdamW moments and epsilon (1e-8 as FocalNet).
        global_clipnorm: clip the global gradient norm (None or 0: no clipping).
        gradient_accumulation_steps: average the gradients of this many
            batches before each update (Keras' optimizer option; None or 1:
            update every batch). The update sees ``batch_size *
            gradient_accumulation_steps`` images, in the memory of one batch;
            the schedule still counts batches.
        label_smoothing: for ``CategoricalCrossentropy``.
        no_weight_decay: variable-name patterns excluded from weight decay.
        augment: padded random crop + horizontal flip.
        mixup_alpha, cutmix_alpha: Mixup / CutMix on every training batch
            (:func:`focaledu.array_pipeline.mix_batch`, as timm's ``Mixup``;
            0: off). They run in the NumPy pipeline: ``data_pipeline="auto"``
            picks it, ``"tf.data"`` with mixing is an error.
        mix_switch_prob: with both on, the probability of CutMix for a batch.
        test_time_flip: also report the test accuracy of the averaged
            softmax of each image and its mirror image (``test_accuracy_flip``
            in ``metrics.json``; ``test_accuracy`` stays single-view).
        deterministic_data: run the augmentation map sequentially, so a seed
            reproduces the batches (False: parallel, faster on many cores).
        data_pipeline: ``"tf.data"`` (:mod:`focaledu.data`), ``"numpy"``
            (:class:`focaledu.array_pipeline.ArrayPipeline`, no TensorFlow
            needed; always reproducible) or ``"auto"``: ``tf.data`` when
            TensorFlow is installed and no mixing is asked for, else NumPy.
        validation_split: last fraction of the training set held out.
        train_per_class, test_per_class: use only the first ``n`` images of
            each class (None: all), for quick runs.
        mixed_precision: None, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        jit_compile: True / False / ``"auto"``; None picks per backend
            (see :func:`default_jit_compile`).
        monitor_every: save a modulation figure every this many epochs
            (0: never).
        monitor_images: how many fixed test images the figure shows.
    """

    name: str = "full"
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_learning_rate: float = 1e-6
    min_learning_rate: float = 1e-5
    warmup_epochs: float = 3.0
    weight_decay: float = 0.05
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    global_clipnorm: float | None = 5.0
    gradient_accumulation_steps: int | None = None
    label_smoothing: float = 0.1
    no_weight_decay: tuple[str, ...] = NO_WEIGHT_DECAY
    augment: bool = True
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_switch_prob: float = 0.5
    test_time_flip: bool = False
    deterministic_data: bool = True
    data_pipeline: str = "auto"
    validation_split: float = 0.1
    train_per_class: int | None = None
    test_per_class: int | None = None
    mixed_precision: str | None = None
    jit_compile: bool | str | None = None
    monitor_every: int = 5
    monitor_images: int = 4

    def __post_init__(self):
        _check(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", self.epochs, "a positive integer")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", self.batch_size,
               "a positive integer")
        _check(_number(self.learning_rate) and self.learning_rate > 0, "learning_rate", self.learning_rate,
               "a positive number")
        for name in ("warmup_learning_rate", "min_learning_rate"):
            _check(_number(getattr(self, name)) and getattr(self, name) >= 0, name, getattr(self, name),
                   "a number >= 0")
        _check(self.min_learning_rate <= self.learning_rate, "min_learning_rate", self.min_learning_rate,
               f"at most learning_rate={self.learning_rate}")
        _check(self.warmup_learning_rate <= self.learning_rate, "warmup_learning_rate",
               self.warmup_learning_rate, f"at most learning_rate={self.learning_rate}")
        _check(_number(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs,
               "a number >= 0")
        _check(_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", self.weight_decay,
               "a number >= 0")
        _check(_number(self.label_smoothing) and 0 <= self.label_smoothing < 1, "label_smoothing",
               self.label_smoothing, "in [0, 1)")
        _check(self.global_clipnorm is None or (_number(self.global_clipnorm) and self.global_clipnorm >= 0),
               "global_clipnorm", self.global_clipnorm, "a number >= 0 or None")
        _check(self.gradient_accumulation_steps is None or (
            isinstance(self.gradient_accumulation_steps, int) and not isinstance(self.gradient_accumulation_steps, bool)
            and self.gradient_accumulation_steps >= 1), "gradient_accumulation_steps",
            self.gradient_accumulation_steps, "a positive integer or None")
        _check(_number(self.validation_split) and 0 <= self.validation_split < 1, "validation_split",
               self.validation_split, "in [0, 1)")
        for name in ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, int) and value >= 1), name, value,
                   "a positive integer or None")
        _check(self.mixed_precision in PRECISIONS, "mixed_precision", self.mixed_precision,
               f"one of {[k for k in PRECISIONS if k]} or None")
        _check(self.data_pipeline in DATA_PIPELINES, "data_pipeline", self.data_pipeline,
               f"one of {list(DATA_PIPELINES)}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            _check(_number(getattr(self, name)) and getattr(self, name) >= 0, name, getattr(self, name),
                   "a number >= 0 (0: off)")
        _check(_number(self.mix_switch_prob) and 0 <= self.mix_switch_prob <= 1, "mix_switch_prob",
               self.mix_switch_prob, "in [0, 1]")
        _check(not (self.mixup_alpha or self.cutmix_alpha) or self.data_pipeline != "tf.data", "data_pipeline",
               self.data_pipeline, "'numpy' or 'auto' when mixup_alpha or cutmix_alpha is set (mixing runs in "
               "the NumPy pipeline)")
        _check(isinstance(self.test_time_flip, bool), "test_time_flip", self.test_time_flip, "True or False")
        _check(self.jit_compile in (None, True, False, "auto"), "jit_compile", self.jit_compile,
               "True, False, 'auto' or None")
        _check(isinstance(self.monitor_every, int) and self.monitor_every >= 0, "monitor_every",
               self.monitor_every, "an integer >= 0")
        object.__setattr__(self, "no_weight_decay", tuple(self.no_weight_decay))
        object.__setattr__(self, "global_clipnorm", self.global_clipnorm or None)
        object.__setattr__(self, "mixed_precision", PRECISIONS[self.mixed_precision])

    def replace(self, **changes) -> "Recipe":
        """A copy with ``changes`` applied (None values are ignored)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"Unknown Recipe field(s) {unknown}. Accepted: {[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def scaled_to(self, batch_size: int) -> "Recipe":
        """This recipe at another global batch, learning rates scaled linearly (Goyal et al. 2017).

        The official FocalNet does the same (``lr = base_lr * global_batch / 512``).
        Use it when adding devices also grows the global batch; splitting the
        same global batch over more devices needs no change.
        """
        _check(isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1,
               "batch_size", batch_size, "a positive integer")
        factor = batch_size / self.batch_size
        return dataclasses.replace(
            self, batch_size=batch_size, learning_rate=self.learning_rate * factor,
            warmup_learning_rate=self.warmup_learning_rate * factor, min_learning_rate=self.min_learning_rate * factor,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok, name, value, expected):
    if not ok:
        raise ValueError(f"Recipe `{name}` must be {expected}; received {value!r}.")


#: ``full``: the measured CIFAR-10 recipe. ``quick``: same recipe on 200
#: train / 100 test images per class, 3 epochs, warm-up 1 epoch, batch 64
#: (about a minute with ``focalnet_cifar_tiny`` on 2 CPU cores), for tests and CI.
PROFILES: dict[str, Recipe] = {
    "full": Recipe(),
    "quick": Recipe(
        name="quick",
        epochs=3,
        batch_size=64,
        warmup_epochs=1.0,
        train_per_class=200,
        test_per_class=100,
        monitor_every=1,
    ),
}


def recipe(profile: str | Recipe = "full", **overrides) -> Recipe:
    """The recipe of ``profile`` (``"quick"`` or ``"full"``) with ``overrides`` (None ignored)."""
    if isinstance(profile, Recipe):
        return profile.replace(**overrides)
    if profile not in PROFILES:
        raise ValueError(f"Unknown `profile` {profile!r}. Accepted values: {', '.join(PROFILES)}.")
    return PROFILES[profile].replace(**overrides)


# --------------------------------------------------------------------------
# jit_compile per backend
# --------------------------------------------------------------------------


def default_jit_compile(backend: str | None = None) -> bool | str:
    """The ``jit_compile`` a :class:`Recipe` with ``jit_compile=None`` uses.

    * JAX: ``True``. Keras' JAX trainer is meant to run under ``jax.jit``;
      ``False`` runs op by op and is far slower.
    * TensorFlow on CPU: ``False``. XLA made the FocalNet training step
      slower than the plain ``tf.function`` graph (oneDNN kernels) on the
      2-core development CPU: about 4x in the early full-size runs, 1.9x in
      ``benchmarks/results/jit_compile_cpu.json`` (``focalnet_cifar_tiny``,
      batch 128: 199 vs 106 images/s, JAX 90 images/s), and the first XLA
      epoch also pays ~30 s of compilation. Keras' ``"auto"`` picks XLA
      whenever every layer supports it, which is the wrong choice here.
    * TensorFlow with a GPU, other backends: ``"auto"`` (Keras decides).
    """
    import keras

    backend = backend or keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "tensorflow":
        import tensorflow as tf

        return "auto" if tf.config.list_physical_devices("GPU") else False
    return "auto"


# --------------------------------------------------------------------------
# Schedule, optimizer, loss, model
# --------------------------------------------------------------------------


def schedule_steps(recipe: Recipe, steps_per_epoch: int, epochs: int | None = None) -> tuple[int, int]:
    """``(warmup_steps, decay_steps)`` with ``warmup_steps + decay_steps`` = the run's steps.

    The warm-up is shortened to at most half the run when ``warmup_epochs``
    would not leave room for the cosine (e.g. ``--epochs 1`` with the full
    profile); :func:`fit` records the values it used.
    """
    epochs = recipe.epochs if epochs is None else epochs
    total = int(steps_per_epoch) * int(epochs)
    if total < 1:
        raise ValueError(f"A run needs at least one step; got steps_per_epoch={steps_per_epoch}, epochs={epochs}.")
    warmup = int(round(recipe.warmup_epochs * steps_per_epoch))
    warmup = min(warmup, total // 2)
    return warmup, total - warmup


def make_schedule(recipe: Recipe, steps_per_epoch: int, epochs: int | None = None):
    """Linear warm-up then cosine decay, as one ``keras.optimizers.schedules.CosineDecay``.

    ``schedule(0) == warmup_learning_rate``, ``schedule(warmup_steps) ==
    learning_rate`` and ``schedule(total_steps) == min_learning_rate``.
    ``CosineDecay`` runs for ``warmup_steps + decay_steps``, so ``decay_steps``
    must be the total minus the warm-up, and its ``alpha`` is a fraction of
    ``warmup_target``.
    """
    import keras

    warmup_steps, decay_steps = schedule_steps(recipe, steps_per_epoch, epochs)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.learning_rate,
            decay_steps=decay_steps,
            alpha=recipe.min_learning_rate / recipe.learning_rate,
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.warmup_learning_rate,
        decay_steps=decay_steps,
        alpha=recipe.min_learning_rate / recipe.learning_rate,
        warmup_target=recipe.learning_rate,
        warmup_steps=warmup_steps,
    )


def make_optimizer(recipe: Recipe, steps_per_epoch: int, epochs: int | None = None):
    """``AdamW`` on the warm-up + cosine schedule, with the weight-decay exclusions set."""
    import keras

    optimizer = keras.optimizers.AdamW(
        learning_rate=make_schedule(recipe, steps_per_epoch, epochs),
        weight_decay=recipe.weight_decay,
        beta_1=recipe.beta_1,
        beta_2=recipe.beta_2,
        epsilon=recipe.epsilon,
        global_clipnorm=recipe.global_clipnorm,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps if recipe.gradient_accumulation_steps != 1
        else None,
    )
    # Must happen before the optimizer is built (first apply / BackupAndRestore).
    optimizer.exclude_from_weight_decay(var_names=list(recipe.no_weight_decay))
    return optimizer


def make_loss(recipe: Recipe):
    """``CategoricalCrossentropy(from_logits=True, label_smoothing=...)`` on one-hot labels."""
    import keras

    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing)


def build_model(preset: str = "focalnet_cifar_tiny", recipe: Recipe | None = None, **overrides):
    """``FocalNet.from_preset(preset, **overrides)`` under the recipe's dtype policy.

    The global dtype policy is set only while the layers are created and is
    restored afterwards, so building a mixed-precision model does not change
    later models.
    """
    import keras

    from focaledu.model import FocalNet

    policy = recipe.mixed_precision if recipe is not None else None
    if policy is None:
        return FocalNet.from_preset(preset, **overrides)
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        return FocalNet.from_preset(preset, **overrides)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def compile_model(model, recipe: Recipe, steps_per_epoch: int, epochs: int | None = None):
    """Compiles ``model`` with the recipe's optimizer, loss, accuracy and ``jit_compile``."""
    import keras

    jit = default_jit_compile() if recipe.jit_compile is None else recipe.jit_compile
    model.compile(
        optimizer=make_optimizer(recipe, steps_per_epoch, epochs),
        loss=make_loss(recipe),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=jit,
    )
    # Build the optimizer now (the weight-decay exclusions are already set):
    # left to the first train step, its slot variables would be created inside
    # the tf.function trace, which makes TensorFlow trace the step twice.
    model.optimizer.build(model.trainable_variables)
    return model


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def load_data(data=None, recipe: Recipe | None = None, seed: int = 0):
    """An :class:`~focaledu.data.ImageDataset` for ``data``.

    Args:
        data: an ``ImageDataset``; ``"synthetic"`` for
            :func:`focaledu.data.synthetic_cifar10`; a path for
            ``load_cifar10(path)``; None for ``load_cifar10()``'s own resolution
            (``$FOCALEDU_CIFAR10``, Keras cache, download), which raises
            ``DatasetUnavailableError`` with instructions when it finds nothing.
        recipe: its ``train_per_class`` / ``test_per_class`` select a subset.
        seed: seed of the synthetic set.
    """
    from focaledu import data as data_lib

    recipe = recipe or PROFILES["full"]
    if isinstance(data, data_lib.ImageDataset):
        return _subset(data, recipe.train_per_class, recipe.test_per_class)
    if isinstance(data, str) and data == "synthetic":
        n_train = 10 * recipe.train_per_class if recipe.train_per_class else 50_000
        n_test = 10 * recipe.test_per_class if recipe.test_per_class else 10_000
        return data_lib.synthetic_cifar10(n_train=n_train, n_test=n_test, seed=seed)
    limits = None
    if recipe.train_per_class is not None or recipe.test_per_class is not None:
        limits = (recipe.train_per_class, recipe.test_per_class)
    return data_lib.load_cifar10(data, limit_per_class=limits)


def _first_per_class(labels: np.ndarray, n: int | None) -> np.ndarray:
    if n is None:
        return np.arange(len(labels))
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in np.unique(labels)]))


def _subset(dataset, train_per_class: int | None, test_per_class: int | None):
    """The first ``n`` images of each class of an ``ImageDataset`` (order kept)."""
    if train_per_class is None and test_per_class is None:
        return dataset
    train = _first_per_class(dataset.y_train, train_per_class)
    test = _first_per_class(dataset.y_test, test_per_class)
    return dataclasses.replace(
        dataset, x_train=dataset.x_train[train], y_train=dataset.y_train[train],
        x_test=dataset.x_test[test], y_test=dataset.y_test[test],
    )


def data_pipeline(recipe: Recipe) -> str:
    """The input pipeline ``recipe`` asks for: ``"tf.data"`` or ``"numpy"`` (``"auto"`` resolved)."""
    if recipe.data_pipeline != "auto":
        return recipe.data_pipeline
    import importlib.util

    mixing = recipe.mixup_alpha or recipe.cutmix_alpha
    return "tf.data" if importlib.util.find_spec("tensorflow") and not mixing else "numpy"


def make_pipelines(dataset, recipe: Recipe, num_classes: int, image_size=(32, 32), seed: int = 0):
    """``Pipelines(train, validation, test)`` of ``(normalised images, one-hot labels)``.

    The pieces of :func:`focaledu.data.make_datasets` (last
    ``validation_split`` held out, seeded shuffle, crop + flip, CIFAR-10
    standardisation), with two changes for training:

    * the training pipeline drops the last partial batch (as timm's
      ``drop_last``), so every step has the same shape: the train step is
      traced/compiled once instead of twice per run, and each epoch still
      sees a fresh shuffle (only when the split is smaller than one batch is
      the partial batch kept);
    * labels become one-hot for the smoothed loss, and images are resized
      (bilinear) when the model's input is not 32x32 (e.g. the keras.io
      tutorial's 48x48).

    ``recipe.data_pipeline`` picks ``tf.data`` datasets or NumPy
    :class:`~focaledu.array_pipeline.ArrayPipeline` objects (no TensorFlow).
    """
    from focaledu.data import Pipelines, split_validation

    (x_train, y_train), (x_test, y_test) = dataset
    (x_fit, y_fit), (x_val, y_val) = split_validation(x_train, y_train, recipe.validation_split)
    size = tuple(int(s) for s in image_size)
    eval_batch = _even_batch(2 * recipe.batch_size, len(x_val), len(x_test))
    if data_pipeline(recipe) == "numpy":
        from focaledu.array_pipeline import ArrayPipeline

        common = dict(num_classes=num_classes, image_size=size, workers=min(8, os.cpu_count() or 1))
        return Pipelines(
            ArrayPipeline(x_fit, y_fit, recipe.batch_size, seed=seed, augment=recipe.augment, shuffle=True,
                          drop_remainder=True, mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                          mix_switch_prob=recipe.mix_switch_prob, **common),
            ArrayPipeline(x_val, y_val, eval_batch, **common) if len(x_val) else None,
            ArrayPipeline(x_test, y_test, eval_batch, **common),
        )

    import tensorflow as tf

    from focaledu.data import eval_pipeline, train_pipeline

    train = train_pipeline(
        x_fit, y_fit, recipe.batch_size, seed=seed, augment=recipe.augment,
        drop_remainder=len(x_fit) >= recipe.batch_size, deterministic=recipe.deterministic_data,
    )
    validation = eval_pipeline(x_val, y_val, eval_batch) if len(x_val) else None
    test = eval_pipeline(x_test, y_test, eval_batch)
    source_size = tuple(np.shape(x_train)[1:3])

    def adapt(images, labels):
        if size != source_size:
            images = tf.image.resize(images, size, method="bilinear")
        return images, tf.one_hot(labels, num_classes)

    def wrap(ds):
        return None if ds is None else ds.map(adapt, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    return Pipelines(wrap(train), wrap(validation), wrap(test))


def _even_batch(target: int, *sizes: int) -> int:
    """The largest batch <= ``target`` (and > ``target / 2``) that divides every non-zero size, else ``target``.

    Evaluation batches of one shape are compiled once: on a GPU each extra
    shape (the last partial batch) costs another XLA compilation.
    """
    sizes = [n for n in sizes if n]
    for batch in range(target, target // 2, -1):
        if all(n % batch == 0 for n in sizes):
            return batch
    return target


def _steps_per_epoch(n_train: int, validation_split: float, batch_size: int) -> int:
    """Training steps per epoch of :func:`make_pipelines` (the partial batch is dropped)."""
    n_val = int(round(n_train * validation_split))
    n_fit = n_train - n_val
    return max(1, n_fit // batch_size)


def preprocess_images(images, image_size=None):
    """Raw ``uint8`` images to model inputs: ``/255``, CIFAR-10 standardisation, resize."""
    import keras

    from focaledu.data import make_normalizer

    images = np.asarray(images, dtype="float32")
    out = np.asarray(make_normalizer()(images), dtype="float32")
    if image_size is not None and tuple(out.shape[1:3]) != tuple(image_size):
        out = np.asarray(keras.ops.image.resize(out, tuple(image_size), interpolation="bilinear"), dtype="float32")
    return out


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def evaluate(model, dataset, batch_size: int = 250, flip: bool = False) -> dict:
    """Test accuracy and (unsmoothed) cross-entropy of ``model`` on ``dataset``'s test split.

    Args:
        model: a FocalNet (compiled or not); its ``image_size`` decides resizing.
        dataset: an ``ImageDataset``, a ``tf.data`` pipeline or an
            :class:`~focaledu.array_pipeline.ArrayPipeline` of
            ``(images, labels)`` (integer or one-hot labels).
        batch_size: for an ``ImageDataset`` (pipelines keep their own).
        flip: also ``flip_accuracy`` / ``flip_loss``: the prediction is the
            mean of the softmax of each image and of its mirror image
            (test-time augmentation; a second forward pass).

    Returns:
        ``{"accuracy", "loss", "n"}`` (+ ``"flip_accuracy", "flip_loss"``).
    """
    from focaledu.array_pipeline import ArrayPipeline

    if hasattr(dataset, "x_test"):
        size = tuple(getattr(model, "image_size", dataset.x_test.shape[1:3]))
        dataset = ArrayPipeline(dataset.x_test, dataset.y_test, batch_size, image_size=size)
    # model.predict runs the compiled (jitted / tf.function) forward pass; eager
    # calls would go op by op, which is slow on JAX. Eval pipelines are ordered.
    if isinstance(dataset, ArrayPipeline):
        labels = dataset.y
        inputs, mirrored = dataset, (dataset.mirrored() if flip else None)
    else:
        labels = np.concatenate([np.asarray(y) for y in dataset.map(lambda x, y: y).as_numpy_iterator()])
        inputs = dataset.map(lambda x, y: x)
        mirrored = dataset.map(lambda x, y: x[:, :, ::-1, :]) if flip else None
    labels = (np.argmax(labels, axis=-1) if np.ndim(labels) == 2 else np.asarray(labels)).astype(np.int64)
    probs = _softmax(model.predict(inputs, verbose=0))
    result = {**_scores(probs, labels), "n": int(len(labels))}
    if flip:
        both = (probs + _softmax(model.predict(mirrored, verbose=0))) / 2
        result.update({f"flip_{k}": v for k, v in _scores(both, labels).items()})
    return result


def _softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, dtype="float64")
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "accuracy": float(np.mean(np.argmax(probs, axis=1) == labels)),
        "loss": float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-300)))),
    }


# --------------------------------------------------------------------------
# Run metadata and plots
# --------------------------------------------------------------------------


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
    if not gpus and "tensorflow" in sys.modules:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    info["gpus"] = gpus
    return info


def plot_history(history: dict, path, title: str | None = None):
    """Loss and accuracy curves (train and validation, by epoch) to ``path`` (PNG)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from focaledu.plots import curves

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


# --------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------


@dataclass
class RunResult:
    """What :func:`fit` returns.

    Attributes:
        history: per-epoch metrics of the whole run (resumed runs included),
            ``{"epoch": [...], "loss": [...], "accuracy": [...], ...}``.
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
    devices: int | None = None,
    **recipe_overrides,
) -> RunResult:
    """Trains a FocalNet preset with the recipe and writes a run directory.

    Args:
        preset: a ``focaledu.model.PRESETS`` name.
        data: ``"synthetic"``, a CIFAR-10 path, an ``ImageDataset``, or None
            for ``load_cifar10()``'s resolution (see :func:`load_data`).
        out_dir: run directory; None writes nothing (no resume, no figures).
        profile: ``"quick"``, ``"full"`` or a :class:`Recipe`.
        epochs: overrides the recipe's epochs.
        seed: seeds weights (``keras.utils.set_random_seed``), shuffling,
            augmentation and the synthetic data.
        callbacks: extra Keras callbacks, run after the built-in ones.
        verbose: passed to ``model.fit`` (1: progress bar, 2: a line per epoch).
        command: recorded in ``metrics.json`` (default: this call).
        model_overrides: constructor overrides of the preset (e.g. a smaller ``embed_dim``).
        devices: train data-parallel on this many devices
            (:func:`focaledu.distribute.data_parallel`); the recipe's
            ``batch_size`` is the global batch, split evenly between them.
            None: one device, no distribution.
        **recipe_overrides: :class:`Recipe` fields (None values ignored).

    Writes into ``out_dir``: ``history.csv`` (``CSVLogger``), ``history.json``,
    ``curves.png``, ``monitor/modulation_epoch_NNN.png``, ``best.keras``
    (best validation accuracy), ``model.keras`` (final), ``metrics.json``,
    and ``backup/`` while running (removed when the run completes). If
    ``out_dir/backup`` exists, the run resumes after its last completed epoch
    (weights, optimizer state and schedule position; call it with the same
    arguments). ``metrics.json`` holds ``test_accuracy`` (final weights),
    ``test_loss`` (unsmoothed), ``best_val_accuracy``, ``train_seconds`` (this
    call's ``model.fit``), ``train_seconds_all_epochs`` (including epochs run
    before an interruption), the data's ``source_label``, the recipe, the
    model config, ``command``, ``versions``, ``machine`` and ``date``.

    Returns:
        A :class:`RunResult` (``history``, ``test_accuracy``, ``metrics``, ``model``).
    """
    from focaledu.distribute import data_parallel
    from focaledu.model import preset_config

    recipe_ = recipe(profile, **recipe_overrides)
    epochs = recipe_.epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer; received {epochs!r}.")
    model_overrides = dict(model_overrides or {})
    config = preset_config(preset, **model_overrides)  # validates the preset name early
    if command is None:
        command = f"focaledu.training.fit(preset={preset!r}, data={str(data)!r}, epochs={epochs}, seed={seed})"

    dataset = load_data(data, recipe_, seed=seed)
    with data_parallel(devices, recipe_.batch_size) as device_names:
        return _fit(preset, dataset, out_dir, recipe_, epochs, seed, callbacks, verbose, command, model_overrides,
                    config, device_names)


def _fit(preset, dataset, out_dir, recipe_, epochs, seed, callbacks, verbose, command, model_overrides, config,
         device_names) -> RunResult:
    import keras

    from focaledu import callbacks as fcb

    keras.utils.set_random_seed(seed)
    model = build_model(preset, recipe_, **model_overrides)
    pipelines = make_pipelines(dataset, recipe_, model.num_classes or dataset.num_classes, model.image_size, seed)
    steps = _steps_per_epoch(len(dataset.y_train), recipe_.validation_split, recipe_.batch_size)
    compile_model(model, recipe_, steps, epochs)
    warmup_steps, decay_steps = schedule_steps(recipe_, steps, epochs)

    cbs = [fcb.EpochLogger()]
    resumed_from = 0
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        resumed_from = backup_epoch(out)
        if resumed_from == 0:  # a fresh run: drop what an earlier run left here
            for stale in ("history.csv", "history.json", "metrics.json"):
                (out / stale).unlink(missing_ok=True)
            for stale in (out / "monitor").glob("modulation_epoch_*.png"):
                stale.unlink()
        else:
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
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
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


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
