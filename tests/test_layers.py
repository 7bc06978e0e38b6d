"""Layer behaviour, on every backend the Makefile runs (TensorFlow and JAX)."""

import keras
import numpy as np
import pytest
from keras import ops

from focaledu import FocalModulation, FocalNetBlock, Mlp, PatchEmbedding
from layer_checks import check_layer, random_inputs

pytestmark = pytest.mark.backends


@pytest.mark.parametrize(
    "kwargs, input_shape, output_shape",
    [
        (dict(embed_dim=8, patch_size=4), (2, 16, 24, 3), (2, 4, 6, 8)),
        (dict(embed_dim=8, patch_size=2, use_norm=False), (2, 8, 8, 5), (2, 4, 4, 8)),
        (dict(embed_dim=8, patch_size=4, use_conv_embed=True), (2, 16, 24, 3), (2, 4, 6, 8)),
        (dict(embed_dim=8, patch_size=2, use_conv_embed=True), (2, 8, 12, 4), (2, 4, 6, 8)),
    ],
)
def test_patch_embedding(kwargs, input_shape, output_shape, tmp_path):
    weights = 4 if kwargs.get("use_norm", True) else 2
    check_layer(PatchEmbedding, kwargs, input_shape, output_shape, weights, tmp_path)


def test_conv_embed_kernels_follow_the_official_code():
    stem = PatchEmbedding(8, 4, use_conv_embed=True)
    down = PatchEmbedding(8, 2, use_conv_embed=True)
    stem.build((None, 16, 16, 3))
    down.build((None, 16, 16, 3))
    assert stem.proj.kernel.shape == (7, 7, 3, 8) and stem.pad.padding == ((2, 2), (2, 2))
    assert down.proj.kernel.shape == (3, 3, 3, 8) and down.pad.padding == ((1, 1), (1, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(dim=8, focal_window=3, focal_level=1),
        dict(dim=8, focal_window=3, focal_level=2, normalize_modulator=True),
        dict(dim=8, focal_window=1, focal_level=3, use_postln_in_modulation=True, bias=False),
        dict(dim=8, focal_window=5, focal_level=4, focal_factor=4, proj_drop=0.1),
    ],
)
def test_focal_modulation(kwargs, tmp_path):
    layer_count = 2 * kwargs.get("bias", True) + 2 + 2 + kwargs["focal_level"]
    layer_count += 2 * kwargs.get("use_postln_in_modulation", False)
    check_layer(FocalModulation, kwargs, (2, 6, 10, 8), (2, 6, 10, 8), layer_count, tmp_path)


def test_focal_kernel_sizes_grow_by_focal_factor():
    layer = FocalModulation(8, focal_window=3, focal_level=4, focal_factor=2)
    layer.build((None, 8, 8, 8))
    assert layer.kernel_sizes == [3, 5, 7, 9]
    assert [tuple(conv.kernel.shape[:2]) for conv in layer.focal_layers] == [(3, 3), (5, 5), (7, 7), (9, 9)]
    assert all(not conv.use_bias for conv in layer.focal_layers)


def test_focal_modulation_returns_gates_and_modulator():
    layer = FocalModulation(8, focal_window=3, focal_level=2)
    x = random_inputs((2, 6, 10, 8))
    y, maps = layer(x, return_modulation=True)
    assert maps["gates"].shape == (2, 6, 10, 3)
    assert maps["modulator"].shape == (2, 6, 10, 8)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(y), atol=1e-6)
    # The gates are the raw last L+1 channels of f(x): no softmax, as in the official code.
    f = ops.convert_to_numpy(layer.f(x))
    np.testing.assert_allclose(ops.convert_to_numpy(maps["gates"]), f[..., 16:], atol=1e-6)


def _reference_modulation(layer, x):
    """The equations of the paper in NumPy-style keras.ops, step by step."""
    C, L = layer.dim, layer.focal_level
    f = ops.convert_to_numpy(layer.f(x))
    q, z, gates = f[..., :C], f[..., C : 2 * C], f[..., 2 * C :]
    z_out = 0
    for level in range(L):
        z = ops.convert_to_numpy(ops.gelu(layer.focal_layers[level](z), approximate=False))
        z_out = z_out + z * gates[..., level : level + 1]
    z_global = ops.convert_to_numpy(ops.gelu(z.mean(axis=(1, 2), keepdims=True), approximate=False))
    z_out = z_out + z_global * gates[..., L:]
    modulator = ops.convert_to_numpy(layer.h(z_out))
    return ops.convert_to_numpy(layer.proj(q * modulator))


