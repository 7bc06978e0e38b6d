"""CIFAR-10 wherever it is (:func:`load_cifar10`), a synthetic stand-in, and tf.data input pipelines.

Re-exports :mod:`focaledu.image_dataset`, :mod:`focaledu.readers`, :mod:`focaledu.hf_source`,
:mod:`focaledu.synthetic` and :mod:`focaledu.tf_pipeline`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

from focaledu.image_dataset import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    SYNTHETIC_LABEL,
    CorruptDatasetError,
    DatasetUnavailableError,
    ImageDataset,
    subset_per_class,
    _normalise_limits,
)
from focaledu import hf_source
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
    fallback: str | None = None,
    timeout: float = 5.0,
    time_limit: float = 300.0,
) -> ImageDataset:
    """Load CIFAR-10 from the first place it can be found.

    Looks, in order, at ``source`` or ``$FOCALEDU_CIFAR10``; the Keras cache; the Hugging Face copy
    ``uoft-cs/cifar10`` (if ``datasets`` is installed); ``keras.datasets.cifar10.load_data()``; and, only with
    ``fallback="synthetic"``, :func:`synthetic_cifar10`. The network steps need ``download=True``.

    A path may be the python batches directory (or one containing it), ``cifar-10-python.tar.gz``, an image
    folder ``train/<class>/*`` and ``test/<class>/*`` or a ``.zip`` of one, or a JPEG-bytes ``.npz`` mirror.
    Image-folder and ``.npz`` sources come back class-interleaved, so the validation tail is class-balanced.

    Args:
        source: path to a local copy; overrides the environment variable.
        limit_per_class: keep only the first ``n`` images of each class, or ``(n_train, n_test)``.
        download: allow the network steps.
        fallback: None (raise when nothing is found) or ``"synthetic"``.
        timeout: seconds allowed for each connectivity probe.
        time_limit: seconds the Keras download may take in all.

    Returns:
        An :class:`ImageDataset` whose ``source_label`` names where the data came from.

    Raises:
        ValueError: ``fallback``, ``time_limit`` or ``limit_per_class`` is not accepted.
        FileNotFoundError: ``source`` / ``FOCALEDU_CIFAR10`` names a missing path.
        CorruptDatasetError: (a ``ValueError``) a local file is truncated, corrupt or mislaid; names the file.
        DatasetUnavailableError: (a ``RuntimeError``) nothing found and no fallback; says why for each step.
    """
    limits = _normalise_limits(limit_per_class)
    if fallback not in _FALLBACKS:
        raise ValueError(f"fallback must be one of {_FALLBACKS}, got {fallback!r}")
    if not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    path, origin = _explicit_path(source)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"CIFAR-10 {origin} points at {str(path)!r}, which does not exist.")
        return subset_per_class(_load_from_path(path, limits), limits)
    tried = [("source=", "not given"), (f"${ENV_VAR}", "not set")]
    for cached in _keras_cache_candidates():
        if (cached / "test_batch").is_file():
            return subset_per_class(_load_batches_dir(cached), limits)
    tried.append(("Keras cache", "nothing at " + " or ".join(str(p) for p in _keras_cache_candidates())))
    hf_name = f"Hugging Face {hf_source.HF_DATASET}"
    steps = ((hf_name, lambda: _from_hugging_face(limits, timeout)),
             ("Keras download", lambda: _from_keras_download(limits, timeout, time_limit)))
    for name, attempt in steps:
        if not download:
            tried.append((name, "skipped: download=False"))
            continue
        try:
            return attempt()
        except _NotUsed as why:
            tried.append((name, str(why)))
    if fallback is None:
        raise DatasetUnavailableError(_unavailable_message(tried))
    return _synthetic_fallback(tried, limits)


_FALLBACKS = (None, "synthetic")


class _NotUsed(Exception):
    """A network step was skipped or failed; the message says why."""


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


def _unavailable_message(tried: list[tuple[str, str]]) -> str:
    return (
        "CIFAR-10 is not available. Tried, in order:\n"
        + _tried_lines(tried)
        + "Point focaledu at a local copy, either\n"
        "    load_cifar10(source='/path/to/cifar10-jpeg.zip')   # or cifar-10-batches-py/,\n"
        "                                                        # cifar-10-python.tar.gz, an image folder\n"
        f"or export {ENV_VAR}=/path/to/that/copy.\n"
        "For a run without CIFAR-10, pass fallback='synthetic' or call synthetic_cifar10() "
        "(labelled as synthetic)."
    )


def _tried_lines(tried: list[tuple[str, str]]) -> str:
    return "".join(f"  {name}: {why}\n" for name, why in tried)


def _synthetic_fallback(tried: list[tuple[str, str]], limits) -> ImageDataset:
    # Without limits, as many images as CIFAR-10 has (5,000 / 1,000 per class).
    n_train, n_test = (10 * (n or full) for n, full in zip(limits, (5000, 1000)))
    print(
        "CIFAR-10 not found:\n" + _tried_lines(tried)
        + f"Using synthetic_cifar10(n_train={n_train}, n_test={n_test}, seed=0) instead "
        f"(fallback='synthetic'), labelled {SYNTHETIC_LABEL!r}."
    )
    return synthetic_cifar10(n_train=n_train, n_test=n_test, seed=0)


def _from_hugging_face(limits, timeout: float) -> ImageDataset:
    if hf_source.datasets_module() is None:
        raise _NotUsed("skipped: the `datasets` package is not installed (pip install datasets)")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")  # a mirror, if set
    url = f"{endpoint}/api/datasets/{hf_source.HF_DATASET}"
    if not _network_available(url, timeout):
        raise _NotUsed(f"no network connection to {url} (probe failed or took over {timeout:g} s)")
    try:
        return hf_source.load_hugging_face(hf_source.HF_DATASET, limits)
    except Exception as err:  # hub errors, a changed repo layout ...: try the next step
        raise _NotUsed(f"failed: {err!r}") from err


def _from_keras_download(limits, timeout: float, time_limit: float) -> ImageDataset:
    if not _network_available(_CIFAR10_URL, timeout):
        raise _NotUsed(f"no network connection to {_CIFAR10_URL} (probe failed or took over {timeout:g} s)")
    try:
        return subset_per_class(_download_with_keras(time_limit), limits)
    except Exception as err:  # timeout, urllib, hash mismatch, disk full ...: all mean "not available"
        raise _NotUsed(f"failed: {err}") from err


def _network_available(url: str, timeout: float) -> bool:
    """True if the server of ``url`` answers an HTTPS ``HEAD`` within ``timeout`` seconds (any status).

    A bare TCP connect is not enough: sandboxes accept connections to any address and then say nothing.
    """
    import urllib.error
    import urllib.request

    outcome: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                outcome.append(True)
        except urllib.error.HTTPError:
            outcome.append(True)
        except Exception:  # URLError, timeouts, TLS errors: all mean "no"
            outcome.append(False)

    # DNS resolution ignores socket timeouts, so bound the whole probe by
    # running it in a daemon thread that we stop waiting for.
    thread = threading.Thread(target=probe, name="focaledu-net-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(outcome) and outcome[0]


# Run as a child process: numpy backend, because only Keras' downloader is needed.
_KERAS_DOWNLOAD = "import keras; keras.datasets.cifar10.load_data()"


def _download_with_keras(time_limit: float) -> ImageDataset:
    """Run ``keras.datasets.cifar10.load_data()`` in a child process, killed after ``time_limit`` seconds.

    Keras' downloader has no timeout and a thread cannot be stopped.
    """
    env = dict(os.environ, KERAS_BACKEND="numpy", KERAS_HOME=str(_keras_home()))
    try:
        child = subprocess.run([sys.executable, "-c", _KERAS_DOWNLOAD], env=env, stderr=subprocess.PIPE,
                               text=True, timeout=time_limit)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"gave up after time_limit={time_limit:g} s") from None
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines() or [f"exit status {child.returncode}"]
        raise OSError(lines[-1])
    for cached in _keras_cache_candidates():
        if (cached / "test_batch").is_file():
            return dataclasses.replace(_load_batches_dir(cached), source=f"keras download ({cached})")
    raise OSError(f"the download left no test_batch under {_keras_home() / 'datasets'}")
