"""CIFAR-10 loading, a synthetic stand-in, and tf.data input pipelines.

Three layers of functionality, from raw bytes to batches:

* :func:`load_cifar10` finds CIFAR-10 wherever it is (an explicit path, the
  ``FOCALEDU_CIFAR10`` environment variable, the Keras cache, or a bounded
  download attempt) and returns an :class:`ImageDataset`.
* :func:`synthetic_cifar10` builds a procedural, learnable 10-class dataset of
  the same shape, for quick runs and machines without CIFAR-10. It is always
  labelled as synthetic so no figure can pass it off as CIFAR-10.
* :func:`make_datasets`, :func:`train_pipeline` and :func:`eval_pipeline` turn
  arrays into deterministic ``tf.data`` pipelines with Keras preprocessing
  layers (padded random crop, horizontal flip, CIFAR-10 normalisation).

TensorFlow is imported lazily, inside the pipeline functions, so that
``import focaledu.data`` stays cheap; ``tf.*`` is used in this module only.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import tarfile
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "ENV_VAR",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_LABEL",
    "CorruptDatasetError",
    "DatasetUnavailableError",
    "ImageDataset",
    "Pipelines",
    "eval_pipeline",
    "load_cifar10",
    "make_augmenter",
    "make_datasets",
    "make_normalizer",
    "split_validation",
    "synthetic_cifar10",
    "train_pipeline",
]

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

ENV_VAR = "FOCALEDU_CIFAR10"

LABEL_CIFAR10 = "CIFAR-10"
LABEL_JPEG_MIRROR = "CIFAR-10 (JPEG mirror)"
LABEL_IMAGE_FOLDER = "CIFAR-10 (image folder)"
SYNTHETIC_LABEL = "synthetic (procedural, not CIFAR-10)"

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "x-cross",
    "h-stripes",
    "v-stripes",
    "d-stripes",
    "checker",
)

_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_SPLITS = ("train", "test")


class DatasetUnavailableError(RuntimeError):
    """CIFAR-10 could not be found locally and could not be downloaded."""


class CorruptDatasetError(ValueError):
    """A dataset file exists but is truncated, corrupt or in the wrong format."""


# --------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """Images and labels of a train/test split, plus where they came from.

    Unpacks like ``keras.datasets.cifar10.load_data()``::

        (x_train, y_train), (x_test, y_test) = load_cifar10()

    Attributes:
        x_train, x_test: ``uint8`` arrays of shape ``(N, 32, 32, 3)``.
        y_train, y_test: ``int64`` arrays of shape ``(N,)``.
        class_names: Name of each label index.
        source_label: Short provenance for figure captions, e.g.
            ``"CIFAR-10"``, ``"CIFAR-10 (JPEG mirror)"`` or
            ``"synthetic (procedural, not CIFAR-10)"``.
        source: Where the data came from (a path, or a description).
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
# load_cifar10: resolution order
# --------------------------------------------------------------------------


