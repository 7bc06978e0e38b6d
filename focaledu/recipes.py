"""The training recipe: hyper-parameters (:class:`Recipe`, :data:`PROFILES`) and the Keras built-ins they configure.

AdamW with weight-decay exclusions and clipping, ``CosineDecay`` with warm-up, label-smoothed
``CategoricalCrossentropy`` on one-hot labels, and an optional mixed-precision dtype policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from focaledu._validate import check, is_number

__all__ = [
    "DATA_PIPELINES",
    "NO_WEIGHT_DECAY",
    "PRECISIONS",
    "PROFILES",
    "Recipe",
    "build_model",
    "compile_model",
    "default_jit_compile",
    "make_loss",
    "make_optimizer",
    "make_schedule",
    "recipe",
    "schedule_rates",
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

    Attributes:
        name: profile name, recorded in ``metrics.json``.
        epochs: default number of epochs (``fit(epochs=...)`` overrides it).
        batch_size: training batch size.
        learning_rate: peak AdamW learning rate, reached at the end of warm-up.
        warmup_learning_rate: rate at step 0.
        min_learning_rate: rate at the end of the run (cosine decay).
        warmup_epochs: warm-up length (fractions allowed); at most half the run.
        weight_decay: decoupled AdamW weight decay.
        beta_1, beta_2, epsilon: AdamW moments and epsilon.
        global_clipnorm: clip the global gradient norm (None or 0: no clipping).
        gradient_accumulation_steps: batches averaged before each update (None or 1: every batch).
        label_smoothing: for ``CategoricalCrossentropy``.
        no_weight_decay: variable-name patterns excluded from weight decay.
        augment: padded random crop + horizontal flip.
        mixup_alpha, cutmix_alpha: Mixup / CutMix on every training batch (0: off; NumPy pipeline only).
        mix_switch_prob: with both on, the probability of CutMix for a batch.
        test_time_flip: also report ``test_accuracy_flip``, averaging each image and its mirror.
        deterministic_data: run the augmentation map sequentially, so a seed reproduces the batches.
        data_pipeline: ``"tf.data"``, ``"numpy"`` or ``"auto"`` (``tf.data`` when installed and no mixing).
        validation_split: last fraction of the training set held out.
        train_per_class, test_per_class: use only the first ``n`` images of each class (None: all).
        mixed_precision: None, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        jit_compile: True / False / ``"auto"``; None picks per backend (:func:`default_jit_compile`).
        monitor_every: save a modulation figure every this many epochs (0: never).
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
        _check(is_number(self.learning_rate) and self.learning_rate > 0, "learning_rate", self.learning_rate,
               "a positive number")
        for name in ("warmup_learning_rate", "min_learning_rate"):
            _check(is_number(getattr(self, name)) and getattr(self, name) >= 0, name, getattr(self, name),
                   "a number >= 0")
        _check(self.min_learning_rate <= self.learning_rate, "min_learning_rate", self.min_learning_rate,
               f"at most learning_rate={self.learning_rate}")
        _check(self.warmup_learning_rate <= self.learning_rate, "warmup_learning_rate",
               self.warmup_learning_rate, f"at most learning_rate={self.learning_rate}")
        _check(is_number(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs,
               "a number >= 0")
        _check(is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", self.weight_decay,
               "a number >= 0")
        _check(is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1, "label_smoothing",
               self.label_smoothing, "in [0, 1)")
        _check(self.global_clipnorm is None or (is_number(self.global_clipnorm) and self.global_clipnorm >= 0),
               "global_clipnorm", self.global_clipnorm, "a number >= 0 or None")
        _check(self.gradient_accumulation_steps is None or (
            isinstance(self.gradient_accumulation_steps, int) and not isinstance(self.gradient_accumulation_steps, bool)
            and self.gradient_accumulation_steps >= 1), "gradient_accumulation_steps",
            self.gradient_accumulation_steps, "a positive integer or None")
        _check(is_number(self.validation_split) and 0 <= self.validation_split < 1, "validation_split",
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
            _check(is_number(getattr(self, name)) and getattr(self, name) >= 0, name, getattr(self, name),
                   "a number >= 0 (0: off)")
        _check(is_number(self.mix_switch_prob) and 0 <= self.mix_switch_prob <= 1, "mix_switch_prob",
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
        """This recipe at another global batch, learning rates scaled linearly (Goyal et al. 2017)."""
        _check(isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1,
               "batch_size", batch_size, "a positive integer")
        factor = batch_size / self.batch_size
        return dataclasses.replace(
            self, batch_size=batch_size, learning_rate=self.learning_rate * factor,
            warmup_learning_rate=self.warmup_learning_rate * factor, min_learning_rate=self.min_learning_rate * factor,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check(ok, name, value, expected):
    check(ok, name, value, expected, owner="Recipe")


#: ``full``: the CIFAR-10 recipe. ``quick``: same recipe on 200 train / 100 test images per class,
#: 3 epochs, warm-up 1 epoch, batch 64, for tests and CI.
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
    """The ``jit_compile`` of ``Recipe(jit_compile=None)``: True on JAX, False on TensorFlow CPU, else ``"auto"``.

    XLA slows the TensorFlow CPU training step; see ``benchmarks/results/jit_compile_cpu.json``.
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
    """``(warmup_steps, decay_steps)`` summing to the run's steps; the warm-up is cut to at most half the run."""
    epochs = recipe.epochs if epochs is None else epochs
    total = int(steps_per_epoch) * int(epochs)
    if total < 1:
        raise ValueError(f"A run needs at least one step; got steps_per_epoch={steps_per_epoch}, epochs={epochs}.")
    warmup = int(round(recipe.warmup_epochs * steps_per_epoch))
    warmup = min(warmup, total // 2)
    return warmup, total - warmup


def make_schedule(recipe: Recipe, steps_per_epoch: int, epochs: int | None = None):
    """Linear warm-up then cosine decay, as one ``keras.optimizers.schedules.CosineDecay``.

    ``decay_steps`` is the total minus the warm-up, so the rate reaches ``min_learning_rate`` at the last step.
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


def schedule_rates(schedule, steps):
    """The rates of a Keras learning-rate schedule at ``steps``, as a float64 NumPy array.

    Args:
        schedule: a ``keras.optimizers.schedules.LearningRateSchedule``.
        steps: the optimizer steps, an int or a 1-D sequence of ints.
    """
    import keras

    steps = np.atleast_1d(np.asarray(steps))
    if steps.ndim != 1 or steps.dtype.kind not in "iu":
        raise ValueError(f"steps must be an int or a 1-D sequence of ints; got {steps.dtype} of shape {steps.shape}")
    if keras.backend.backend() == "torch":
        # torch.vmap cannot batch the warm-up's ops.cond; eager torch costs microseconds a step.
        return np.array([float(keras.ops.convert_to_numpy(schedule(int(s)))) for s in steps])
    # One vectorised call: on JAX, a call per step would trace the warm-up's cond again.
    rates = keras.ops.vectorized_map(schedule, keras.ops.convert_to_tensor(steps, "float32"))
    return keras.ops.convert_to_numpy(rates).astype("float64")


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


def build_model(preset: str = "focalnet_cifar_tiny", recipe: Recipe | None = None, *, model_class=None,
                **overrides):
    """``model_class.from_preset(preset, **overrides)`` with the recipe's dtype policy.

    ``model_class`` defaults to ``FocalNet``; the global dtype policy is left alone.
    """
    from focaledu.model import FocalNet

    policy = recipe.mixed_precision if recipe is not None else None
    return (model_class or FocalNet).from_preset(preset, **{"dtype": policy, **overrides})


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
