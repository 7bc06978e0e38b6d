"""focaledu.cost: power-law fits, the structure of measurements, the traced largest tensor.

No test asserts a timing: only that times are positive and aligned with the sizes.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from focaledu import FocalModulation, cost  # noqa: E402
from focaledu.attention import MultiHeadSelfAttention  # noqa: E402


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_fit_power_law_recovers_the_exponent(power):
    n = np.array([16, 64, 256, 1024])
    slope, prefactor = cost.fit_power_law(n, 3e-6 * n**power, return_prefactor=True)
    assert slope == pytest.approx(power)
    assert prefactor == pytest.approx(3e-6)


def test_fit_power_law_with_noise_and_overhead():
    rng = np.random.default_rng(0)
    n = np.geomspace(64, 4096, 7)
    t = 1e-5 + 1e-9 * n**2 * rng.lognormal(sigma=0.05, size=n.shape)  # fixed overhead + quadratic
    assert cost.fit_power_law(n, t) < 1.9  # the overhead flattens the small sizes
    assert cost.fit_power_law(n, t, min_n=1024) == pytest.approx(2.0, abs=0.15)


def test_fit_power_law_ignores_missing_values_and_rejects_too_few():
    assert cost.fit_power_law([1, 2, 4, 8], [1, 4, np.nan, 64]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least two"):
        cost.fit_power_law([1, 2], [1, 0])
    with pytest.raises(ValueError, match="aligned"):
        cost.fit_power_law([1, 2, 3], [1, 2])


def test_score_matrix_bytes():
    assert cost.score_matrix_bytes(2, 4, 196) == 2 * 4 * 196 * 196 * 4
    assert cost.score_matrix_bytes(1, 1, 10, bytes_per_value=2) == 200


@pytest.mark.backends
def test_measure_attention_finds_the_score_matrix():
    result = cost.measure_mixer(lambda dim: MultiHeadSelfAttention(dim, 2), [16, 64], width=8, repeats=1)
    assert result.name == "MultiHeadSelfAttention" and result.width == 8 and result.batch == 1
    np.testing.assert_array_equal(result.tokens, [16, 64])
    assert result.seconds.shape == (2,) and np.all(result.seconds > 0)
    expected = [cost.score_matrix_bytes(1, 2, n) for n in (16, 64)]
    np.testing.assert_array_equal(result.largest_bytes, expected)
    assert result.largest_shapes[-1][-2:] == (64, 64)
    assert result.memory_slope() == pytest.approx(2.0)
    assert "MultiHeadSelfAttention" in result.table() and "64" in str(result)


@pytest.mark.backends
def test_measure_focal_modulation_memory_is_linear():
    result = cost.measure_mixer(
        lambda dim: FocalModulation(dim, focal_window=3, focal_level=1),
        [16, 64], width=4, batch=2, repeats=1, warmup=0, name="focal",
    )
    # The largest tensor is the projection f(x): (B, N, 2C + L + 1) floats.
    np.testing.assert_array_equal(result.largest_bytes, [2 * n * 10 * 4 for n in (16, 64)])
    assert result.memory_slope() == pytest.approx(1.0)


@pytest.mark.backends
def test_largest_intermediate_builds_the_layer():
    x = np.zeros((1, 7, 7, 8), "float32")
    layer = FocalModulation(8, focal_window=3, focal_level=2)
    size, _ = cost.largest_intermediate(layer, x)
    assert layer.built and size == 4 * 49 * (2 * 8 + 3)


def test_measure_tokens_layout_and_errors():
    result = cost.measure_mixer(lambda dim: MultiHeadSelfAttention(dim), [3, 5], width=2, layout="tokens", repeats=1)
    assert [shape[-1] for shape in result.largest_shapes] == [3, 5]
    with pytest.raises(ValueError, match="perfect square"):
        cost.measure_mixer(lambda dim: MultiHeadSelfAttention(dim), [10], width=4)
    with pytest.raises(ValueError, match="layout"):
        cost.measure_mixer(lambda dim: MultiHeadSelfAttention(dim), [4], width=4, layout="image")


def test_plot_scaling_draws_both_panels_with_slopes():
    n = np.array([16, 64, 256])
    fake = cost.MixerCost("attention", 8, 1, n, 1e-8 * n**2.0, 4.0 * n**2, [None] * 3, "tensorflow")
    linear = cost.MixerCost("modulation", 8, 1, n, 1e-6 * n, 40.0 * n, [None] * 3, "tensorflow")
    fig = cost.plot_scaling([fake, linear], title="synthetic")
    time_ax, memory_ax = fig.axes
    labels = [text.get_text() for text in time_ax.get_legend().get_texts()]
    assert labels == ["attention: slope 2.00", "modulation: slope 1.00"]
    assert memory_ax.get_xscale() == "log" and memory_ax.get_yscale() == "log"
    assert fig._suptitle.get_text() == "synthetic"
    matplotlib.pyplot.close(fig)


# --- window attention's count, peak memory, three panels -------------------------------------


@pytest.mark.backends
@pytest.mark.parametrize("grid, window_size, heads, bias", [((8, 8), 4, 2, True), ((14, 14), 7, 1, False),
                                                           ((4, 4), 7, 2, True), ((3, 5), 8, 1, True)])
def test_window_attention_cost_counts_the_layer(grid, window_size, heads, bias):
    from focaledu import receptive
    from focaledu.attention import WindowAttention, window_plan

    layer = WindowAttention(8, num_heads=heads, window_size=window_size, qkv_bias=bias)
    layer.build((None, *grid, 8))
    counted = cost.window_attention_cost(8, *grid, window_size, num_heads=heads, bias=bias)
    assert counted["params"] == layer.count_params()
    window_h, window_w, _ = window_plan(*grid, window_size)
    n = grid[0] * grid[1]
    assert counted["window"] == (window_h, window_w)
    assert counted["macs"] == 4 * n * 64 + 2 * n * window_h * window_w * 8
    if window_h * window_w == n:  # one window: the same MACs as global attention
        assert counted["macs"] == receptive.attention_cost(8, *grid)["macs"]


def test_window_attention_cost_is_linear_in_tokens():
    macs = [cost.window_attention_cost(96, side, side, 7)["macs"] for side in (14, 28, 56, 112)]
    assert [b / a for a, b in zip(macs, macs[1:])] == [4.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="`window_size` must divide"):
        cost.window_attention_cost(96, 30, 30, 7)


@pytest.mark.backends
def test_forward_peak_bytes_sees_the_score_matrix():
    layer = MultiHeadSelfAttention(8, 2)
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 8)).astype("float32")
    layer(x)
    peak = cost.forward_peak_bytes(layer, x)
    result = cost.measure_mixer(lambda dim: MultiHeadSelfAttention(dim, 2), [64, 256], width=8, repeats=1)
    if result.backend == "tensorflow":
        # The allocator held at least the (1, 2, 256, 256) attention weights at once.
        assert peak >= cost.score_matrix_bytes(1, 2, 256)
        # TensorFlow's CPU allocator statistics skip allocations under 256 KiB: N = 64 may read 0.
        assert result.peak_bytes[0] >= 0 and result.peak_bytes[1] >= cost.score_matrix_bytes(1, 2, 256)
        assert "peak memory" in result.table()
    elif result.backend == "jax":
        assert peak > 256 * 8 * 4 and np.all(result.peak_bytes > 0)  # XLA's plan: temporaries + output
    else:  # torch: the tensors of the pass alive at once, the attention weights among them
        assert peak >= cost.score_matrix_bytes(1, 2, 256) and np.all(result.peak_bytes > 0)
        assert result.peak_slope() > 1
    assert cost.measure_mixer(lambda dim: MultiHeadSelfAttention(dim, 2), [16], width=8, repeats=1,
                              peak=False).peak_bytes.shape == (1,)


def test_plot_scaling_adds_the_peak_panel_when_measured():
    n = np.array([16, 64, 256])
    quadratic = cost.MixerCost("attention", 8, 1, n, 1e-8 * n**2.0, 4.0 * n**2, [None] * 3, "tensorflow",
                               peak_bytes=8.0 * n**2)
    linear = cost.MixerCost("window", 8, 1, n, 1e-6 * n, 40.0 * n, backend="tensorflow", peak_bytes=90.0 * n)
    fig = cost.plot_scaling([quadratic, linear])
    assert [ax.get_title() for ax in fig.axes] == ["median forward time", "peak memory of one pass",
                                                   "largest intermediate tensor"]
    labels = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert labels == ["attention: slope 2.00", "window: slope 1.00"]
    assert linear.peak_slope() == pytest.approx(1.0) and linear.largest_shapes == [None] * 3
    matplotlib.pyplot.close(fig)
    fig = cost.plot_scaling([linear], panels=("peak_bytes",))
    assert len(fig.axes) == 1
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="`panels` must be among"):
        cost.plot_scaling([linear], panels=("flops",))
