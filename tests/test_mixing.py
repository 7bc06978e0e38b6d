"""Mixup / CutMix batches (``array_pipeline.mix_batch``) and flip test-time augmentation (``training.evaluate``)."""

import importlib.util

import keras
import numpy as np
import pytest

from focaledu import pipelines, training
from focaledu.array_pipeline import ArrayPipeline, mix_batch
from focaledu.data import synthetic_cifar10

HAS_TF = importlib.util.find_spec("tensorflow") is not None
TINY = {"embed_dim": 8, "depths": [1, 1, 1]}


def _batch(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, size, size, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, n)]
    return images, labels


def test_mixup_blends_each_image_with_its_reverse_in_the_label_proportion():
    images, labels = _batch()
    out, mixed = mix_batch(images, labels, np.random.default_rng(1), mixup_alpha=0.8)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)
    # One lambda for the whole batch, read back from the labels of a pair with different classes.
    i = next(i for i in range(len(labels)) if labels[i].argmax() != labels[-1 - i].argmax())
    lam = mixed[i, labels[i].argmax()]
    assert 0 < lam < 1
    np.testing.assert_allclose(out, lam * images + (1 - lam) * images[::-1], rtol=1e-5, atol=1e-6)
    again, _ = mix_batch(images, labels, np.random.default_rng(1), mixup_alpha=0.8)
    np.testing.assert_array_equal(out, again)  # seeded


def test_cutmix_pastes_one_box_and_labels_follow_its_area():
    images, labels = _batch()
    for seed in range(20):  # some boxes are clipped at the border
        out, mixed = mix_batch(images, labels, np.random.default_rng(seed), cutmix_alpha=1.0)
        pasted = np.all(out == images[::-1], axis=(0, 3)) & ~np.all(out == images, axis=(0, 3))
        kept = np.all(out == images, axis=(0, 3))
        assert np.all(pasted | kept)  # every pixel is one or the other
        rows, cols = np.nonzero(pasted)
        if len(rows):  # the pasted pixels form one rectangle
            assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        lam = 1 - pasted.mean()
        np.testing.assert_allclose(mixed, lam * labels + (1 - lam) * labels[::-1], rtol=1e-5, atol=1e-6)


def test_switch_probability_and_off():
    images, labels = _batch()
    same = mix_batch(images, labels, np.random.default_rng(0))
    assert same[0] is images and same[1] is labels  # both alphas 0: untouched
    for seed in range(5):
        cut, _ = mix_batch(images, labels, np.random.default_rng(seed), 0.8, 1.0, switch_prob=1.0)
        assert np.all((cut == images) | (cut == images[::-1]))  # CutMix: only copied pixels
        blend, _ = mix_batch(images, labels, np.random.default_rng(seed), 0.8, 1.0, switch_prob=0.0)
        assert not np.any(np.all(blend == images, axis=(1, 2, 3)))  # Mixup: every image blended


def test_pipeline_mixes_one_hot_batches_reproducibly():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), np.arange(40) % 10
    make = lambda: ArrayPipeline(x, y, 8, seed=5, augment=True, shuffle=True, num_classes=10,  # noqa: E731
                                 mixup_alpha=0.8, cutmix_alpha=1.0)
    a, b = make(), make()
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i][0], b[i][0])
        labels = a[i][1]
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    assert any((a[i][1] > 0).sum(axis=1).max() == 2 for i in range(len(a)))  # soft labels: two classes
    plain = ArrayPipeline(x, y, 8, seed=5, augment=True, shuffle=True, num_classes=10)
    assert not np.array_equal(plain[0][0], a[0][0])


def test_mixing_arguments_are_checked():
    x, y = np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4)
    with pytest.raises(ValueError, match="num_classes"):
        ArrayPipeline(x, y, 2, mixup_alpha=0.8)
    with pytest.raises(ValueError, match="`cutmix_alpha` must be a number >= 0"):
        ArrayPipeline(x, y, 2, num_classes=10, cutmix_alpha=-1)
    with pytest.raises(ValueError, match="`mix_switch_prob` must be in"):
        ArrayPipeline(x, y, 2, num_classes=10, mix_switch_prob=2)
    with pytest.raises(ValueError, match="mixup_alpha"):
        training.recipe("quick", mixup_alpha=-0.1)
    with pytest.raises(ValueError, match=r"data_pipeline.*'numpy' or 'auto'"):
        training.recipe("quick", cutmix_alpha=1.0, data_pipeline="tf.data")
    with pytest.raises(ValueError, match="test_time_flip"):
        training.recipe("quick", test_time_flip="yes")
    assert training.data_pipeline(training.recipe("quick", mixup_alpha=0.2)) == "numpy"


