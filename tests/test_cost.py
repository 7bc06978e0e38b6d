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
    if result.backend in ("tensorflow", "jax"):
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
    if result.backend in ("tensorflow", "jax"):
        # The largest tensor is the projection f(x): (B, N, 2C + L + 1) floats.
        np.testing.assert_array_equal(result.largest_bytes, [2 * n * 10 * 4 for n in (16, 64)])
        assert result.memory_slope() == pytest.approx(1.0)


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
