"""Receptive-field arithmetic against real layers, and the cost counts against count_params."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from focaledu import FocalModulation, FocalNetBlock, receptive

CONFIGS = [(1, 3, 2), (2, 3, 2), (3, 3, 2), (2, 5, 4), (3, 1, 0), (4, 3, 2)]


@pytest.mark.backends
@pytest.mark.parametrize("level, window, factor", CONFIGS)
def test_kernel_sizes_match_the_layer(level, window, factor):
    layer = FocalModulation(4, focal_window=window, focal_level=level, focal_factor=factor)
    assert receptive.kernel_sizes(level, window, factor) == layer.kernel_sizes


def test_receptive_fields_values():
    assert receptive.kernel_sizes(3) == [3, 5, 7]
    assert receptive.receptive_fields(2) == [3, 7, math.inf]  # FocalNet-T (SRF)
    assert receptive.receptive_fields(3) == [3, 7, 13, math.inf]  # FocalNet-T (LRF)
    assert receptive.receptive_fields(2, 3, 2, patch_size=4) == [12, 28, math.inf]
    assert receptive.receptive_fields(3, 1, 0) == [1, 1, 1, math.inf]  # 1x1 kernels see nothing new
    assert receptive.receptive_fields(2, 5, 4) == [5, 13, math.inf]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: receptive.kernel_sizes(2, 4, 2), "focal_window"),
        (lambda: receptive.kernel_sizes(0, 3, 2), "focal_level"),
        (lambda: receptive.kernel_sizes(2, 3, 3), "focal_factor"),
        (lambda: receptive.receptive_fields(2, patch_size=0), "patch_size"),
        (lambda: receptive.receptive_field_mask(8, 8, (8, 0), 2), "outside"),
        (lambda: receptive.receptive_field_mask(8, 8, 3, 2), "pixel"),
        (lambda: receptive.receptive_field_mask(10, 8, (0, 0), 2, patch_size=4), "divisible"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mask_is_a_clipped_square_per_level():
    masks = receptive.receptive_field_mask(20, 30, (10, 15), 3)
    assert masks.shape == (4, 20, 30) and masks.dtype == bool
    assert [int(m.sum()) for m in masks] == [9, 49, 169, 600]
    rows, cols = np.nonzero(masks[1])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 13, 12, 18)
    # Levels are nested.
    assert np.all(masks[0] <= masks[1]) and np.all(masks[1] <= masks[2])
    corner = receptive.receptive_field_mask(20, 30, (0, 29), 3)
    assert [int(m.sum()) for m in corner] == [4, 16, 49, 600]


def test_mask_with_patches_covers_whole_patches():
    masks = receptive.receptive_field_mask(32, 32, (17, 18), 2, patch_size=4)  # token (4, 4)
    rows, cols = np.nonzero(masks[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12, 23, 12, 23)
    assert int(masks[1].sum()) == 28 * 28


@pytest.mark.backends
@pytest.mark.parametrize(
    "level, window, factor, size, pixel",
    [(2, 3, 2, (12, 14), (5, 6)), (2, 3, 2, (12, 14), (0, 13)), (3, 3, 2, (16, 15), (8, 2)), (2, 5, 4, (15, 15), (7, 7))],
)
def test_measured_receptive_field_equals_analytic(level, window, factor, size, pixel):
    keras.utils.set_random_seed(0)
    layer = FocalModulation(3, focal_window=window, focal_level=level, focal_factor=factor)
    measured = receptive.empirical_receptive_field_mask(layer, *size, pixel)
    analytic = receptive.receptive_field_mask(*size, pixel, level, window, factor)
    np.testing.assert_array_equal(measured, analytic)


@pytest.mark.backends
def test_context_levels_rebuild_the_modulator():
    keras.utils.set_random_seed(1)
    layer = FocalModulation(3, focal_window=3, focal_level=3)
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 3)).astype("float32")
    _, maps = layer(x, return_modulation=True)
    q, z0, gates = receptive.split_projection(layer, x)
    levels = receptive.context_levels(layer, x)
    assert [tuple(z.shape) for z in levels] == [(2, 9, 7, 3)] * 3 + [(2, 1, 1, 3)]
    assert tuple(gates.shape) == (2, 9, 7, 4) and tuple(q.shape) == tuple(z0.shape) == (2, 9, 7, 3)
    aggregated = sum(z * gates[..., l : l + 1] for l, z in enumerate(levels))
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.h(aggregated)), ops.convert_to_numpy(maps["modulator"]), atol=1e-5
    )


@pytest.mark.backends
def test_split_projection_builds_an_unbuilt_layer():
    layer = FocalModulation(4, focal_window=3, focal_level=2)
    q, z0, gates = receptive.split_projection(layer, np.zeros((1, 5, 5, 4), "float32"))
    assert layer.built and tuple(gates.shape) == (1, 5, 5, 3)


@pytest.mark.parametrize(
    "dim, level, window, factor, bias",
    [(96, 2, 3, 2, True), (64, 3, 3, 2, True), (32, 1, 5, 4, False), (24, 4, 3, 2, True)],
)
def test_modulation_cost_counts_the_layer_parameters(dim, level, window, factor, bias):
    layer = FocalModulation(dim, focal_window=window, focal_level=level, focal_factor=factor, bias=bias)
    layer.build((None, 8, 8, dim))
    assert receptive.modulation_cost(dim, 8, 8, level, window, factor, bias)["params"] == layer.count_params()


@pytest.mark.backends
def test_block_and_attention_costs_count_parameters():
    dim, heads = 32, 4
    block = FocalNetBlock(dim, focal_level=3)
    block.build((None, 8, 8, dim))
    mixer = receptive.modulation_cost(dim, 8, 8, 3)
    assert receptive.block_cost(mixer, dim, 8, 8)["params"] == block.count_params()
    mha = keras.layers.MultiHeadAttention(heads, dim // heads)
    mha.build((None, 64, dim), (None, 64, dim))
    assert receptive.attention_cost(dim, 8, 8)["params"] == mha.count_params()


def test_macs_by_hand():
    # C = 2, L = 1, k = 3 on 2x2 tokens: f 2*6, dw 2*9, gates 2*2, h + proj 2*2*2, q*M 2 -> 44 per token.
    assert receptive.modulation_cost(2, 2, 2, 1, 3, 2)["macs"] == 4 * 44
    # N = 4, C = 2: 4 N C^2 + 2 N^2 C = 64 + 64.
    assert receptive.attention_cost(2, 2, 2)["macs"] == 128
    # Attention is quadratic in the tokens, focal modulation linear.
    small, large = (receptive.attention_cost(96, s, s)["macs"] for s in (14, 28))
    assert large / small > 4.5
    small, large = (receptive.modulation_cost(96, s, s, 2)["macs"] for s in (14, 28))
    assert large / small == 4
