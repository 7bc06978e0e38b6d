"""modulator_with_gates against the layer, and the explorers redraw when a slider moves."""

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402

from focaledu import FocalModulation, widgets  # noqa: E402


def _layer(normalize=False, seed=0):
    keras.utils.set_random_seed(seed)
    layer = FocalModulation(4, focal_window=3, focal_level=2, normalize_modulator=normalize)
    x = np.random.default_rng(seed).normal(size=(2, 8, 9, 4)).astype("float32")
    _, maps = layer(x, return_modulation=True)
    # Non-zero biases, so that "h is affine" is really tested.
    layer.h.bias.assign(np.linspace(-1, 1, 4).astype("float32"))
    _, maps = layer(x, return_modulation=True)
    return layer, x, ops.convert_to_numpy(maps["modulator"])


@pytest.mark.backends
@pytest.mark.parametrize("normalize", [False, True])
def test_unit_gate_weights_give_the_layer_modulator(normalize):
    layer, x, modulator = _layer(normalize)
    got = ops.convert_to_numpy(widgets.modulator_with_gates(layer, x, [1, 1, 1]))
    np.testing.assert_allclose(got, modulator, atol=1e-5)


@pytest.mark.backends
def test_gate_weights_scale_each_level():
    layer, x, modulator = _layer()
    bias = ops.convert_to_numpy(layer.h.bias)
    zero = ops.convert_to_numpy(widgets.modulator_with_gates(layer, x, np.zeros(3)))
    np.testing.assert_allclose(zero, np.broadcast_to(bias, zero.shape), atol=1e-6)
    # h is affine: the one-level modulators add up to the full one.
    parts = [ops.convert_to_numpy(widgets.modulator_with_gates(layer, x, np.eye(3)[l])) - bias for l in range(3)]
    np.testing.assert_allclose(sum(parts) + bias, modulator, atol=1e-5)
    double = ops.convert_to_numpy(widgets.modulator_with_gates(layer, x, [2, 2, 2]))
    np.testing.assert_allclose(double - bias, 2 * (modulator - bias), atol=1e-5)


def test_gate_weights_must_match_the_levels():
    layer, x, _ = _layer()
    with pytest.raises(ValueError, match="focal_level \\+ 1 = 3"):
        widgets.modulator_with_gates(layer, x, [1, 1])


@pytest.fixture
def drawn(monkeypatch):
    figures = []
    monkeypatch.setattr(widgets, "_show", lambda output, fig: figures.append(fig))
    return figures


def test_receptive_field_explorer_redraws(drawn):
    image = np.random.default_rng(0).random((32, 32, 3))
    box = widgets.receptive_field_explorer(image, patch_size=4)
    assert set(box.sliders) == {"focal_level", "focal_window", "focal_factor", "row", "col"}
    assert len(drawn) == 1 and "L=2, window 3, factor 2" in drawn[-1].axes[0].get_title()
    box.sliders["focal_level"].value = 3
    box.sliders["focal_window"].value = 5
    assert len(drawn) == 3 and "kernels [5, 7, 9]" in drawn[-1].axes[0].get_title()
    assert box.sliders["focal_window"].step == 2 and box.sliders["focal_factor"].step == 2
    assert box.sliders["row"].max == 31


def test_gate_explorer_redraws(drawn):
    layer, x, modulator = _layer()
    image = np.random.default_rng(0).random((32, 36, 3))
    box = widgets.gate_explorer(layer, x, image)
    assert len(box.sliders) == 3 and "global" in box.sliders[2].description
    shown = drawn[-1].axes[0].get_images()[1].get_array()
    np.testing.assert_allclose(shown, np.linalg.norm(modulator[0], axis=-1), rtol=1e-4)
    box.sliders[1].value = 0.0
    assert len(drawn) == 2 and "(1, 0, 1)" in drawn[-1]._suptitle.get_text()


def test_slider_readouts_keep_their_room(drawn):
    """Next to a wide figure the HBox used to squeeze the sliders and hide their readouts ("1.(" for 1.00)."""
    layer, x, _ = _layer()
    image = np.random.default_rng(0).random((32, 36, 3))
    for box, sliders in [
        (box := widgets.gate_explorer(layer, x, image), box.sliders),
        (box := widgets.receptive_field_explorer(image, patch_size=4), list(box.sliders.values())),
    ]:
        column, _ = box.children
        assert column.layout.flex == "0 0 auto" and column.layout.min_width
        assert box.layout.flex_flow == "row wrap"
        widths = {slider.style.description_width for slider in sliders}
        assert len(widths) == 1 and widths.pop().endswith("px")  # one label width: the tracks line up
        for slider in sliders:
            assert int(slider.layout.width.rstrip("px")) <= int(column.layout.min_width.rstrip("px"))
    assert all(slider.readout_format == ".2f" for slider in widgets.gate_explorer(layer, x, image).sliders)
