"""Deterministic ``tf.data`` input pipelines with Keras preprocessing layers.

Padded random crop and horizontal flip per image (before batching, so every
image gets its own crop), CIFAR-10 standardisation, prefetch. TensorFlow is
imported inside the functions, so importing this module (or
:mod:`focaledu.data`, which re-exports it) stays cheap; ``tf.*`` is used
here only. :mod:`focaledu.array_pipeline` gives the same batches from NumPy
where TensorFlow is not installed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from focaledu.image_dataset import CIFAR10_MEAN, CIFAR10_STD, ImageDataset

__all__ = ["Pipelines", "eval_pipeline", "make_augmenter", "make_datasets", "make_normalizer",
           "split_validation", "train_pipeline"]


class Pipelines(NamedTuple):
    """The three ``tf.data.Dataset`` objects returned by :func:`make_datasets`."""

    train: Any
    validation: Any
    test: Any


def split_validation(x: np.ndarray, y: np.ndarray, validation_split: float = 0.1):
    """Hold out the *last* ``validation_split`` of ``(x, y)`` for validation.

    Returns:
        ``(x_train, y_train), (x_val, y_val)``.
    """
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    n_val = int(round(len(x) * validation_split))
    cut = len(x) - n_val
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def make_augmenter(image_size: tuple[int, int] = (32, 32), padding: int = 4, seed: int = 0):
    """Return ``augment(images)``: per-image padded random crop + random flip.

    Works on a batch ``(B, H, W, C)`` (any numeric dtype, any pixel scale) and
    returns ``float32`` on the same scale. Built from Keras ``RandomCrop`` and
    ``RandomFlip("horizontal")``.

    ``RandomCrop`` chooses one window per call, i.e. per batch, so each image
    is cropped by its own call (``tf.map_fn``). Keras random layers keep
    their RNG state in a variable; calling them from a parallel ``map``
    would race on it, so callers must apply ``augment`` sequentially for the
    result to be reproducible (the pipelines below do).
    """
    import keras
    import tensorflow as tf

    crop = keras.layers.RandomCrop(*image_size, seed=seed)
    flip = keras.layers.RandomFlip("horizontal", seed=seed + 1)
    pad = [[0, 0], [padding, padding], [padding, padding], [0, 0]]

    def augment(images):
        padded = tf.pad(tf.cast(images, tf.float32), pad)  # zero (black) padding
        cropped = tf.map_fn(crop, padded, fn_output_signature=tf.float32)
        return flip(cropped)  # RandomFlip draws one coin per image

    return augment


def make_normalizer(normalize: bool = True, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """Return ``f(images)``: ``/255`` then (optionally) per-channel standardisation."""
    import keras

    rescale = keras.layers.Rescaling(1.0 / 255.0)
    if not normalize:
        return rescale
    standardise = keras.layers.Normalization(mean=list(mean), variance=list(np.square(std)))
    standardise.build((None, None, None, len(mean)))  # jax backend won't build inside tf.data
    return lambda images: standardise(rescale(images))


def train_pipeline(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 128,
    *,
    seed: int = 0,
    augment: bool = True,
    normalize: bool = True,
    shuffle: bool = True,
    drop_remainder: bool = False,
    deterministic: bool = True,
):
    """Training ``tf.data.Dataset`` of ``(float32 images, int64 labels)`` batches.

    Shuffles (full buffer, reshuffled every epoch), batches, augments each
    image (padded random crop + horizontal flip), rescales to [0, 1] and
    standardises with the CIFAR-10 mean/std, then prefetches. With the same
    ``seed`` two pipelines yield identical epochs; successive epochs differ.

    ``deterministic=False`` runs the augmentation map in parallel: faster on
    many cores, but Keras' random layers then race on their RNG state, so
    runs are no longer reproducible.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment:
        augmenter = make_augmenter(tuple(x.shape[1:3]), seed=seed)
        parallel = None if deterministic else tf.data.AUTOTUNE
        ds = ds.map(lambda images, labels: (augmenter(images), labels), num_parallel_calls=parallel)
    return _normalize_and_prefetch(ds, normalize)


def eval_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int = 256, *, normalize: bool = True):
    """Validation/test ``tf.data.Dataset``: in order, no augmentation."""
    import tensorflow as tf

    return _normalize_and_prefetch(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size), normalize)


def _normalize_and_prefetch(ds, normalize: bool):
    import tensorflow as tf

    # Created once here, not inside the traced function. Stateless, so this
    # map may run in parallel without costing reproducibility.
    normalizer = make_normalizer(normalize)
    ds = ds.map(
        lambda images, labels: (normalizer(tf.cast(images, tf.float32)), labels),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def make_datasets(
    data: ImageDataset | Sequence,
    batch_size: int = 128,
    *,
    validation_split: float = 0.1,
    seed: int = 0,
    augment: bool = True,
    normalize: bool = True,
    eval_batch_size: int | None = None,
    deterministic: bool = True,
) -> Pipelines:
    """Train / validation / test pipelines from a dataset.

    The validation set is the *last* ``validation_split`` of the training
    arrays (as in the keras.io FocalNet example, which holds out the last
    10,000 images, i.e. ``validation_split=0.2``); the test set is left
    untouched for the final number.

    Args:
        data: An :class:`ImageDataset` or ``((x_train, y_train), (x_test, y_test))``.
        batch_size: Training batch size.
        validation_split: Fraction held out; 0 gives ``validation=None``.
        seed: Seeds shuffling and augmentation.
        augment: Padded random crop + horizontal flip on the training set.
        normalize: Standardise with the CIFAR-10 mean/std after ``/255``;
            if false, images are only scaled to [0, 1].
        eval_batch_size: Batch size for validation/test (default ``2 * batch_size``).
        deterministic: See :func:`train_pipeline`.

    Returns:
        ``Pipelines(train, validation, test)``, unpackable as a 3-tuple.
    """
    (x_train, y_train), (x_test, y_test) = data
    (x_fit, y_fit), (x_val, y_val) = split_validation(x_train, y_train, validation_split)
    eval_bs = eval_batch_size or 2 * batch_size
    train = train_pipeline(
        x_fit, y_fit, batch_size, seed=seed, augment=augment, normalize=normalize, deterministic=deterministic
    )
    validation = eval_pipeline(x_val, y_val, eval_bs, normalize=normalize) if len(x_val) else None
    test = eval_pipeline(x_test, y_test, eval_bs, normalize=normalize)
    return Pipelines(train, validation, test)
