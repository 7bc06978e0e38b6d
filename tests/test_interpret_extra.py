"""The chapter-8 helpers of interpret.py and widgets.py, and their exercise checks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from focaledu import FocalNet, SelfAttentionBlock, checks, interpret, widgets  # noqa: E402

CONFIG = dict(image_size=32, num_classes=3, embed_dim=8, depths=(1, 1), focal_levels=(2, 3), focal_windows=(3, 3))


@pytest.fixture(scope="module")
def model_and_maps():
    model = FocalNet(**CONFIG)
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    return model, images, interpret.modulation_maps(model, images)


def test_upsample_nearest_repeats_tokens():
    values = np.arange(6.0).reshape(2, 3)
    out = interpret.upsample_nearest(values, 2)
    assert out.shape == (4, 6)
    np.testing.assert_array_equal(out[:2, :2], 0.0)
    np.testing.assert_array_equal(out[2:, 4:], 5.0)
    gates = np.random.default_rng(1).normal(size=(2, 2, 3))
    stacked = interpret.upsample_nearest(gates, 4)
    assert stacked.shape == (8, 8, 3)
    np.testing.assert_array_equal(stacked[5, 6], gates[1, 1])
    with pytest.raises(ValueError, match="factor"):
        interpret.upsample_nearest(values, 0)


def test_upsample_map_nearest_and_bilinear():
    values = np.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(interpret.upsample_map(values, (4, 4), "nearest"),
                                  interpret.upsample_nearest(values, 2))
    bilinear = interpret.upsample_map(values, (4, 4))
    assert bilinear.shape == (4, 4)
    # half-pixel centres: corners keep the corner values, the inside is interpolated
    assert bilinear[0, 0] == pytest.approx(0.0) and bilinear[-1, -1] == pytest.approx(3.0)
    assert bilinear[1, 1] == pytest.approx(0.75)
    np.testing.assert_allclose(interpret.upsample_map(np.full((2, 2), 7.0), (32, 32)), 7.0)
    assert interpret.upsample_map(np.zeros((2, 2, 3)), (8, 8)).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="nearest"):
        interpret.upsample_map(values, (5, 4), "nearest")
    with pytest.raises(ValueError, match="method"):
        interpret.upsample_map(values, (4, 4), "cubic")


def test_normalize_norm_and_dominant_level():
    np.testing.assert_allclose(interpret.normalize_map([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(interpret.normalize_map(np.ones((2, 2))), np.zeros((2, 2)))
    np.testing.assert_allclose(interpret.modulator_norm(np.array([[3.0, 4.0]])), [5.0])
    gates = np.array([[[0.1, -2.0, 0.5]], [[-0.3, -0.1, -0.2]]])
    np.testing.assert_array_equal(interpret.dominant_level(gates), [[2], [1]])


def test_block_level_map(model_and_maps):
    model, _, maps = model_and_maps
    block = model.block_names[1]
    gates = maps[block]["gates"]
    assert gates.shape[-1] == 4
    np.testing.assert_array_equal(interpret.block_level_map(maps, block, 4, index=1), gates[1, ..., 3])
    np.testing.assert_allclose(interpret.block_level_map(maps, block, "modulator", index=0),
                               np.linalg.norm(maps[block]["modulator"][0], axis=-1))
    for level, match in [(0, "level"), (5, "level"), ("mean", "level")]:
        with pytest.raises(ValueError, match=match):
            interpret.block_level_map(maps, block, level)
    with pytest.raises(ValueError, match="block"):
        interpret.block_level_map(maps, "nope", 1)
    with pytest.raises(ValueError, match="index"):
        interpret.block_level_map(maps, block, 1, index=2)


def test_centre_prior():
    prior = interpret.centre_prior((4, 6))
    assert prior.shape == (4, 6)
    assert prior.max() < 1.0 and prior.min() == pytest.approx(0.0)
    np.testing.assert_allclose(prior, prior[::-1, ::-1], atol=1e-12)
    assert prior[1, 2] > prior[0, 0]


def test_occlusion_map_finds_the_informative_region():
    # A "model" whose true-class logit is the mean of the top-left 8x8 pixels.
    def predict(x):
        score = x[:, :8, :8, 0].mean(axis=(1, 2))
        return np.stack([score * 10.0, np.zeros_like(score)], axis=1)

    images = np.ones((2, 16, 16, 1), dtype="float32")
    heat = interpret.occlusion_map(predict, images, [0, 0], patch=8, stride=4)
    assert heat.shape == (2, 16, 16)
    assert heat[0, 2, 2] > 0.0
    assert heat[0, 14, 14] == pytest.approx(0.0)
    assert heat[0, :8, :8].mean() > heat[0, 8:, 8:].mean()
    with pytest.raises(ValueError, match="label"):
        interpret.occlusion_map(predict, images, [0])


@pytest.mark.backends
def test_occlusion_map_takes_a_model_call():
    # Calling a model returns a backend tensor; on torch it tracks gradients, which np.asarray refuses.
    model = FocalNet(**CONFIG)
    images = np.random.default_rng(1).random((2, 32, 32, 3)).astype("float32")
    heat = interpret.occlusion_map(lambda x: model(x, training=False), images, [0, 1], patch=16, stride=16)
    assert isinstance(heat, np.ndarray) and heat.shape == (2, 32, 32) and np.all(np.isfinite(heat))


def test_map_correlation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 5, 5))
    np.testing.assert_allclose(interpret.map_correlation(a, a), 1.0)
    np.testing.assert_allclose(interpret.map_correlation(a, -2 * a + 1), -1.0)
    expected = np.corrcoef(a[1].ravel(), a[2].ravel())[0, 1]
    assert interpret.map_correlation(a[1], a[2]) == pytest.approx(expected)
    assert interpret.map_correlation(a, a[0]).shape == (3,)
    assert np.isnan(interpret.map_correlation(np.ones((5, 5)), a[0]))
    with pytest.raises(ValueError, match="Upsample"):
        interpret.map_correlation(np.ones((4, 4)), np.ones((8, 8)))


@pytest.mark.backends
def test_attention_received_from_a_block():
    # The block returns backend tensors (on torch, tracking gradients): the helper takes them as they are.
    block = SelfAttentionBlock(8, num_heads=2)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 8)).astype("float32")
    _, weights = block(x, return_attention_scores=True)
    received = interpret.attention_received(weights, (3, 4))
    assert received.shape == (2, 3, 4)
    np.testing.assert_allclose(received.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    uniform = np.full((1, 1, 4, 4), 0.25)
    np.testing.assert_allclose(interpret.attention_received(uniform, (2, 2)), 0.25)
    with pytest.raises(ValueError, match="N = h"):
        interpret.attention_received(weights, (2, 2))


def test_block_level_figure_and_explorer(model_and_maps):
    model, images, maps = model_and_maps
    fig = widgets.block_level_figure(images, maps, model.block_names[0], 2, index=1, title="t")
    assert len(fig.axes) == 4  # three panels and a colour bar
    plt.close(fig)
    pytest.importorskip("ipywidgets")
    box = widgets.modulation_explorer(images, maps, titles=["a", "b"])
    controls = box.controls
    assert controls["level"].value == "modulator"
    assert [value for _, value in controls["level"].options] == [1, 2, 3, "modulator"]
    controls["block"].value = model.block_names[1]
    assert [value for _, value in controls["level"].options] == [1, 2, 3, 4, "modulator"]
    controls["level"].value = 4
    controls["image"].value = 1
    controls["block"].value = model.block_names[0]  # level 4 does not exist there
    assert controls["level"].value == "modulator"
    plt.close("all")


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def _not_implemented(*args):
    raise NotImplementedError("hint")


@pytest.mark.parametrize("name", ["upsample_nearest", "modulator_norm", "dominant_level", "normalize_map"])
def test_checks_pass_the_reference_and_report_stubs(name):
    check = getattr(checks, name)
    assert check(getattr(interpret, name))
    result = check(_not_implemented)
    assert not result and "not implemented" in result.message and "hint" in result.message
    assert not check(None)


@pytest.mark.parametrize(
    "name, wrong, expected",
    [
        ("upsample_nearest", lambda v, f: np.tile(v, (f, f) + (1,) * (np.ndim(v) - 2)), "np.tile"),
        ("upsample_nearest", lambda v, f: np.repeat(np.repeat(v, f, axis=-2), f, axis=-1), "spatial axes"),
        ("upsample_nearest", lambda v, f: np.repeat(np.repeat(v, f, axis=1), f, axis=0).swapaxes(0, 1), "swapped"),
        ("modulator_norm", lambda m: m.mean(axis=-1), "channel mean"),
        ("modulator_norm", lambda m: (m**2).sum(axis=-1), "squared norm"),
        ("modulator_norm", lambda m: np.abs(m).sum(-1), "L1"),
        ("modulator_norm", lambda m: np.linalg.norm(m, axis=0), "first axis"),
        ("dominant_level", lambda g: np.argmax(g, -1) + 1, "from 1"),
        ("dominant_level", lambda g: np.argmax(np.abs(g), -1), "|gates|"),
        ("dominant_level", lambda g: np.argmin(g, -1), "argmin"),
        ("normalize_map", lambda v: v / v.max(), "maximum only"),
        ("normalize_map", lambda v: (v - v.min()) / v.max(), "instead of max - min"),
    ],
)
def test_checks_recognise_mistakes(name, wrong, expected):
    result = getattr(checks, name)(wrong)
    assert not result
    assert expected in result.message, result.message


def test_normalize_map_check_names_the_constant_map():
    def unguarded(values):
        values = np.asarray(values, dtype="float64")
        return (values - values.min()) / (values.max() - values.min())

    with np.errstate(invalid="ignore", divide="ignore"):
        result = checks.normalize_map(unguarded)
    assert not result and "constant map" in result.message, result.message