def test_evaluation_batches_divide_the_splits():
    assert pipelines._even_batch(1024, 5000, 10000) == 1000
    assert pipelines._even_batch(256, 5000, 10000) == 250
    assert pipelines._even_batch(128, 0, 1000) == 125
    assert pipelines._even_batch(64, 97) == 64  # no divisor above half the target: keep it


@pytest.mark.backends
@pytest.mark.parametrize("pipeline", ["numpy", pytest.param("tf.data", marks=pytest.mark.skipif(
    not HAS_TF, reason="the tf.data pipeline needs TensorFlow"))])
def test_flip_tta_averages_the_softmax_of_image_and_mirror(pipeline):
    keras.utils.set_random_seed(0)
    data = synthetic_cifar10(n_train=20, n_test=30, seed=0)
    recipe = training.recipe("quick", data_pipeline=pipeline, augment=False)
    model = training.build_model("focalnet_cifar_tiny", recipe, **TINY)
    test = training.make_pipelines(data, recipe, 10).test
    result = training.evaluate(model, test, flip=True)

    images = training.preprocess_images(data.x_test)
    probs = [keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0)))
             for x in (images, images[:, :, ::-1])]
    expected = np.mean(np.argmax((probs[0] + probs[1]) / 2, axis=1) == data.y_test)
    assert result["flip_accuracy"] == pytest.approx(expected)
    assert result["accuracy"] == pytest.approx(np.mean(np.argmax(probs[0], axis=1) == data.y_test))
    assert "flip_accuracy" not in training.evaluate(model, test)


def _label_reader():
    """A model that reads the class off the image (every pixel holds ``label / 255``)."""
    return keras.Sequential([
        keras.Input((4, 4, 3)),
        keras.layers.Lambda(lambda t: 10.0 * keras.ops.one_hot(keras.ops.cast(keras.ops.round(t[:, 0, 0, 0] * 255),
                                                                             "int32"), 10)),
    ])


@pytest.mark.backends
@pytest.mark.parametrize("pipeline", ["numpy", pytest.param("tf.data", marks=pytest.mark.skipif(
    not HAS_TF, reason="the tf.data pipeline needs TensorFlow"))])
def test_evaluate_pairs_each_prediction_with_its_own_label_on_a_shuffled_pipeline(pipeline):
    # Iterating a reshuffling pipeline once for labels and again for predictions pairs them at random
    # (about 10 % here); one pass keeps every label with its image.
    labels = np.arange(60) % 10
    images = np.broadcast_to(labels[:, None, None, None], (60, 4, 4, 3)).astype("uint8")
    if pipeline == "numpy":
        test = ArrayPipeline(images, labels, 8, shuffle=True, scale="unit")
    else:
        import tensorflow as tf

        test = tf.data.Dataset.from_tensor_slices((images / 255.0, labels)).shuffle(60, seed=0).batch(8)
    result = training.evaluate(_label_reader(), test, flip=True)
    assert result["n"] == 60
    assert result["accuracy"] == 1.0 and result["flip_accuracy"] == 1.0


@pytest.mark.backends
def test_fit_with_mixing_records_it(tmp_path):
    result = training.fit("focalnet_cifar_tiny", "synthetic", None, profile="quick", epochs=1, verbose=0,
                          model_overrides=TINY, train_per_class=20, test_per_class=5, batch_size=16,
                          mixup_alpha=0.8, cutmix_alpha=1.0, test_time_flip=True, monitor_every=0)
    m = result.metrics
    assert m["data_pipeline"] == "numpy"
    assert m["recipe"]["mixup_alpha"] == 0.8 and m["recipe"]["cutmix_alpha"] == 1.0
    assert 0 <= m["test_accuracy_flip"] <= 1 and np.isfinite(result.history["loss"][0])