def load_cifar10(
    source: str | os.PathLike | None = None,
    *,
    limit_per_class: int | tuple[int, int] | None = None,
    download: bool = True,
    timeout: float = 5.0,
) -> ImageDataset:
    """Load CIFAR-10 from the first place it can be found.

    Resolution order:

    1. ``source``, if given;
    2. the ``FOCALEDU_CIFAR10`` environment variable, if set and non-empty;
    3. the Keras cache (``$KERAS_HOME`` or ``~/.keras``, under
       ``datasets/cifar-10-batches-py-target/cifar-10-batches-py`` or the
       older ``datasets/cifar-10-batches-py``);
    4. ``keras.datasets.cifar10.load_data()``, but only if ``download`` is
       true and the CIFAR host answers a quick connection probe.

    A path (1 or 2) may point at any of:

    * the official python batches directory ``cifar-10-batches-py``
      (``data_batch_1`` .. ``data_batch_5``, ``test_batch``), or a directory
      that contains it;
    * the official ``cifar-10-python.tar.gz`` (read without extracting);
    * an image folder ``train/<class>/*`` and ``test/<class>/*``, possibly
      one level down (``cifar10/train/...``);
    * a ``.zip`` of such a folder (read in place with Pillow, no extraction);
    * a ``.npz`` JPEG-bytes mirror with arrays ``jpeg``, ``offsets``,
      ``labels``, ``split`` (0 = train, 1 = test) and ``classes``.

    Image-folder and ``.npz`` sources come back class-interleaved (class 0,
    1, ..., 9, 0, 1, ...; files in sorted order within a class) so that the last 10 %
    used for validation is class-balanced, as it nearly is in the official
    randomly ordered batches.

    Args:
        source: Path to a local copy; overrides the environment variable.
        limit_per_class: Keep only the first ``n`` images of each class (in
            the order above) for quick runs; an ``(n_train, n_test)`` pair
            sets the two splits separately. Deterministic.
        download: Allow step 4.
        timeout: Seconds allowed for the connectivity probe, so an offline
            machine fails fast instead of hanging. The download itself runs
            with a socket timeout of ``max(timeout, 30)`` seconds per read.

    Returns:
        An :class:`ImageDataset`; ``source_label`` says ``"CIFAR-10"`` or
        ``"CIFAR-10 (JPEG mirror)"`` (lossy JPEG copies).

    Raises:
        FileNotFoundError: ``source`` / ``FOCALEDU_CIFAR10`` names a missing path.
        CorruptDatasetError: (a ``ValueError``) a file is truncated, corrupt or
            not laid out as described; the message names the file.
        DatasetUnavailableError: (a ``RuntimeError``) nothing local was found
            and downloading was disabled, impossible or failed.
    """
    limits = _normalise_limits(limit_per_class)
    path, origin = _explicit_path(source)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"CIFAR-10 {origin} points at {str(path)!r}, which does not exist.")
        return _apply_limits(_load_from_path(path, limits), limits)
    for cached in _keras_cache_candidates():
        if (cached / "test_batch").is_file():
            return _apply_limits(_load_batches_dir(cached), limits)
    return _apply_limits(_download_or_fail(download, timeout), limits)


def _explicit_path(source) -> tuple[Path | None, str]:
    if source is not None:
        return Path(source).expanduser(), "source="
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser(), f"${ENV_VAR}"
    return None, ""


def _load_from_path(path: Path, limits: tuple[int | None, int | None]) -> ImageDataset:
    """Dispatch on what ``path`` looks like (see :func:`load_cifar10`)."""
    name = path.name.lower()
    if path.is_dir():
        return _load_directory(path, limits)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _load_tarball(path)
    if name.endswith(".zip"):
        return _load_image_zip(path, limits)
    if name.endswith(".npz"):
        return _load_jpeg_npz(path, limits)
    raise CorruptDatasetError(
        f"Don't know how to read {str(path)!r}: expected a cifar-10-batches-py "
        "directory, cifar-10-python.tar.gz, an image folder, a .zip or a .npz."
    )


def _load_directory(path: Path, limits) -> ImageDataset:
    for candidate in (path, path / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").exists() or (candidate / "test_batch").exists():
            return _load_batches_dir(candidate)
    return _load_image_folder(path, limits)


def _keras_home() -> Path:
    # Mirrors keras.src.backend.config, evaluated now rather than at import
    # time so that KERAS_HOME / HOME changes are honoured.
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home)


def _keras_cache_candidates() -> list[Path]:
    datasets = _keras_home() / "datasets"
    return [
        datasets / "cifar-10-batches-py-target" / "cifar-10-batches-py",  # Keras >= 3.6
        datasets / "cifar-10-batches-py",  # older Keras
    ]


def _unavailable_message(reason: str) -> str:
    cache = ", ".join(str(p) for p in _keras_cache_candidates())
    return (
        f"CIFAR-10 is not available: {reason}.\n"
        f"Checked: no source= argument, ${ENV_VAR} is not set, no Keras cache at {cache}.\n"
        "Point focaledu at a local copy, either\n"
        "    load_cifar10(source='/path/to/cifar10-jpeg.zip')   # or cifar-10-batches-py/,\n"
        "                                                        # cifar-10-python.tar.gz, an image folder\n"
        f"or export {ENV_VAR}=/path/to/that/copy.\n"
        "For a run without CIFAR-10, use synthetic_cifar10() (it is labelled as synthetic)."
    )


