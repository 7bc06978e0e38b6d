"""focaledu.array_pipeline: NumPy input pipelines for machines without TensorFlow."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from focaledu import training
from focaledu.array_pipeline import ArrayPipeline, crop_and_flip
from focaledu.data import CIFAR10_MEAN, CIFAR10_STD, synthetic_cifar10

HAS_TF = importlib.util.find_spec("tensorflow") is not None
TINY = {"embed_dim": 16, "depths": [1, 1, 1]}


def _images(n=6, size=8, seed=0):
    return np.random.default_rng(seed).integers(1, 256, size=(n, size, size, 3), dtype=np.uint8)


@pytest.mark.backends
def test_crop_and_flip_takes_one_padded_window_per_image():
    images = _images(n=40)
    out = crop_and_flip(images, np.random.default_rng(0), padding=2)
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets, flips = set(), 0
    for i in range(len(images)):
        found = [(r, c, f) for r in range(5) for c in range(5) for f in (False, True)
                 if np.array_equal(out[i], (padded[i, r:r + 8, c:c + 8])[:, ::-1 if f else 1])]
        assert found, f"image {i} is not a crop of its padded original"
        offsets.add(found[0][:2])
        flips += found[0][2]
    assert len(offsets) > 5 and 5 < flips < 35  # the windows and flips vary per image


@pytest.mark.backends
def test_batches_are_seeded_and_independent_of_fetch_order():
    x, y = _images(n=50), np.arange(50) % 10
    a = ArrayPipeline(x, y, 16, seed=3, augment=True, shuffle=True, drop_remainder=True)
    b = ArrayPipeline(x, y, 16, seed=3, augment=True, shuffle=True, drop_remainder=True)
    assert len(a) == 3  # the partial batch of 2 is dropped
    backwards = [b[i] for i in reversed(range(len(b)))][::-1]
    for (xa, ya), (xb, yb) in zip([a[i] for i in range(len(a))], backwards):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    first = a[0][0]
    a.on_epoch_end()
    assert not np.array_equal(first, a[0][0])  # a new shuffle and new crops each epoch
    b.start_at(1)  # a resumed run continues the same sequence
    np.testing.assert_array_equal(a[0][0], b[0][0])
    other = ArrayPipeline(x, y, 16, seed=4, augment=True, shuffle=True)
    assert not np.array_equal(first, other[0][0])


@pytest.mark.backends
def test_normalisation_labels_resize_and_order():
    x, y = _images(n=5), np.array([0, 3, 9, 1, 2])
    pipe = ArrayPipeline(x, y, 4, num_classes=10, image_size=(12, 12))
    assert len(pipe) == 2  # the partial batch is kept for evaluation
    images, labels = pipe[0]
    assert images.shape == (4, 12, 12, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, np.eye(10, dtype="float32")[y[:4]])
    plain, ints = ArrayPipeline(x, y, 4)[1]
    np.testing.assert_array_equal(ints, y[4:])
    expected = (x[4:] / 255.0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    np.testing.assert_allclose(plain, expected, rtol=1e-5, atol=1e-5)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        ArrayPipeline(_images(), np.zeros(6), 0)
    with pytest.raises(ValueError, match="same length"):
        ArrayPipeline(_images(), np.zeros(5), 2)
    with pytest.raises(ValueError, match=r"data_pipeline.*'auto', 'tf.data', 'numpy'"):
        training.recipe("quick", data_pipeline="torch")


@pytest.mark.skipif(not HAS_TF, reason="compares with the tf.data pipeline")
def test_same_preprocessing_as_the_tf_data_pipeline():
    data = synthetic_cifar10(n_train=40, n_test=20)
    recipe = training.recipe("quick", batch_size=8, augment=False)
    tf_pipes = training.make_pipelines(data, recipe, 10, (32, 32))
    np_pipes = training.make_pipelines(data, recipe.replace(data_pipeline="numpy"), 10, (32, 32))
    assert training.data_pipeline(recipe) == "tf.data" and isinstance(np_pipes.test, ArrayPipeline)
    for (xt, yt), i in zip(tf_pipes.test.as_numpy_iterator(), range(len(np_pipes.test))):
        xn, yn = np_pipes.test[i]
        np.testing.assert_allclose(xt, xn, atol=1e-5)
        np.testing.assert_array_equal(yt, yn)


@pytest.mark.backends
def test_fit_with_numpy_pipeline_learns_and_resumes(tmp_path):
    kwargs = dict(profile="quick", epochs=3, verbose=0, model_overrides=TINY, data_pipeline="numpy",
                  train_per_class=60, test_per_class=20, batch_size=32, warmup_epochs=1.0, monitor_every=0)
    result = training.fit("focalnet_cifar_tiny", "synthetic", tmp_path, **kwargs)
    assert result.metrics["data_pipeline"] == "numpy"
    assert result.history["loss"][-1] < result.history["loss"][0]
    # Above chance (0.1) by more than three standard errors of a coin with p = 0.1 on the
    # 200 test images: 0.164. Three epochs reach 0.30 on TensorFlow, 0.28 on JAX, 0.20 on PyTorch.
    n = result.metrics["test_images"]
    assert result.test_accuracy > 0.1 + 3 * np.sqrt(0.1 * 0.9 / n)
    assert json.loads((tmp_path / "metrics.json").read_text())["data_pipeline"] == "numpy"
    reloaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    data = training.load_data("synthetic", training.recipe("quick", train_per_class=60, test_per_class=20))
    assert training.evaluate(reloaded, data)["accuracy"] == pytest.approx(result.test_accuracy)


NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None  # import tensorflow now fails, as where it is not installed
from focaledu import training
recipe = training.recipe("quick", epochs=2, train_per_class=8, test_per_class=4, monitor_every=1)
result = training.fit("focalnet_cifar_tiny", "synthetic", sys.argv[1], profile=recipe, verbose=0,
                      model_overrides={"embed_dim": 8, "depths": [1, 1, 1]})
flip = training.evaluate(result.model, training.load_data("synthetic", recipe), flip=True)
print(result.metrics["data_pipeline"], len(result.history["loss"]), flip["n"], flip["flip_accuracy"])
"""


def test_fit_and_evaluate_need_no_tensorflow(tmp_path):
    """The GPU machine has JAX but no TensorFlow: a whole run (run directory,
    monitor figures, checkpoints) and a flip evaluation must not import it."""
    proc = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(tmp_path / "run")], capture_output=True,
                          text=True, env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pipeline, epochs, n, flip_accuracy = proc.stdout.split()[-4:]
    assert (pipeline, epochs, n) == ("numpy", "2", "40") and 0.0 <= float(flip_accuracy) <= 1.0
    assert (tmp_path / "run" / "model.keras").is_file() and (tmp_path / "run" / "metrics.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "monitor").glob("*.png")) == [
        "modulation_epoch_001.png", "modulation_epoch_002.png"]
