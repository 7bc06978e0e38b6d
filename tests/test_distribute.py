"""Data-parallel training (focaledu.distribute) on virtual CPU devices.

Each check runs in a fresh process because the virtual devices must exist
before the backend starts: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
for JAX, ``split_tensorflow_cpu(2)`` (logical CPU devices) for TensorFlow.
Both backends run from this one file, so it is not marked ``backends``.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import pytest

from focaledu import distribute, training

SCRIPTS = Path(__file__).resolve().parent / "scripts"
BACKENDS = ["tensorflow", "jax"]


#: XLA's in-process all-reduce between virtual CPU devices can deadlock when
#: the devices' Eigen work shares a thread pool as small as the device count
#: (seen once in CI on 2 cores: "Termination timeout for `all reduce
#: RendezvousKey...` exceeded", SIGABRT). Single-threaded Eigen per device
#: avoids that; a run that still dies of it is retried once, with a warning.
JAX_CPU_FLAGS = "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false"
XLA_RENDEZVOUS_TIMEOUT = "Termination timeout for `all reduce"


def _run(script, backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if backend == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + JAX_CPU_FLAGS).strip()
    for attempt in (1, 2):
        proc = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode == 0 or XLA_RENDEZVOUS_TIMEOUT not in proc.stderr or attempt == 2:
            break
        warnings.warn(f"{script} on {backend}: XLA CPU all-reduce rendezvous timed out; retrying once")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_step_on_two_devices_equals_one_device(backend):
    """Same initial weights, same global batch of 8: one step split 4 + 4 over
    two devices gives the weights of one step on one device. Plain SGD shows
    the gradients are averaged over the global batch (a sum over replicas
    would double the update); AdamW is the recipe's optimizer with weight decay
    and global-norm clipping."""
    report = _run("one_step_data_parallel.py", backend, 2)
    print(json.dumps(report))
    for optimizer in ("sgd", "adamw"):
        r = report[optimizer]
        assert r["replicas"] == [1, 2]
        assert len(r["device_names"]) == 2
        assert r["max_abs_update"] > 1e-3  # the step moved the weights
    assert report["sgd"]["max_abs_diff"] < 1e-5
    # Adam's first step is ~lr * g / |g| per weight, which amplifies float
    # round-off on near-zero gradients; still three orders below the update.
    assert report["adamw"]["max_abs_diff"] < 1e-3 * report["adamw"]["max_abs_update"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_parallel_run_resumes_and_checkpoints(backend, tmp_path):
    """A quick run on 2 devices killed after epoch 1 resumes at epoch 2 with
    the saved weights and optimizer position; best.keras loads; the modulation
    monitor still draws."""
    r = _run("resume_data_parallel.py", backend, 2, tmp_path / "run")
    assert r["first_epoch_after_resume"] == 1 and r["resumed_from_epoch"] == 1
    assert r["restored_equal"]
    assert r["iterations_after_resume"] == r["steps_per_epoch"]
    assert r["history_epochs"] == [0, 1]
    assert len(r["devices"]) == 2
    assert r["best_parameters"] == r["parameters"]
    assert r["monitor_figures"] == ["modulation_epoch_001.png", "modulation_epoch_002.png"]


@pytest.mark.backends
def test_check_devices_errors():
    with pytest.raises(ValueError, match=r"`devices=3` but only 2 device\(s\).*xla_force_host_platform_device_count"):
        distribute.check_devices(3, 128, available=["cpu:0", "cpu:1"])
    with pytest.raises(ValueError, match=r"`batch_size=127` does not split evenly over `devices=2`"):
        distribute.check_devices(2, 127, available=["cpu:0", "cpu:1"])
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="`devices` must be a positive integer"):
            distribute.check_devices(bad, 128, available=["cpu:0", "cpu:1"])
    assert distribute.check_devices(2, 128, available=["cpu:0", "cpu:1"]) == 2


@pytest.mark.backends
def test_single_device_path_is_unchanged():
    """devices=None/1 sets no strategy or distribution (the default path)."""
    with distribute.data_parallel(None, batch_size=7) as names:
        assert len(names) == 1
        if keras.backend.backend() == "jax":
            assert keras.distribution.distribution() is None
        else:
            import tensorflow as tf

            assert not tf.distribute.has_strategy()


@pytest.mark.backends
def test_fit_refuses_more_devices_than_visible():
    import keras

    if keras.backend.backend() not in ("jax", "tensorflow"):
        with pytest.raises(ValueError, match="supports the 'jax' and 'tensorflow' backends.*KERAS_BACKEND=jax"):
            training.fit("focalnet_cifar_tiny", "synthetic", None, devices=2,
                         model_overrides={"embed_dim": 8, "depths": [1, 1, 1]}, train_per_class=4, test_per_class=2)
        return
    visible = len(distribute.device_names())
    with pytest.raises(ValueError, match=f"`devices={visible + 1}` but only {visible}"):
        training.fit("focalnet_cifar_tiny", "synthetic", None, devices=visible + 1,
                     model_overrides={"embed_dim": 8, "depths": [1, 1, 1]}, train_per_class=4, test_per_class=2)


def test_scaled_to_is_linear_in_the_global_batch():
    base = training.recipe("full")
    doubled = base.scaled_to(256)
    assert doubled.batch_size == 256
    for name in ("learning_rate", "warmup_learning_rate", "min_learning_rate"):
        assert getattr(doubled, name) == pytest.approx(2 * getattr(base, name))
    assert doubled.weight_decay == base.weight_decay and doubled.epochs == base.epochs
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        base.scaled_to(0)
