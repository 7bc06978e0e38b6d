"""FocalNet: presets, serialization, compilation and the drop-path schedule."""

import inspect
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from focaledu import FocalNet, FocalNetBlock, interpret, list_presets, preset_config, training
from focaledu.data import CIFAR10_MEAN, CIFAR10_STD, synthetic_cifar10


TIMM = json.loads((Path(__file__).parent / "fixtures" / "timm_param_counts.json").read_text())["variants"]
SMALL = dict(image_size=(32, 48), num_classes=5, embed_dim=8, depths=(1, 2), focal_levels=(1, 3), focal_windows=(3, 1))


@pytest.mark.parametrize("name", sorted(TIMM))
def test_official_presets_have_timm_parameter_counts(name):
    config = preset_config(name)
    defaults = {p.name: p.default for p in inspect.signature(FocalNet).parameters.values()}
    # Architecture flags must agree with timm's variant, not just the count.
    # (image_size is free; timm leaves normalize_modulator off everywhere.)
    for key, value in TIMM[name]["official_kwargs"].items():
        if key != "image_size":
            actual = config.get(key, defaults[key])
            assert (list(actual) if isinstance(actual, (list, tuple)) else actual) == value, key
    assert FocalNet(**config).count_params() == TIMM[name]["num_params"]


def test_every_official_timm_variant_is_a_preset():
    assert set(TIMM) <= set(list_presets())


def test_isotropic_and_cifar_presets_build():
    iso = FocalNet.from_preset("focalnet_tiny_iso")
    assert iso.block_names == [f"layers_0_blocks_{i}" for i in range(12)]
    assert iso.get_layer("stem").proj.kernel.shape == (16, 16, 3, 192)
    tutorial = FocalNet.from_preset("keras_io_tutorial")
    assert round(tutorial.count_params() / 1e6) == 39  # width 256, depths 2-3-2 at 48x48, as the tutorial builds it
    cifar = FocalNet.from_preset("focalnet_cifar_tiny", num_classes=3)
    assert cifar.output_shape == (None, 3)


@pytest.mark.backends
def test_logits_shape_and_non_square_inputs():
    model = FocalNet(**SMALL)
    logits = model(np.random.rand(3, 32, 48, 3).astype("float32"))
    assert tuple(logits.shape) == (3, 5)
    features = FocalNet(**dict(SMALL, num_classes=0))
    assert features.output_shape == (None, 16)


@pytest.mark.backends
def test_config_round_trip_covers_every_argument():
    model = FocalNet(**SMALL, use_layerscale=True, use_postln=True, drop_path_rate=0.3)
    config = model.get_config()
    arguments = [p for p in inspect.signature(FocalNet.__init__).parameters if p not in ("self", "kwargs")]
    assert not [a for a in arguments if a not in config]
    assert FocalNet.from_config(config).get_config() == config


@pytest.mark.backends
def test_include_preprocessing_takes_pixels_as_they_come():
    config = dict(SMALL, num_classes=10)  # CIFAR-10's classes, for evaluate
    plain = FocalNet(**config)
    raw = FocalNet(**config, include_preprocessing=True, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    raw.set_weights(plain.get_weights())  # the preprocessing adds no weights
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3), dtype="uint8")
    expected = keras.ops.convert_to_numpy(plain(training.preprocess_images(pixels)))
    for images in (pixels, pixels.astype("float32")):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(raw(images)), expected, atol=1e-5)
    np.testing.assert_array_equal(training.preprocess_images(pixels, model=raw), pixels.astype("float32"))
    np.testing.assert_array_equal(training.preprocess_images(pixels, (32, 48), model=raw), pixels.astype("float32"))
    with pytest.raises(ValueError, match=r"image_size=\(32, 32\) contradicts the model's image_size \(32, 48\)"):
        training.preprocess_images(pixels, (32, 32), model=raw)
    block = raw.block_names[-1]
    np.testing.assert_allclose(interpret.modulation_maps(raw, pixels)[block]["modulator"],
                               interpret.modulation_maps(plain, training.preprocess_images(pixels))[block]["modulator"],
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"uint8 too for a model with include_preprocessing=True\); received dtype uint8"):
        interpret.modulation_maps(plain, pixels)
    dataset = synthetic_cifar10(n_train=10, n_test=20, seed=0)  # 32 x 32, resized to the models' 32 x 48
    assert training.evaluate(raw, dataset)["loss"] == pytest.approx(training.evaluate(plain, dataset)["loss"], abs=1e-5)
    assert training.evaluate(raw, (dataset.x_test, dataset.y_test)) == training.evaluate(raw, dataset)


@pytest.mark.backends
def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = FocalNet(**SMALL, use_conv_embed=True, use_layerscale=True, use_postln_in_modulation=True)
    images = np.random.rand(2, 32, 48, 3).astype("float32")
    model.save(tmp_path / "focalnet.keras")
    restored = keras.saving.load_model(tmp_path / "focalnet.keras")  # safe_mode=True by default
    assert isinstance(restored, FocalNet)
    np.testing.assert_array_equal(restored.predict(images, verbose=0), model.predict(images, verbose=0))
    assert restored.block_names == model.block_names


@pytest.mark.backends
def test_jit_compiled_training_step():
    model = FocalNet(**SMALL, drop_path_rate=0.2, drop_rate=0.1)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True
    )
    images = np.random.rand(4, 32, 48, 3).astype("float32")
    labels = np.array([0, 1, 2, 3])
    before = model.predict(images, verbose=0)
    losses = [model.train_on_batch(images, labels) for _ in range(3)]
    assert np.all(np.isfinite(losses))
    assert not np.allclose(before, model.predict(images, verbose=0))


@pytest.mark.backends
def test_drop_path_grows_linearly_over_all_blocks():
    model = FocalNet(**dict(SMALL, depths=(2, 3), focal_levels=(2, 2), focal_windows=(3, 3)), drop_path_rate=0.4)
    rates = [layer.drop_path_rate for layer in model.layers if isinstance(layer, FocalNetBlock)]
    np.testing.assert_allclose(rates, [0.0, 0.1, 0.2, 0.3, 0.4])


@pytest.mark.backends
def test_stage_widths_double_and_downsampling_sits_between_stages():
    model = FocalNet(**dict(SMALL, depths=(1, 1, 1), focal_levels=(2, 2, 2), focal_windows=(3, 3, 3), image_size=32))
    widths = [model.get_layer(f"layers_{i}_blocks_0").dim for i in range(3)]
    assert widths == [8, 16, 32]
    assert [layer.name for layer in model.layers if "downsample" in layer.name] == [
        "layers_1_downsample",
        "layers_2_downsample",
    ]
