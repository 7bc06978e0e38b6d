"""CIFAR-10 from its Hugging Face Hub copy, ``uoft-cs/cifar10``; ``datasets`` is imported when used."""

from __future__ import annotations

import numpy as np

from focaledu.image_dataset import (
    CIFAR10_CLASSES,
    CorruptDatasetError,
    ImageDataset,
    first_per_class,
    _make_dataset,
)
from focaledu.readers import _decode_image

HF_DATASET = "uoft-cs/cifar10"
LABEL_HUGGING_FACE = "CIFAR-10 (Hugging Face uoft-cs/cifar10)"
DATA_FILES = {"train": "plain_text/train-*.parquet", "test": "plain_text/test-*.parquet"}


def datasets_module():
    """The ``datasets`` package, or None where it is not installed."""
    try:
        import datasets
    except ImportError:
        return None
    # A stray ./datasets folder imports as an empty namespace package.
    return datasets if hasattr(datasets, "load_dataset") else None


def load_hugging_face(repo: str, limits: tuple[int | None, int | None]) -> ImageDataset:
    """Load ``repo`` as an :class:`ImageDataset`, rows in the parquet files' order.

    Args:
        repo: Hub dataset id such as ``"uoft-cs/cifar10"``, or a folder with ``plain_text/{train,test}-*.parquet``.
        limits: ``(n_train, n_test)`` images per class; None keeps all.

    Raises:
        ImportError: ``datasets`` is not installed.
        CorruptDatasetError: the columns, label names or images are not CIFAR-10's.
    """
    datasets = datasets_module()
    if datasets is None:
        raise ImportError("the `datasets` package is not installed")
    splits = datasets.load_dataset(repo, data_files=DATA_FILES)
    label = splits["train"].features.get("label")
    names = tuple(getattr(label, "names", None) or CIFAR10_CLASSES)
    if names != CIFAR10_CLASSES:
        raise CorruptDatasetError(f"{repo}: label names {names} are not CIFAR-10's {CIFAR10_CLASSES}")
    train, test = (_decode_split(splits[name], limit, f"{repo} {name}") for name, limit in zip(DATA_FILES, limits))
    return _make_dataset(train, test, names, LABEL_HUGGING_FACE, repo)


def _decode_split(split, limit: int | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one split's kept rows from the Arrow table, one Pillow call per image."""
    table = split.with_format("arrow")[:]
    if not {"img", "label"} <= set(table.column_names):
        raise CorruptDatasetError(f"{where} has columns {table.column_names}; expected 'img' and 'label'")
    labels = table.column("label").to_numpy().astype(np.int64)
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(CIFAR10_CLASSES):
        raise CorruptDatasetError(f"{where} has labels outside 0..9")
    keep = first_per_class(labels, limit)
    column = table.column("img") if limit is None else table.column("img").take(keep)
    # Raw PNG bytes, not datasets' PIL objects: the rows a limit drops are never decoded.
    pngs = column.combine_chunks().field("bytes").to_pylist()
    images = np.empty((len(keep), 32, 32, 3), dtype=np.uint8)
    for k, (row, png) in enumerate(zip(keep, pngs)):
        if png is None:
            raise CorruptDatasetError(f"{where}[{row}] has no image bytes")
        images[k] = _decode_image(png, f"{where}[{row}]")
    return images, labels[keep]
