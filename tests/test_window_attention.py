"""Swin's (shifted) window attention: the layer, its mask and bias, the block and model wiring.

The reference below is a NumPy transcription of Swin's official forward pass
(``SwinTransformerBlock`` + ``WindowAttention`` of microsoft/Swin-Transformer:
roll, ``window_partition``, ``img_mask`` regions, ``-100`` on masked scores,
``window_reverse``, roll back), kept deliberately close to that code so the
Keras layer is checked against Swin's own steps, not against itself.
"""

import keras
import numpy as np
import pytest
from keras import ops

from focaledu import FocalNet, FocalNetBlock
from focaledu.attention import (
    MultiHeadSelfAttention,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_plan,
)
from layer_checks import check_layer, random_inputs

backends = pytest.mark.backends


def np_(x):
    return ops.convert_to_numpy(x)


# --- A NumPy transcription of Swin's forward pass ------------------------------------------------


def swin_window_partition(x, ws):
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)


def swin_window_reverse(windows, ws, h, w):
    b = windows.shape[0] // (h * w // ws // ws)
    x = windows.reshape(b, h // ws, w // ws, ws, ws, -1)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def swin_relative_position_index(ws):
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij"))  # 2, Wh, Ww
    flat = coords.reshape(2, -1)
    rel = (flat[:, :, None] - flat[:, None, :]).transpose(1, 2, 0).copy()  # Wh*Ww, Wh*Ww, 2
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def swin_attn_mask(h, w, ws, shift):
    img_mask = np.zeros((1, h, w, 1))
    slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for hs in slices:
        for wsl in slices:
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    mask_windows = swin_window_partition(img_mask, ws).reshape(-1, ws * ws)
    attn_mask = mask_windows[:, None, :] - mask_windows[:, :, None]
    return np.where(attn_mask != 0, -100.0, 0.0)


def swin_forward(layer, x):
    """Swin's window attention on ``x`` (B, H, W, C) with ``layer``'s weights (square windows)."""
    b, h, w, c = x.shape
    ws, shift = layer.window[0], layer.shift
    heads = layer.num_heads
    qkv_w, qkv_b = np_(layer.qkv.kernel), np_(layer.qkv.bias)
    proj_w, proj_b = np_(layer.proj.kernel), np_(layer.proj.bias)
    table = np_(layer.relative_position_bias_table)

    shifted = np.roll(x, (-shift, -shift), axis=(1, 2)) if shift else x
    windows = swin_window_partition(shifted, ws).reshape(-1, ws * ws, c)
    n = ws * ws
    qkv = (windows @ qkv_w + qkv_b).reshape(-1, n, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
    attn = q @ k.transpose(0, 1, 3, 2)
    bias = table[swin_relative_position_index(ws).reshape(-1)].reshape(n, n, -1).transpose(2, 0, 1)
    attn = attn + bias[None]
    if shift:
        mask = swin_attn_mask(h, w, ws, shift)
        nw = mask.shape[0]
        attn = attn.reshape(-1, nw, heads, n, n) + mask[None, :, None]
        attn = attn.reshape(-1, heads, n, n)
    attn = np.exp(attn - attn.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    out = (attn @ v).transpose(0, 2, 1, 3).reshape(-1, n, c) @ proj_w + proj_b
    out = swin_window_reverse(out.reshape(-1, ws, ws, c), ws, h, w)
    return np.roll(out, (shift, shift), axis=(1, 2)) if shift else out


def _randomize(layer, seed=0):
    """Random weights everywhere, including a non-trivial bias table."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in layer.get_weights()])


# --- The layer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, input_shape, weights",
    [
        (dict(dim=8, num_heads=2, window_size=3, shift_size=1), (2, 6, 9, 8), 5),
        pytest.param(dict(dim=6, num_heads=3, window_size=2, qkv_bias=False, attn_drop=0.1, proj_drop=0.1),
                     (1, 4, 4, 6), 4, marks=backends),
    ],
)
def test_window_attention_passes_the_layer_checks(kwargs, input_shape, weights, tmp_path):
    # Shapes, config = constructor arguments, .keras round trip, jit forward and training step.
    check_layer(WindowAttention, kwargs, input_shape, input_shape, weights, tmp_path)


@backends
@pytest.mark.parametrize(
    "grid, window_size, shift_size, window, shift, windows",
    [
        ((8, 8), 4, 2, (4, 4), 2, 4),
        ((8, 8), 4, 0, (4, 4), 0, 4),
        ((6, 9), 3, 1, (3, 3), 1, 6),
        ((4, 4), 7, 3, (4, 4), 0, 1),  # smaller than a window: one window, no shift (Swin)
        ((4, 4), 4, 2, (4, 4), 0, 1),  # exactly one window: nothing to shift
        ((3, 5), 7, 0, (3, 5), 0, 1),  # one rectangular window covering the map
        ((4, 12), 4, 2, (4, 4), 0, 3),  # smaller side fits: Swin's window = min(H, W), no shift
    ],
)
def test_window_plan_and_output_shapes(grid, window_size, shift_size, window, shift, windows):
    assert window_plan(*grid, window_size, shift_size) == (*window, shift)
    layer = WindowAttention(8, num_heads=2, window_size=window_size, shift_size=shift_size)
    x = random_inputs((2, *grid, 8))
    y, weights = layer(x, return_attention_scores=True)
    assert np_(y).shape == x.shape
    tokens = window[0] * window[1]
    assert np_(weights).shape == (2, windows, 2, tokens, tokens)
    np.testing.assert_allclose(np_(weights).sum(-1), 1.0, atol=1e-5)
    assert layer.relative_position_bias_table.shape == ((2 * window[0] - 1) * (2 * window[1] - 1), 2)
    symbolic = WindowAttention(8, 2, window_size, shift_size)(keras.KerasTensor((None, *grid, 8)),
                                                              return_attention_scores=True)
    assert tuple(symbolic[1].shape) == (None, windows, 2, tokens, tokens)


@backends
@pytest.mark.parametrize("grid, window_size, shift_size", [((8, 8), 4, 0), ((8, 8), 4, 2), ((6, 12), 3, 1),
                                                          ((12, 12), 4, 3)])
def test_window_attention_is_swins_forward_pass(grid, window_size, shift_size):
    layer = WindowAttention(8, num_heads=2, window_size=window_size, shift_size=shift_size)
    x = random_inputs((2, *grid, 8), seed=3)
    layer(x)
    _randomize(layer, seed=1)
    np.testing.assert_allclose(np_(layer(x)), swin_forward(layer, x), atol=2e-5)


def test_relative_position_index_is_swins():
    for ws in (1, 2, 4, 7):
        np.testing.assert_array_equal(relative_position_index(ws, ws), swin_relative_position_index(ws).reshape(-1))


def test_shifted_window_mask_is_swins():
    for grid, ws, shift in (((8, 8), 4, 2), ((6, 9), 3, 1), ((14, 14), 7, 3)):
        np.testing.assert_array_equal(shifted_window_mask(*grid, ws, shift), swin_attn_mask(*grid, ws, shift) == 0)


@backends
@pytest.mark.parametrize("grid, window_size", [((4, 4), 4), ((4, 4), 7), ((3, 5), 5)])
@pytest.mark.parametrize("zero_bias", [True, False])
def test_one_window_covering_the_map_is_global_attention(grid, window_size, zero_bias):
    keras.utils.set_random_seed(0)
    x = random_inputs((2, *grid, 8), seed=4)
    window = WindowAttention(8, num_heads=2, window_size=window_size, shift_size=window_size // 2)
    full = MultiHeadSelfAttention(8, num_heads=2, relative_position_bias=True)
    window(x)
    full(x)
    _randomize(full, seed=2)
    # Swin's fused qkv holds q, k and v side by side; proj and the bias table are the same shape.
    kernels = [np_(d.kernel) for d in (full.q, full.k, full.v)]
    biases = [np_(d.bias) for d in (full.q, full.k, full.v)]
    window.qkv.set_weights([np.concatenate(kernels, axis=1), np.concatenate(biases)])
    window.proj.set_weights(full.proj.get_weights())
    table = np_(full.relative_position_bias_table)
    if zero_bias:
        table = np.zeros_like(table)
        full.relative_position_bias_table.assign(table)
    window.relative_position_bias_table.assign(table)
    assert window.shift == 0 and window.num_windows == 1
    y_window, w_window = window(x, return_attention_scores=True)
    y_full, w_full = full(x, return_attention_scores=True)
    np.testing.assert_allclose(np_(y_window), np_(y_full), atol=1e-6)
    np.testing.assert_allclose(np_(w_window)[:, 0], np_(w_full), atol=1e-6)


@backends
def test_windows_do_not_see_each_other():
    layer = WindowAttention(8, num_heads=2, window_size=4)
    x = random_inputs((1, 8, 8, 8), seed=5)
    y = np_(layer(x))
    x2 = x.copy()
    x2[0, 5, 6] += 10.0  # a token of the bottom-right window
    y2 = np_(layer(x2))
    changed = np.abs(y2 - y).max(-1)[0] > 1e-6
    expected = np.zeros((8, 8), bool)
    expected[4:, 4:] = True
    np.testing.assert_array_equal(changed, expected)


@backends
def test_shifted_mask_blocks_attention_across_the_roll_seam():
    # 8x8 map, 4x4 windows shifted by 2. After the roll by -2, the bottom-right window holds the
    # original rows 6, 7, 0, 1 and columns 6, 7, 0, 1: the corners of the image. Token (7, 7) shares
    # that window with (0, 0), (0, 7) and (7, 0) but not their region, so it must not see them.
    layer = WindowAttention(8, num_heads=2, window_size=4, shift_size=2)
    x = random_inputs((1, 8, 8, 8), seed=6)
    y, weights = layer(x, return_attention_scores=True)
    y = np_(y)
    for far in [(0, 0), (0, 7), (7, 0), (1, 6), (6, 1)]:
        x2 = x.copy()
        x2[0][far] += 10.0
        assert np.abs(np_(layer(x2))[0, 7, 7] - y[0, 7, 7]).max() < 1e-6, far
    # Control: a token of the same region does change it.
    x2 = x.copy()
    x2[0, 6, 6] += 10.0
    assert np.abs(np_(layer(x2))[0, 7, 7] - y[0, 7, 7]).max() > 1e-3
    # The weights say the same. Rolled position (r, c) holds original ((r + 2) % 8, (c + 2) % 8), so
    # original (7, 7) is rolled (5, 5): token 1 * 4 + 1 of the last window.
    last = np_(weights)[0, -1]  # (heads, 16, 16)
    query = 1 * 4 + 1
    allowed = np.zeros(16, bool)
    allowed[[0, 1, 4, 5]] = True  # rolled (4..5, 4..5) = original (6..7, 6..7)
    assert np.all(last[:, query, ~allowed] == 0.0)
    np.testing.assert_allclose(last[:, query, allowed].sum(-1), 1.0, atol=1e-6)


@backends
def test_window_attention_errors():
    with pytest.raises(ValueError, match="must divide `dim`"):
        WindowAttention(10, num_heads=3)
    with pytest.raises(ValueError, match=r"`window_size` must be an integer >= 1; received window_size=0"):
        WindowAttention(8, window_size=0)
    with pytest.raises(ValueError, match="`shift_size` must be smaller than `window_size`"):
        WindowAttention(8, window_size=4, shift_size=4)
    with pytest.raises(ValueError, match=r"`shift_size` must be an integer >= 0"):
        WindowAttention(8, window_size=4, shift_size=-1)
    with pytest.raises(ValueError, match=r"`window_size` must divide.*8x8 tokens cannot be tiled by 3x3 windows"
                                         r".*received window_size=3"):
        WindowAttention(8, window_size=3)(random_inputs((1, 8, 8, 8)))
    # Swin shrinks the window to the smaller side (4), which does not divide 6.
    with pytest.raises(ValueError, match=r"6x4 tokens cannot be tiled by 4x4 windows \(the map's smaller side"):
        WindowAttention(8, window_size=5)(random_inputs((1, 6, 4, 8)))
    with pytest.raises(ValueError, match=r"feature maps of a known size.*received shape \(1, 16, 8\)"):
        WindowAttention(8, window_size=4)(random_inputs((1, 16, 8)))
    with pytest.raises(ValueError, match=r"received shape \(1, 8, 8, 6\)"):
        WindowAttention(8, window_size=4)(random_inputs((1, 8, 8, 6)))
    with pytest.raises(ValueError, match="floating-point"):
        WindowAttention(8, window_size=4)(np.zeros((1, 8, 8, 8), "int32"))
    layer = WindowAttention(8, window_size=4)
    layer(random_inputs((1, 8, 8, 8)))
    with pytest.raises(ValueError, match="built for a 8x8 map"):
        layer(random_inputs((1, 12, 12, 8)))


# --- FocalNetBlock(mixer="window") and FocalNet(mixer="window") -------------------------------------------


@backends
def test_window_block_swaps_only_the_mixer():
    block = FocalNetBlock(64, mixer="window", window_size=4, shift_size=2)
    x = random_inputs((2, 8, 8, 64))
    y = np_(block(x))
    assert isinstance(block.attn, WindowAttention) and block.token_mixer is block.attn
    assert block.attn.name == "attn" and block.attn.num_heads == 2 and block.attn.shift == 2
    assert block.modulation is None and block.dwconv is None
    mixed = x + np_(block.attn(block.norm1(x)))
    np.testing.assert_allclose(y, mixed + np_(block.mlp(block.norm2(mixed))), rtol=1e-5, atol=1e-4)
    config = block.get_config()
    assert (config["mixer"], config["window_size"], config["shift_size"]) == ("window", 4, 2)
    assert FocalNetBlock.from_config(config).get_config() == config


@backends
def test_window_block_passes_the_layer_checks(tmp_path):
    kwargs = dict(dim=8, mixer="window", window_size=2, shift_size=1, drop=0.1, drop_path=0.1)
    # norm1, norm2: 4; qkv, proj, table: 5; MLP: 4.
    check_layer(FocalNetBlock, kwargs, (2, 4, 6, 8), (2, 4, 6, 8), 4 + 5 + 4, tmp_path)


def test_window_block_errors():
    with pytest.raises(ValueError, match=r"`window_size` must be an integer >= 1"):
        FocalNetBlock(8, mixer="window", window_size=0)
    with pytest.raises(ValueError, match="`shift_size` must be smaller than `window_size`"):
        FocalNetBlock(8, mixer="window", window_size=4, shift_size=5)
    with pytest.raises(ValueError, match="`num_heads` must divide `dim`"):
        FocalNetBlock(8, mixer="window", num_heads=3)


SMALL = dict(image_size=32, num_classes=10, patch_size=4, embed_dim=16, depths=[2, 2], focal_levels=[2, 2],
             focal_windows=[3, 3], drop_path_rate=0.1)


@backends
def test_focalnet_shifts_every_second_block_of_a_stage():
    model = FocalNet(**SMALL, mixer="window", window_size=4, num_heads=(1, 2))
    blocks = [model.get_layer(n) for n in model.block_names]
    assert [b.shift_size for b in blocks] == [0, 2, 0, 2]
    # Stage 0 (8x8) has four 4x4 windows; stage 1 (4x4) is one window, so nothing is shifted there.
    assert [(b.attn.window, b.attn.shift, b.attn.num_windows) for b in blocks] == [
        ((4, 4), 0, 4), ((4, 4), 2, 4), ((4, 4), 0, 1), ((4, 4), 0, 1)]
    assert model.modulation_outputs == {}
    config = model.get_config()
    assert config["mixer"] == "window" and config["window_size"] == 4
    assert FocalNet.from_config(config).get_config() == config


def test_focalnet_with_window_attention_saves_and_trains_one_jit_step(tmp_path):
    keras.utils.set_random_seed(0)
    model = FocalNet(**SMALL, mixer="window", window_size=4)
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    labels = np.arange(4) % 10
    model.save(tmp_path / "window.keras")
    restored = keras.saving.load_model(tmp_path / "window.keras")
    np.testing.assert_array_equal(restored.predict(images, verbose=0), model.predict(images, verbose=0))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np_(w).copy() for w in model.trainable_weights]
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    tables = [i for i, w in enumerate(model.trainable_weights) if "relative_position_bias_table" in w.path]
    assert len(tables) == 4
    for i in tables:  # every block's bias table received a gradient
        assert not np.allclose(before[i], np_(model.trainable_weights[i]))


@backends
def test_focalnet_rejects_a_window_that_does_not_tile_a_stage():
    with pytest.raises(ValueError, match=r"stage 0 of this FocalNet has a 8x8 feature map.*`window_size` must "
                                         r"divide.*received window_size=3"):
        FocalNet(**SMALL, mixer="window", window_size=3)
    with pytest.raises(ValueError, match=r"`window_size` must be an integer >= 1"):
        FocalNet(**SMALL, mixer="window", window_size=0)
    FocalNet(**SMALL, mixer="focal", window_size=3)  # only the window mixer reads it
