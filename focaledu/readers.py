"""Readers for the files CIFAR-10 comes in: python batches, ``.tar.gz``, image folders, zips, JPEG ``.npz``.

Each returns an :class:`~focaledu.image_dataset.ImageDataset` or raises ``CorruptDatasetError`` naming the file.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from focaledu.image_dataset import (
    CIFAR10_CLASSES,
    LABEL_CIFAR10,
    LABEL_IMAGE_FOLDER,
    LABEL_JPEG_MIRROR,
    CorruptDatasetError,
    ImageDataset,
    _make_dataset,
    _round_robin,
)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_SPLITS = ("train", "test")



# --------------------------------------------------------------------------
# Official python batches (directory or tarball)
# --------------------------------------------------------------------------

_ALLOWED_PICKLE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays and plain containers, so a batch file cannot run code when loaded."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core"):  # pickles written by NumPy 1.x
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def _get(batch: dict, key: str):
    return batch.get(key.encode(), batch.get(key))


def _parse_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch into ``(N, 32, 32, 3)`` images and labels."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # pickle raises many types on garbage input
        raise CorruptDatasetError(f"{where} is not a readable CIFAR-10 batch pickle ({err!r})") from err
    data = _get(batch, "data") if isinstance(batch, dict) else None
    labels = _get(batch, "labels") if isinstance(batch, dict) else None
    if data is None or labels is None:
        raise CorruptDatasetError(f"{where} is not a CIFAR-10 batch (no 'data'/'labels' entries)")
    data, labels = np.asarray(data), np.asarray(labels)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise CorruptDatasetError(
            f"{where} has data of shape {data.shape} and {len(labels)} labels; "
            "expected (N, 3072) and N labels"
        )
    # Rows store the red plane, then green, then blue, each 32x32 row-major.
    images = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int64)


def _parse_meta(raw: bytes, where: str) -> tuple[str, ...]:
    try:
        meta = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        names = _get(meta, "label_names")
        return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except Exception as err:
        raise CorruptDatasetError(f"{where} is not a readable batches.meta pickle ({err!r})") from err


def _assemble_batches(blobs: dict[str, tuple[bytes, str]], container: str, source_label: str) -> ImageDataset:
    """Build a dataset from ``{'data_batch_1': (bytes, where), ...}``."""
    needed = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [name for name in needed if name not in blobs]
    if missing:
        raise CorruptDatasetError(f"{container} is missing {', '.join(missing)}")
    train = [_parse_batch(*blobs[f"data_batch_{i}"]) for i in range(1, 6)]
    x_test, y_test = _parse_batch(*blobs["test_batch"])
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    names = _parse_meta(*blobs["batches.meta"]) if "batches.meta" in blobs else CIFAR10_CLASSES
    return _make_dataset((x_train, y_train), (x_test, y_test), names, source_label, container)


def _load_batches_dir(path: Path) -> ImageDataset:
    blobs = {}
    for file in path.iterdir():
        if file.name.startswith(("data_batch_", "test_batch", "batches.meta")):
            blobs[file.name] = (file.read_bytes(), str(file))
    return _assemble_batches(blobs, str(path), LABEL_CIFAR10)


def _load_tarball(path: Path) -> ImageDataset:
    """Read the batches straight out of ``cifar-10-python.tar.gz``."""
    wanted = {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
    blobs = {}
    try:
        # Streaming mode ("r|*") reads the gzip once, front to back.
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted:
                    blobs[name] = (archive.extractfile(member).read(), f"{path}:{member.name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise CorruptDatasetError(f"{path} is not a readable tar archive (truncated or corrupt?): {err}") from err
    return _assemble_batches(blobs, str(path), LABEL_CIFAR10)


# --------------------------------------------------------------------------
# Image folders, zips of image folders, JPEG-bytes npz
# --------------------------------------------------------------------------


def _folder_layout(relpaths: Sequence[str], container: str) -> dict[str, dict[str, list[str]]]:
    """Group ``[prefix/]split/class/file`` paths as ``{split: {class: [paths]}}`` (one prefix holds both splits)."""
    layouts: dict[str, dict[str, dict[str, list[str]]]] = {}
    for rel in relpaths:
        parts = rel.split("/")
        if len(parts) not in (3, 4) or not parts[-1].lower().endswith(_IMAGE_SUFFIXES):
            continue
        if any(p.startswith((".", "__MACOSX")) for p in parts):
            continue
        prefix, (split, cls, _) = "/".join(parts[:-3]), parts[-3:]
        if split in _SPLITS:
            layouts.setdefault(prefix, {}).setdefault(split, {}).setdefault(cls, []).append(rel)
    complete = {p: lay for p, lay in layouts.items() if set(lay) == set(_SPLITS)}
    if len(complete) != 1:
        found = "none" if not complete else ", ".join(repr(p) for p in complete)
        raise CorruptDatasetError(
            f"{container}: expected images under [<dir>/]train/<class>/ and [<dir>/]test/<class>/ "
            f"in exactly one place; found {found}"
        )
    layout = next(iter(complete.values()))
    if set(layout["train"]) != set(layout["test"]):
        raise CorruptDatasetError(f"{container}: train and test have different class folders")
    return layout


def _class_order(names) -> tuple[str, ...]:
    # Folder names sort alphabetically, which would scramble CIFAR-10's
    # conventional label indices (automobile=1, ..., truck=9).
    return CIFAR10_CLASSES if set(names) == set(CIFAR10_CLASSES) else tuple(sorted(names))


def _interleave(per_class: list[list[str]], limit: int | None) -> tuple[list[str], np.ndarray]:
    """Round-robin over classes: class 0, 1, ..., k-1, 0, 1, ..."""
    files, labels, ranks = [], [], []
    for label, members in enumerate(per_class):
        for rank, name in enumerate(sorted(members)[:limit]):
            files.append(name)
            labels.append(label)
            ranks.append(rank)
    order = np.lexsort((labels, ranks))
    return [files[i] for i in order], np.asarray(labels, dtype=np.int64)[order]


def _decode_image(raw: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as image:
            # convert() would copy an RGB image for nothing.
            array = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CorruptDatasetError(f"{where} is not a readable image ({err})") from err
    if array.shape != (32, 32, 3):
        raise CorruptDatasetError(f"{where} is {array.shape[1]}x{array.shape[0]}; expected 32x32")
    return array


def _read_folder_split(
    files: list[str], read: Callable[[str], bytes], container: str
) -> np.ndarray:
    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, name in enumerate(files):
        images[i] = _decode_image(read(name), f"{container}:{name}")
    return images


def _load_layout(relpaths, read, container, limits) -> ImageDataset:
    layout = _folder_layout(relpaths, container)
    classes = _class_order(layout["train"])
    splits, any_jpeg = [], False
    for split, limit in zip(_SPLITS, limits):
        files, labels = _interleave([layout[split][c] for c in classes], limit)
        any_jpeg |= any(f.lower().endswith(_JPEG_SUFFIXES) for f in files)
        splits.append((_read_folder_split(files, read, container), labels))
    label = LABEL_JPEG_MIRROR if any_jpeg else LABEL_IMAGE_FOLDER
    return _make_dataset(splits[0], splits[1], classes, label, container)


def _load_image_folder(root: Path, limits) -> ImageDataset:
    relpaths = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= 3:  # [prefix/]split/class is as deep as it goes
            dirnames.clear()
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        relpaths += [f"{rel_dir}/{f}" if rel_dir != "." else f for f in filenames]
    return _load_layout(relpaths, lambda rel: (root / rel).read_bytes(), str(root), limits)


def _load_image_zip(path: Path, limits) -> ImageDataset:
    """Decode images straight from the zip; nothing is extracted to disk."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]

            def read(name: str) -> bytes:
                try:
                    return archive.read(name)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
                    raise CorruptDatasetError(f"{path}:{name} cannot be read from the zip ({err})") from err

            return _load_layout(names, read, str(path), limits)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise CorruptDatasetError(f"{path} is not a readable zip archive (truncated or corrupt?): {err}") from err


def _load_jpeg_npz(path: Path, limits) -> ImageDataset:
    """Read the ``cifar10-jpeg-bytes.npz`` mirror (concatenated JPEG bytes)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            blob, offsets = npz["jpeg"], npz["offsets"]
            labels, split, classes = npz["labels"], npz["split"], tuple(str(c) for c in npz["classes"])
    except Exception as err:  # zipfile/np.load/KeyError: all mean a bad file
        raise CorruptDatasetError(f"{path} is not a readable JPEG-bytes .npz ({err!r})") from err
    parts = []
    for code, limit in ((0, limits[0]), (1, limits[1])):
        idx = np.flatnonzero(split == code)
        idx = idx[_round_robin(labels[idx], limit)]
        images = np.empty((len(idx), 32, 32, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            images[k] = _decode_image(blob[offsets[i]:offsets[i + 1]].tobytes(), f"{path}[{i}]")
        parts.append((images, labels[idx]))
    return _make_dataset(parts[0], parts[1], classes, LABEL_JPEG_MIRROR, str(path))