def test_focal_modulation_matches_the_equations():
    layer = FocalModulation(8, focal_window=3, focal_level=3)
    x = random_inputs((2, 9, 7, 8))
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), _reference_modulation(layer, x), atol=1e-5)


def test_normalize_modulator_divides_context_by_levels_plus_one():
    plain = FocalModulation(8, focal_window=3, focal_level=2)
    normalized = FocalModulation(8, focal_window=3, focal_level=2, normalize_modulator=True, bias=False)
    plain_nobias = FocalModulation(8, focal_window=3, focal_level=2, bias=False)
    x = random_inputs((1, 5, 5, 8))
    normalized(x), plain_nobias(x), plain(x)
    plain_nobias.set_weights(normalized.get_weights())
    # Without biases, h is linear, so dividing the context by L+1 divides the output's pre-proj term.
    _, a = normalized(x, return_modulation=True)
    _, b = plain_nobias(x, return_modulation=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(a["modulator"]) * 3, ops.convert_to_numpy(b["modulator"]), rtol=1e-5, atol=1e-5
    )


def test_mlp(tmp_path):
    check_layer(Mlp, dict(dim=8, hidden_dim=20, drop=0.1), (2, 3, 3, 8), (2, 3, 3, 8), 4, tmp_path)


@pytest.mark.parametrize(
    "kwargs, trainable",
    [
        (dict(dim=8), 4 + 8 + 4),
        (dict(dim=8, focal_level=1, use_postln=True, mlp_ratio=2.5), 4 + 7 + 4),
        (dict(dim=8, focal_level=3, use_layerscale=True, layerscale_value=0.5, drop_path=0.2), 6 + 9 + 4),
        (dict(dim=8, focal_level=2, use_postln_in_modulation=True, normalize_modulator=True, drop=0.1), 4 + 10 + 4),
    ],
)
def test_focalnet_block(kwargs, trainable, tmp_path):
    check_layer(FocalNetBlock, kwargs, (2, 6, 4, 8), (2, 6, 4, 8), trainable, tmp_path)


def test_block_prenorm_feeds_normalized_input_to_modulation():
    block = FocalNetBlock(8, focal_level=2)
    x = random_inputs((2, 4, 4, 8)) * 10 + 3
    block(x)
    # Pre-norm: the modulation only ever sees norm1(x), so scaling and shifting
    # every token changes nothing inside the modulation branch.
    _, maps_a = block(x, return_modulation=True)
    _, maps_b = block(x * 2 + 5, return_modulation=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(maps_a["gates"]), ops.convert_to_numpy(maps_b["gates"]), atol=1e-4
    )
    post = FocalNetBlock(8, focal_level=2, use_postln=True)
    post(x)
    _, maps_c = post(x, return_modulation=True)
    _, maps_d = post(x * 2 + 5, return_modulation=True)
    assert not np.allclose(ops.convert_to_numpy(maps_c["gates"]), ops.convert_to_numpy(maps_d["gates"]), atol=1e-2)


def test_layerscale_initial_value_scales_both_branches():
    block = FocalNetBlock(8, use_layerscale=True, layerscale_value=0.25)
    block.build((None, 4, 4, 8))
    np.testing.assert_array_equal(ops.convert_to_numpy(block.gamma_1), np.full(8, 0.25, "float32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(block.gamma_2), np.full(8, 0.25, "float32"))
    plain = FocalNetBlock(8)
    plain.build((None, 4, 4, 8))
    assert block.count_params() - plain.count_params() == 2 * 8


def test_drop_path_drops_whole_samples():
    block = FocalNetBlock(8, drop_path=0.5)
    x = random_inputs((64, 4, 4, 8))
    block(x)
    # Silence the MLP branch so the output is x + drop_path(modulation(norm1(x))).
    block.mlp.fc2.kernel.assign(np.zeros((32, 8), "float32"))
    block.mlp.fc2.bias.assign(np.zeros(8, "float32"))
    keras.utils.set_random_seed(1)
    diff = ops.convert_to_numpy(block(x, training=True)) - x
    kept = np.abs(diff).reshape(64, -1).max(axis=1) > 0
    assert np.all((np.abs(diff).reshape(64, -1) > 0).all(axis=1) == kept)  # all or nothing per sample
    assert 8 < kept.sum() < 56
    # Kept samples are rescaled by 1 / (1 - rate), like timm's DropPath.
    inference = ops.convert_to_numpy(block(x, training=False)) - x
    np.testing.assert_allclose(diff[kept], 2 * inference[kept], rtol=1e-4, atol=1e-5)