def _download_or_fail(download: bool, timeout: float) -> ImageDataset:
    if not download:
        raise DatasetUnavailableError(_unavailable_message("downloading was disabled (download=False)"))
    if not _network_available(_CIFAR10_URL, timeout):
        raise DatasetUnavailableError(
            _unavailable_message(f"no network connection to {_CIFAR10_URL} (probe timed out or failed)")
        )
    try:
        train, test = _download_with_keras(timeout)
    except Exception as err:  # urllib, hash mismatch, disk full ...: all mean "not available"
        raise DatasetUnavailableError(_unavailable_message(f"the Keras download failed ({err!r})")) from err
    # load_data() follows keras.config.image_data_format(); we always return NHWC.
    train, test = [(x.transpose(0, 2, 3, 1) if x.shape[1] == 3 else x, y) for x, y in (train, test)]
    cache = _keras_cache_candidates()[0]
    return _make_dataset(train, test, CIFAR10_CLASSES, LABEL_CIFAR10, f"keras download ({cache})")


def _network_available(url: str, timeout: float) -> bool:
    """True if an HTTPS ``HEAD`` of ``url`` answers within ``timeout`` seconds.

    A bare TCP connect is not enough: sandboxes and captive networks accept
    connections to any address and then say nothing, so the probe asks for
    the real file's headers (through any configured proxy, like Keras will).
    """
    import urllib.request

    outcome: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                outcome.append(response.status < 400)
        except Exception:  # URLError, timeouts, TLS errors: all mean "no"
            outcome.append(False)

    # DNS resolution ignores socket timeouts, so bound the whole probe by
    # running it in a daemon thread that we stop waiting for.
    thread = threading.Thread(target=probe, name="focaledu-net-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(outcome) and outcome[0]


def _download_with_keras(timeout: float):
    """Run ``keras.datasets.cifar10.load_data()`` with a socket timeout.

    Keras' downloader has no timeout of its own; the default socket timeout
    turns a stalled transfer into an exception instead of a hang.
    """
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(max(timeout, 30.0))
    try:
        return keras.datasets.cifar10.load_data()
    finally:
        socket.setdefaulttimeout(previous)


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


def _first_per_class(y: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the first ``n`` examples of each class, in original order."""
    if n is None:
        return np.arange(len(y))
    return np.flatnonzero(_class_ranks(y) < n)


def _round_robin(y: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the first ``n`` examples of each class, ordered class 0, 1, ..., k-1, 0, 1, ...

    The folder loaders' order (:func:`_interleave`): a class-sorted source
    would otherwise put whole classes into the held-out tail.
    """
    rank = _class_ranks(y)
    keep = _first_per_class(y, n)
    return keep[np.lexsort((y[keep], rank[keep]))]


def _apply_limits(data: ImageDataset, limits) -> ImageDataset:
    if limits == (None, None):
        return data
    keep_train = _first_per_class(data.y_train, limits[0])
    keep_test = _first_per_class(data.y_test, limits[1])
    return _make_dataset(
        (data.x_train[keep_train], data.y_train[keep_train]),
        (data.x_test[keep_test], data.y_test[keep_test]),
        data.class_names,
        data.source_label,
        data.source,
    )


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
    """Unpickler that only builds numpy arrays and plain containers.

    The official batches are pickles; restricting globals means a file
    someone hands you cannot run code when loaded.
    """

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
    """Group ``[prefix/]split/class/file`` paths as ``{split: {class: [paths]}}``.

    ``prefix`` may be empty or one directory (e.g. ``cifar10/``); exactly one
    prefix must hold both splits.
    """
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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:
            array = np.asarray(image.convert("RGB"))
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


# --------------------------------------------------------------------------
# Synthetic stand-in
# --------------------------------------------------------------------------


def synthetic_cifar10(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> ImageDataset:
    """A procedural 10-class dataset shaped like CIFAR-10 (32x32x3 ``uint8``).

    Each class is a pattern (disk, square, triangle, plus, ring, x-cross,
    horizontal / vertical / diagonal stripes, checkerboard) drawn with random
    position, size, small rotation, random colours and pixel noise, so the
    class is in the *shape*, not the colour. A small conv net learns it far
    above chance within a few epochs; it is not a benchmark.

    Labels cycle 0..9 so every prefix or suffix is class-balanced. The train
    and test sets come from independent random streams of ``seed``, so
    changing ``n_train`` does not change the test set.

    Returns:
        An :class:`ImageDataset` whose ``source_label`` is always
        ``"synthetic (procedural, not CIFAR-10)"``.
    """
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    train = _synthetic_split(n_train, np.random.default_rng(train_seq))
    test = _synthetic_split(n_test, np.random.default_rng(test_seq))
    return _make_dataset(train, test, SYNTHETIC_CLASSES, SYNTHETIC_LABEL, f"synthetic_cifar10(seed={seed})")


def _synthetic_split(n: int, rng: np.random.Generator, chunk: int = 4096):
    labels = np.arange(n, dtype=np.int64) % 10
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        images[start:stop] = _draw_patterns(labels[start:stop], rng)
    return images, labels


def _draw_patterns(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render one image per label, vectorised over the batch."""
    n = len(labels)
    f32 = np.float32
    grid = (np.arange(32, dtype=f32) + 0.5) / 16.0 - 1.0  # pixel centres in [-1, 1]
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    centre = rng.uniform(-0.35, 0.35, size=(n, 2, 1, 1)).astype(f32)
    scale = rng.uniform(0.45, 0.7, size=(n, 1, 1)).astype(f32)
    angle = rng.uniform(-0.3, 0.3, size=(n, 1, 1)).astype(f32)  # about +-17 degrees
    freq = rng.uniform(2.0, 3.5, size=(n, 1, 1)).astype(f32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(f32)
    cos, sin = np.cos(angle), np.sin(angle)
    geometry = {
        # Shape coordinates: centred, rotated and scaled per image.
        "u": (cos * (xx - centre[:, 0]) + sin * (yy - centre[:, 1])) / scale,
        "v": (-sin * (xx - centre[:, 0]) + cos * (yy - centre[:, 1])) / scale,
        # Stripe coordinates: whole image, rotated only.
        "xs": cos * xx + sin * yy,
        "ys": -sin * xx + cos * yy,
        "freq": freq,
        "phase": phase,
    }
    mask = np.zeros((n, 32, 32), dtype=bool)
    for label in np.unique(labels):
        chosen = labels == label
        mask[chosen] = _pattern_mask(int(label), **{k: g[chosen] for k, g in geometry.items()})
    background = rng.uniform(0, 255, size=(n, 1, 1, 3)).astype(f32)
    # Foreground differs from background by >= 70 in every channel (mod 256),
    # so the pattern is visible whatever the colours.
    foreground = (background + rng.uniform(70, 185, size=(n, 1, 1, 3)).astype(f32)) % 256
    image = background + mask[..., None] * (foreground - background)
    image += 12.0 * rng.standard_normal(size=image.shape, dtype=f32)
    np.clip(image, 0, 255, out=image)
    return (image + 0.5).astype(np.uint8)


def _pattern_mask(label: int, u, v, xs, ys, freq, phase) -> np.ndarray:
    """Boolean mask of class ``label`` (index into SYNTHETIC_CLASSES)."""
    arm = 0.28
    if label in (0, 4):  # disk, ring
        r = np.sqrt(u**2 + v**2)
        return (r < 1.0) & (r > (0.55 if label == 4 else -1.0))
    if label == 1:  # square
        return np.maximum(abs(u), abs(v)) < 0.85
    if label == 2:  # triangle, apex up
        return (v < 0.7) & (abs(u) < 0.6 * (v + 0.9))
    if label in (3, 5):  # plus, and the same rotated by 45 degrees
        if label == 5:
            u, v = (u + v) / np.sqrt(2), (u - v) / np.sqrt(2)
        return ((abs(u) < arm) | (abs(v) < arm)) & (np.maximum(abs(u), abs(v)) < 1.0)
    wave = lambda t: np.sin(np.pi * freq * t + phase) > 0  # noqa: E731
    if label == 6:
        return wave(ys)  # horizontal stripes
    if label == 7:
        return wave(xs)  # vertical stripes
    if label == 8:
        return wave((xs + ys) / np.sqrt(2))  # diagonal stripes
    return wave(xs) ^ wave(ys)  # checkerboard


# --------------------------------------------------------------------------
# tf.data pipelines
# --------------------------------------------------------------------------


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
