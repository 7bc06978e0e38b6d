"""The dataset type every loader returns, CIFAR-10's constants, and per-class subsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "SYNTHETIC_LABEL", "CorruptDatasetError",
           "DatasetUnavailableError", "ImageDataset", "first_per_class", "subset_per_class"]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# Per-channel statistics of the 50,000 official training images, in [0, 1].
# (The often-copied std (0.2023, 0.1994, 0.2010) is the mean per-image std,
# not the dataset std.)
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

LABEL_CIFAR10 = "CIFAR-10"
LABEL_JPEG_MIRROR = "CIFAR-10 (JPEG mirror)"
LABEL_IMAGE_FOLDER = "CIFAR-10 (image folder)"
SYNTHETIC_LABEL = "synthetic (procedural, not CIFAR-10)"


class DatasetUnavailableError(RuntimeError):
    """CIFAR-10 could not be found locally and could not be downloaded."""


class CorruptDatasetError(ValueError):
    """A dataset file exists but is truncated, corrupt or in the wrong format."""


# --------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """Images and labels of a train/test split, plus where they came from; unpacks like ``cifar10.load_data()``.

    Attributes:
        x_train, x_test: ``uint8`` arrays of shape ``(N, 32, 32, 3)``.
        y_train, y_test: ``int64`` arrays of shape ``(N,)``.
        class_names: name of each label index.
        source_label: short provenance for figure captions, e.g. ``"CIFAR-10"``.
        source: where the data came from (a path, or a description).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source_label: str
    source: str

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield self.x_train, self.y_train
        yield self.x_test, self.y_test

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_synthetic(self) -> bool:
        return self.source_label == SYNTHETIC_LABEL

    def describe(self) -> str:
        """One line suitable for a log or a figure caption footnote."""
        return (
            f"{self.source_label}: {len(self.y_train)} train / "
            f"{len(self.y_test)} test images, {self.num_classes} classes "
            f"(from {self.source})"
        )

    def __repr__(self) -> str:
        return f"ImageDataset<{self.describe()}>"


def _make_dataset(train, test, class_names, source_label, source) -> ImageDataset:
    (x_train, y_train), (x_test, y_test) = train, test
    return ImageDataset(
        x_train=np.ascontiguousarray(x_train, dtype=np.uint8),
        y_train=np.asarray(y_train, dtype=np.int64).reshape(-1),
        x_test=np.ascontiguousarray(x_test, dtype=np.uint8),
        y_test=np.asarray(y_test, dtype=np.int64).reshape(-1),
        class_names=tuple(class_names),
        source_label=source_label,
        source=str(source),
    )


# --------------------------------------------------------------------------
# Limits (first n per class)
# --------------------------------------------------------------------------


def _normalise_limits(limit) -> tuple[int | None, int | None]:
    if limit is None:
        return None, None
    n_train, n_test = (limit, limit) if np.isscalar(limit) else tuple(limit)
    for n in (n_train, n_test):
        if n is not None and int(n) < 1:
            raise ValueError(f"limit_per_class must be positive, got {limit!r}")
    return (None if n_train is None else int(n_train), None if n_test is None else int(n_test))


def _class_ranks(y: np.ndarray) -> np.ndarray:
    """Each example's position among the examples of its class (0, 1, ...)."""
    rank = np.zeros(len(y), dtype=np.int64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rank[members] = np.arange(len(members))
    return rank


def first_per_class(y: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the first ``n`` examples of each class, in original order (all of them for None)."""
    if n is None:
        return np.arange(len(y))
    return np.flatnonzero(_class_ranks(y) < n)


def _round_robin(y: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the first ``n`` examples of each class, ordered class 0, 1, ..., k-1, 0, 1, ..."""
    rank = _class_ranks(y)
    keep = first_per_class(y, n)
    return keep[np.lexsort((y[keep], rank[keep]))]


def subset_per_class(data: ImageDataset, limits) -> ImageDataset:
    """``data`` cut to the first ``limits[0]`` training and ``limits[1]`` test images of each class (None: all)."""
    if limits == (None, None):
        return data
    keep_train = first_per_class(data.y_train, limits[0])
    keep_test = first_per_class(data.y_test, limits[1])
    return _make_dataset(
        (data.x_train[keep_train], data.y_train[keep_train]),
        (data.x_test[keep_test], data.y_test[keep_test]),
        data.class_names,
        data.source_label,
        data.source,
    )
