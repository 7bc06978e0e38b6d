"""What a training run reads: the dataset (:func:`load_data`) and its pipelines (:func:`make_pipelines`)."""

from __future__ import annotations

import os

import numpy as np

from focaledu.image_dataset import subset_per_class
from focaledu.recipes import PROFILES, Recipe

__all__ = ["data_pipeline", "load_data", "make_pipelines", "preprocess_images", "steps_per_epoch"]

def load_data(data=None, recipe: Recipe | None = None, seed: int = 0):
    """An :class:`~focaledu.data.ImageDataset` for ``data``.

    Args:
        data: an ``ImageDataset``; ``"synthetic"``; a path for ``load_cifar10(path)``; None for ``load_cifar10()``.
        recipe: its ``train_per_class`` / ``test_per_class`` select a subset.
        seed: seed of the synthetic set.
    """
    from focaledu import data as data_lib

    recipe = recipe or PROFILES["full"]
    if isinstance(data, data_lib.ImageDataset):
        return subset_per_class(data, (recipe.train_per_class, recipe.test_per_class))
    if isinstance(data, str) and data == "synthetic":
        n_train = 10 * recipe.train_per_class if recipe.train_per_class else 50_000
        n_test = 10 * recipe.test_per_class if recipe.test_per_class else 10_000
        return data_lib.synthetic_cifar10(n_train=n_train, n_test=n_test, seed=seed)
    limits = None
    if recipe.train_per_class is not None or recipe.test_per_class is not None:
        limits = (recipe.train_per_class, recipe.test_per_class)
    return data_lib.load_cifar10(data, limit_per_class=limits)


def data_pipeline(recipe: Recipe) -> str:
    """The input pipeline ``recipe`` asks for: ``"tf.data"`` or ``"numpy"`` (``"auto"`` resolved)."""
    if recipe.data_pipeline != "auto":
        return recipe.data_pipeline
    import importlib.util

    mixing = recipe.mixup_alpha or recipe.cutmix_alpha
    return "tf.data" if importlib.util.find_spec("tensorflow") and not mixing else "numpy"


def make_pipelines(dataset, recipe: Recipe, num_classes: int, image_size=(32, 32), seed: int = 0):
    """``Pipelines(train, validation, test)`` of ``(normalised images, one-hot labels)``.

    The training pipeline drops the last partial batch, so the train step is compiled once; images are resized
    when the model's input is not 32x32.
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
    """The largest batch <= ``target`` (and > ``target / 2``) dividing every non-zero size, else ``target``.

    Batches of one shape compile once.
    """
    sizes = [n for n in sizes if n]
    for batch in range(target, target // 2, -1):
        if all(n % batch == 0 for n in sizes):
            return batch
    return target


def steps_per_epoch(n_train: int, validation_split: float, batch_size: int) -> int:
    """Training steps per epoch of :func:`make_pipelines` (the partial batch is dropped)."""
    n_val = int(round(n_train * validation_split))
    n_fit = n_train - n_val
    return max(1, n_fit // batch_size)


def preprocess_images(images, image_size=None, *, model=None):
    """Raw ``uint8`` images to model inputs with NumPy (no TensorFlow): ``/255``, CIFAR-10 standardisation, resize.

    With ``model``: the inputs that model takes, at its ``image_size`` (only the resize with ``include_preprocessing``).
    """
    from focaledu.array_pipeline import model_scale, to_inputs

    if model is None:
        return to_inputs(images, image_size)
    size = getattr(model, "image_size", None)
    if image_size is not None and size is not None and tuple(image_size) != tuple(size):
        raise ValueError(f"image_size={tuple(image_size)} contradicts the model's image_size {tuple(size)}; "
                         "pass model= alone (its size is used) or image_size= alone")
    return to_inputs(images, size if size is not None else image_size, model_scale(model))
