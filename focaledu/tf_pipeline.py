"""Deterministic ``tf.data`` input pipelines with Keras preprocessing layers.

TensorFlow is imported inside the functions.
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
    """Hold out the *last* ``validation_split`` of ``(x, y)``; returns ``(x_train, y_train), (x_val, y_val)``."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    n_val = int(round(len(x) * validation_split))
    cut = len(x) - n_val
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def make_augmenter(image_size: tuple[int, int] = (32, 32), padding: int = 4, seed: int = 0):
    """Return ``augment(images)``: per-image padded random crop + flip of a ``(B, H, W, C)`` batch.

    Apply it sequentially: Keras' random layers keep their RNG state in a variable, which a parallel ``map`` races on.
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
    """Training ``tf.data.Dataset`` of ``(float32 images, int64 labels)``, shuffled and augmented.

    The same ``seed`` gives identical epochs; ``deterministic=False`` augments in parallel, which is not reproducible.
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
    """Train / validation / test pipelines; validation is the *last* ``validation_split`` of the training set.

    Args:
        data: an :class:`ImageDataset` or ``((x_train, y_train), (x_test, y_test))``.
        batch_size: training batch size.
        validation_split: fraction held out; 0 gives ``validation=None``.
        seed: seeds shuffling and augmentation.
        augment: padded random crop + horizontal flip on the training set.
        normalize: standardise with the CIFAR-10 mean/std after ``/255`` (else only ``/255``).
        eval_batch_size: batch size for validation/test (default ``2 * batch_size``).
        deterministic: see :func:`train_pipeline`.

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
