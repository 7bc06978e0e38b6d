"""CIFAR-10 wherever it is, a synthetic stand-in, and tf.data input pipelines.

The entry point is :func:`load_cifar10`: it finds CIFAR-10 (an explicit
path, the ``FOCALEDU_CIFAR10`` environment variable, the Keras cache, or a
bounded download attempt) and returns an :class:`ImageDataset`. The rest
lives in one module per concept and is re-exported here:

* :mod:`focaledu.image_dataset`: :class:`ImageDataset`, CIFAR-10's class
  names and statistics, the errors;
* :mod:`focaledu.readers`: the file formats (python batches, ``.tar.gz``,
  image folders, zips, the JPEG-bytes ``.npz``);
* :mod:`focaledu.synthetic`: :func:`synthetic_cifar10`, a procedural,
  learnable 10-class dataset of the same shape, always labelled as synthetic;
* :mod:`focaledu.tf_pipeline`: :func:`make_datasets`, :func:`train_pipeline`
  and :func:`eval_pipeline`, deterministic ``tf.data`` pipelines with Keras
  preprocessing layers.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from focaledu.image_dataset import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    LABEL_CIFAR10,
    SYNTHETIC_LABEL,
    CorruptDatasetError,
    DatasetUnavailableError,
    ImageDataset,
    _apply_limits,
    _make_dataset,
    _normalise_limits,
)
from focaledu.readers import _load_batches_dir, _load_image_folder, _load_image_zip, _load_jpeg_npz, _load_tarball
from focaledu.synthetic import SYNTHETIC_CLASSES, synthetic_cifar10
from focaledu.tf_pipeline import (
    Pipelines,
    eval_pipeline,
    make_augmenter,
    make_datasets,
    make_normalizer,
    split_validation,
    train_pipeline,
)

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

ENV_VAR = "FOCALEDU_CIFAR10"

_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


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
