"""Figures: each function returns a Figure with the expected panels and rejects bad shapes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from focaledu import plots, receptive  # noqa: E402

IMAGE = np.random.default_rng(0).random((32, 40, 3)).astype("float32")
SETTINGS = [
    dict(focal_level=2, focal_window=3, focal_factor=2),
    dict(focal_level=3, focal_window=3, focal_factor=2),
    dict(focal_level=2, focal_window=5, focal_factor=4),
]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]


def test_receptive_field_overlay_draws_one_frame_per_level():
    masks = receptive.receptive_field_mask(32, 40, (10, 12), 2, patch_size=2)
    fig = plots.receptive_field_overlay(IMAGE, masks, (10, 12), title="t")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    # Per convolutional level a fill and an outline, plus the global frame.
    assert len(_rectangles(ax)) == 2 * 2 + 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["level 1", "level 2", "level 3 (global)"]
    outline = [p for p in _rectangles(ax) if p.get_label() == "level 2"][0]
    assert (outline.get_width(), outline.get_height()) == (14, 14)  # 7 tokens of 2 pixels


def test_receptive_field_overlay_rejects_mismatched_masks():
    with pytest.raises(ValueError, match="masks"):
        plots.receptive_field_overlay(IMAGE, np.ones((3, 8, 8), bool), (0, 0))
    with pytest.raises(ValueError, match="image"):
        plots.receptive_field_overlay(IMAGE[..., 0], np.ones((3, 32, 40), bool), (0, 0))


def test_receptive_field_figure_and_grid():
    fig = plots.receptive_field_figure(IMAGE, (16, 20), 3, 3, 2, patch_size=4)
    assert "kernels [3, 5, 7]" in fig.axes[0].get_title()
    assert "fields [12, 28, 52] px" in fig.axes[0].get_title()
    fig = plots.receptive_field_grid(IMAGE, SETTINGS, (16, 20), patch_size=4, ncols=2, suptitle="grid")
    assert len(fig.axes) == 4 and not fig.axes[3].axison
    assert fig._suptitle.get_text() == "grid"
    with pytest.raises(ValueError, match="settings"):
        plots.receptive_field_grid(IMAGE, [], (0, 0))


def test_growth_curves_plot_the_receptive_fields():
    fig = plots.growth_curves([dict(focal_window=3, focal_factor=2), dict(focal_window=3, focal_factor=0,
                                                                       label="3x3")], max_level=4, image_size=20)
    lines = fig.axes[0].get_lines()
    np.testing.assert_array_equal(lines[0].get_ydata(), [3, 7, 13, 21])
    np.testing.assert_array_equal(lines[1].get_ydata(), [3, 5, 7, 9])
    assert lines[1].get_label() == "3x3"


def test_modulation_overlay_panels():
    gates = np.random.default_rng(1).normal(size=(2, 8, 10, 3))
    modulator = np.random.default_rng(2).normal(size=(2, 8, 10, 6))
    fig = plots.modulation_overlay(np.stack([IMAGE, IMAGE]), gates, modulator, titles=["a", "b"], suptitle="src")
    assert len(fig.axes) == 2 * 5
    titles = [ax.get_title() for ax in fig.axes[:5]]
    assert titles == ["a", "G1", "G2", "G3 (global)", "modulator ||M||"]
    # The gate map is stretched over the whole image.
    assert fig.axes[1].get_images()[1].get_extent() == fig.axes[1].get_images()[0].get_extent()
    norm = fig.axes[4].get_images()[1].get_array()
    np.testing.assert_allclose(norm, np.linalg.norm(modulator[0], axis=-1), rtol=1e-5)
    fig = plots.modulation_overlay(IMAGE, gates[0], modulator[0], reduce="mean")
    np.testing.assert_allclose(fig.axes[-1].get_images()[1].get_array(), modulator[0].mean(-1), rtol=1e-5)
    with pytest.raises(ValueError, match="same number"):
        plots.modulation_overlay(np.stack([IMAGE, IMAGE]), gates[:1], modulator)
    with pytest.raises(ValueError, match="reduce"):
        plots.modulator_overlay(IMAGE, modulator[0], reduce="max")


def test_curves_stop_at_overflow():
    fig = plots.curves({"ok": [1, 2, 3, 4], "explodes": [1, 10, np.inf, np.nan]}, logy=True, xlabel="block")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    exploded = [line for line in ax.get_lines() if line.get_label() == "explodes"][0]
    np.testing.assert_array_equal(exploded.get_ydata(), [1, 10])
    assert len(ax.get_lines()) == 3  # two curves and the end marker


def test_receptive_field_maps_outline_the_analytic_window():
    gradients = np.zeros((3, 9, 9))
    gradients[0, 3:6, 3:6] = 1.0
    gradients[1, 1:8, 1:8] = 0.1
    gradients[2] = 0.01
    masks = receptive.receptive_field_mask(9, 9, (4, 4), 2)
    fig = plots.receptive_field_maps(gradients, masks, pixel=(4, 4))
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == [
        "level 1: 9 positions", "level 2: 49 positions", "level 3 (global): 81 positions"]
    assert [len(ax.patches) for ax in axes] == [1, 1, 0]  # no outline for the global level
    shown = axes[0].get_images()[0].get_array()
    assert np.ma.is_masked(shown[0, 0]) and shown[4, 4] == 0.0


def test_modulator_figure_and_channel_norm_maps():
    modulator = np.random.default_rng(3).normal(size=(8, 10, 6))
    fig = plots.modulator_figure(IMAGE, modulator, title="weights (1, 1, 1)")
    assert fig._suptitle.get_text() == "weights (1, 1, 1)"
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array(), np.linalg.norm(modulator, axis=-1),
                               rtol=1e-5)
    levels = [modulator, modulator[::2, ::2], modulator.mean(axis=(0, 1), keepdims=True)]
    fig = plots.channel_norm_maps(levels, titles=["Z1", "Z2", "Z3"], suptitle="levels")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["Z1", "Z2", "Z3"]  # and a colour bar
    assert fig.axes[2].get_images()[0].get_array().shape == (1, 1)
    fig = plots.channel_norm_maps(levels[:1], image=IMAGE, reduce="mean")
    assert len(fig.axes[0].get_images()) == 2


def test_curves_without_series_draw_empty_axes():
    fig = plots.curves({}, xlabel="epoch")
    assert fig.axes[0].get_legend() is None and not fig.axes[0].get_lines()
