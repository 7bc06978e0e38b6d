"""Shared pytest helpers: Keras's own layer-test harness, a scoped global dtype policy, the built wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras.src.testing import TestCase


class _KerasHarness(TestCase):
    """``keras.src.testing.TestCase`` used outside unittest: only its assertions and ``run_layer_test``."""

    def runTest(self):  # unittest needs a test method to instantiate the case
        pass


def run_keras_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape=None, **kwargs):
    """Runs ``keras.src.testing.TestCase.run_layer_test``, the checks Keras runs on its own layers.

    It builds the layer, calls it symbolically and eagerly, checks the output
    shape and the weight counts, round-trips ``get_config`` and serialization,
    runs one compiled training step (``run_training_check``) and calls the
    layer under ``dtype="mixed_float16"`` (``run_mixed_precision_check``):
    eager outputs must have the dtype ``compute_output_spec`` promises and every
    float weight must stay float32. Extra keyword arguments go to
    ``run_layer_test`` unchanged (``call_kwargs``, ``expected_num_trainable_weights``, ...).
    """
    kwargs.setdefault("run_training_check", True)
    kwargs.setdefault("run_mixed_precision_check", True)
    _KerasHarness().run_layer_test(
        layer_cls,
        init_kwargs,
        input_shape=tuple(input_shape),
        expected_output_shape=None if expected_output_shape is None else tuple(expected_output_shape),
        **kwargs,
    )
    if kwargs["run_mixed_precision_check"]:
        # Keras only compares the eager dtype with the layer's own output spec;
        # also require the policy's compute dtype, so a sublayer left at
        # float32 cannot hide behind a matching spec.
        layer = layer_cls(**{**init_kwargs, "dtype": "mixed_float16"})
        x = np.random.default_rng(0).standard_normal(input_shape).astype("float32")
        outputs = keras.tree.flatten(layer(x, **kwargs.get("call_kwargs", None) or {}))
        dtypes = [keras.backend.standardize_dtype(y.dtype) for y in outputs]
        assert dtypes == ["float16"] * len(outputs), f"{layer_cls.__name__} under mixed_float16 returned {dtypes}"
        for sublayer in layer._flatten_layers(include_self=False):
            assert sublayer.dtype_policy.name == "mixed_float16", f"{sublayer.path} has {sublayer.dtype_policy.name}"


@pytest.fixture
def keras_layer_test():
    """The shared Keras layer-test harness, ``run_keras_layer_test``, as a fixture."""
    return run_keras_layer_test


@pytest.fixture
def global_dtype_policy():
    """Sets the global dtype policy for one test (``global_dtype_policy("mixed_float16")``) and restores it."""
    previous = keras.config.dtype_policy()
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="session")
def wheel_files(tmp_path_factory):
    """``{path inside the wheel: bytes}`` of focaledu's wheel, built once from this checkout (as pip would)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(out), str(Path(__file__).resolve().parents[1])], check=True)
    (wheel,) = out.glob("focaledu-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
