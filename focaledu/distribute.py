"""Synchronous data-parallel training with Keras' own engines (JAX ``DataParallel``, TensorFlow ``MirroredStrategy``).

``Recipe.batch_size`` stays the global batch, so the learning-rate schedule does not change with the device
count. On a CPU, test with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (JAX) or
:func:`split_tensorflow_cpu` (TensorFlow).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["check_devices", "data_parallel", "device_names", "split_tensorflow_cpu"]


def device_names(backend: str | None = None) -> list[str]:
    """The devices :func:`data_parallel` can use: the accelerators if any, else the CPU devices."""
    import keras

    backend = backend or keras.backend.backend()
    if backend == "jax":
        import jax

        for kind in ("tpu", "gpu"):
            try:
                found = jax.devices(kind)
            except RuntimeError:  # no such platform
                continue
            if found:
                return [f"{d.platform}:{d.id}" for d in found]
        return [f"cpu:{d.id}" for d in jax.devices("cpu")]
    if backend == "tensorflow":
        import tensorflow as tf

        for kind in ("TPU", "GPU", "CPU"):
            found = tf.config.list_logical_devices(kind)
            if found:
                return [d.name for d in found]
    raise ValueError(f"Data-parallel training supports the 'jax' and 'tensorflow' backends; this is {backend!r}, "
                     "for which Keras's distribution API has no implementation. Train on one device, or set "
                     "KERAS_BACKEND=jax or tensorflow before Keras is imported.")


def split_tensorflow_cpu(n: int = 2) -> None:
    """Splits TensorFlow's CPU into ``n`` logical devices (only before TensorFlow initialises)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(n))


def check_devices(devices: int, batch_size: int | None = None, available: list[str] | None = None) -> int:
    """``devices`` if that many are visible and split ``batch_size`` evenly, else a ValueError saying why."""
    available = device_names() if available is None else available
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"`devices` must be a positive integer (the number of devices); received {devices!r}.")
    if devices > len(available):
        raise ValueError(
            f"`devices={devices}` but only {len(available)} device(s) are visible: {available}. On a CPU, make "
            "virtual devices first: XLA_FLAGS=--xla_force_host_platform_device_count=N for JAX, "
            "focaledu.distribute.split_tensorflow_cpu(N) before TensorFlow starts."
        )
    if batch_size is not None and batch_size % devices:
        raise ValueError(
            f"The global `batch_size={batch_size}` does not split evenly over `devices={devices}`; "
            f"use a multiple of {devices}."
        )
    return devices


_INITIALIZED = False


def _initialize_multi_host():
    """``keras.distribution.initialize()`` once, when the ``KERAS_DISTRIBUTION_*`` multi-host variables ask for it."""
    global _INITIALIZED
    import keras

    if not _INITIALIZED and int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1) > 1:
        keras.distribution.initialize()
        _INITIALIZED = True


@contextlib.contextmanager
def data_parallel(devices: int | None = None, batch_size: int | None = None):
    """Context manager: builds, compiles and fits everything inside on ``devices`` devices, data-parallel.

    Args:
        devices: how many devices; None or 1: the default single-device path, unchanged.
        batch_size: the global batch, checked to split evenly.

    Yields:
        The device names used.

    Example::

        with data_parallel(2, batch_size=128):
            model = FocalNet.from_preset("focalnet_cifar_tiny")
            model.compile(...)
            model.fit(train_ds)
    """
    import keras

    backend = keras.backend.backend()
    if devices is None or devices == 1:
        yield device_names(backend)[:1] if backend in ("jax", "tensorflow") else [backend]
        return
    available = device_names(backend)
    names = available[:check_devices(devices, batch_size, available)]
    if backend == "jax":
        _initialize_multi_host()
        previous = keras.distribution.distribution()
        all_devices = keras.distribution.list_devices(names[0].split(":")[0])
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=all_devices[: len(names)]))
        try:
            yield names
        finally:
            keras.distribution.set_distribution(previous)
        return
    import tensorflow as tf

    on_cpu = all("CPU" in name for name in names)
    # NCCL, MirroredStrategy's default all-reduce, exists only between GPUs.
    strategy = tf.distribute.MirroredStrategy(
        devices=names, cross_device_ops=tf.distribute.ReductionToOneDevice() if on_cpu else None
    )
    with strategy.scope():
        yield names
