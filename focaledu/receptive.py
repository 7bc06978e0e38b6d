"""Receptive fields of hierarchical contextualization, analytic and measured, and the cost of a token mixer.

Levels are ``l = 1 .. L`` (convolutional) and ``L + 1`` (global); level ``l`` uses ``focal_layers[l - 1]``.
"""

import math

import keras
import numpy as np
from keras import ops

from focaledu import _validate
from focaledu.block_parts import gelu
from focaledu.layers import focal_kernel_sizes


def kernel_sizes(focal_level, focal_window=3, focal_factor=2):
    """Kernel sizes ``[k_1, ..., k_L]``, ``k_l = focal_factor * (l - 1) + focal_window``."""
    focal_level = _validate.positive_int("focal_level", focal_level)
    focal_window = _validate.odd_int("focal_window", focal_window)
    focal_factor = _validate.even_int("focal_factor", focal_factor)
    return focal_kernel_sizes(focal_level, focal_window, focal_factor)


def receptive_fields(focal_level, focal_window=3, focal_factor=2, patch_size=1):
    """Side lengths ``[r_1, ..., r_L, inf]`` of the square each level sees, in tokens.

    Times ``patch_size`` in pixels.
    """
    patch_size = _validate.positive_int("patch_size", patch_size)
    sizes, size = [], 1
    for kernel in kernel_sizes(focal_level, focal_window, focal_factor):
        size += kernel - 1
        sizes.append(size * patch_size)
    return sizes + [math.inf]


def _pixel(pixel, height, width):
    try:
        row, col = (int(v) for v in pixel)
    except (TypeError, ValueError):
        raise ValueError(f"`pixel` must be a (row, column) pair of ints; received pixel={pixel!r}.") from None
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(
            f"`pixel`={tuple(pixel)!r} lies outside the {height}x{width} image "
            f"(rows 0..{height - 1}, columns 0..{width - 1})."
        )
    return row, col


def receptive_field_mask(height, width, pixel, focal_level, focal_window=3, focal_factor=2, patch_size=1):
    """Which input positions each level can see from ``pixel``.

    Args:
        height, width: size of the image in pixels (divisible by ``patch_size``).
        pixel: ``(row, column)`` of the chosen position, in pixels.
        focal_level, focal_window, focal_factor: as in ``FocalModulation``.
        patch_size: pixels per token side; 1 on the image grid itself.

    Returns:
        A boolean array ``(L + 1, height, width)``, clipped at the border; the global level is all True.
    """
    height = _validate.positive_int("height", height)
    width = _validate.positive_int("width", width)
    patch_size = _validate.positive_int("patch_size", patch_size)
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"`height` and `width` must be divisible by `patch_size`={patch_size}; "
            f"received {height}x{width}."
        )
    row, col = _pixel(pixel, height, width)
    token_row, token_col = row // patch_size, col // patch_size
    sizes = receptive_fields(focal_level, focal_window, focal_factor)
    masks = np.zeros((len(sizes), height, width), dtype=bool)
    for level, size in enumerate(sizes[:-1]):
        radius = size // 2
        top = max(token_row - radius, 0) * patch_size
        bottom = min(token_row + radius + 1, height // patch_size) * patch_size
        left = max(token_col - radius, 0) * patch_size
        right = min(token_col + radius + 1, width // patch_size) * patch_size
        masks[level, top:bottom, left:right] = True
    masks[-1] = True
    return masks


# --------------------------------------------------------------------------
# The intermediate quantities of a real FocalModulation layer.
# --------------------------------------------------------------------------


def _built(layer, x):
    if not layer.built:
        layer(x)  # builds every sub-layer with the right shapes
    return layer


def split_projection(layer, x):
    """``q, Z^0, G = split(f(x))`` of a ``FocalModulation``: ``(B,H,W,C)``, ``(B,H,W,C)``, ``(B,H,W,L+1)``."""
    _built(layer, x)
    q, context, gates = ops.split(layer.f(x), [layer.dim, 2 * layer.dim], axis=-1)
    return q, context, gates


def levels_from_context(layer, context):
    """``[Z^1, ..., Z^L, Z^{L+1}]`` from ``Z^0`` with the layer's depthwise kernels; ``Z^{L+1}`` is ``(B, 1, 1, C)``."""
    levels = []
    for focal_layer in layer.focal_layers:
        context = gelu(focal_layer(context))
        levels.append(context)
    levels.append(gelu(ops.mean(context, axis=(1, 2), keepdims=True)))
    return levels


def context_levels(layer, x):
    """``[Z^1, ..., Z^L, Z^{L+1}]`` of a ``FocalModulation`` on input ``x`` ``(B, H, W, C)``."""
    _, context, _ = split_projection(layer, x)
    return levels_from_context(layer, context)


def _input_gradients(fn, x):
    """Gradient of ``fn(x)`` (a scalar) with respect to ``x``, on the current backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        return tape.gradient(value, x)
    if backend == "jax":
        import jax

        return jax.jit(jax.grad(fn))(x)
    if backend == "torch":
        import torch

        # A fresh leaf on Keras's device, so that autograd can differentiate with respect to it.
        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(fn(x), x)
        return gradient
    raise NotImplementedError(
        f"empirical_receptive_field_mask needs gradients, which the {backend!r} backend "
        "does not provide; use tensorflow, jax or torch."
    )


def receptive_field_gradients(layer, height, width, pixel, seed=0):
    """How strongly each input position moves each level at ``pixel`` of a real ``FocalModulation``.

    Args:
        layer: a ``focaledu.FocalModulation`` (built or not).
        height, width: size of the token grid to probe.
        pixel: ``(row, column)`` token.
        seed: seed of the random input.

    Returns:
        A float array ``(L + 1, height, width)``, exactly 0 outside each level's window.
    """
    height = _validate.positive_int("height", height)
    width = _validate.positive_int("width", width)
    row, col = _pixel(pixel, height, width)
    levels = layer.focal_level + 1
    x = np.random.default_rng(seed).normal(size=(1, height, width, layer.dim)).astype("float32")
    _built(layer, x)
    # One copy of the input per level: copy l is read out at level l, so a
    # single gradient gives every level's map (the images of a batch never mix).
    x = np.repeat(x, levels, axis=0)
    # A backend tensor, as the levels are: NumPy arrays and torch tensors do not mix.
    pick = ops.eye(levels, dtype="float32")

    def response(inputs):
        total = 0.0
        for level, z in enumerate(context_levels(layer, inputs)):
            if level < levels - 1:
                z = z[:, row, col, :]
            total = total + ops.sum(ops.reshape(z, (levels, -1)) * pick[:, level : level + 1])
        return total

    gradient = ops.convert_to_numpy(_input_gradients(response, x))
    return np.abs(gradient).sum(axis=-1)


def empirical_receptive_field_mask(layer, height, width, pixel, seed=0):
    """The positions where :func:`receptive_field_gradients` is not zero: a boolean ``(L + 1, height, width)`` array."""
    return receptive_field_gradients(layer, height, width, pixel, seed) != 0


# --------------------------------------------------------------------------
# Cost: parameters and multiply-accumulates (MACs) per image.
# --------------------------------------------------------------------------


def modulation_cost(dim, height, width, focal_level, focal_window=3, focal_factor=2, bias=True):
    """Parameters and MACs of one ``FocalModulation`` on a ``height`` x ``width`` token grid.

    The global average, GELUs and biases are left out.

    Returns:
        ``{"params": int, "macs": int}``.
    """
    dim = _validate.positive_int("dim", dim)
    tokens = _validate.positive_int("height", height) * _validate.positive_int("width", width)
    kernels = kernel_sizes(focal_level, focal_window, focal_factor)
    levels = len(kernels) + 1
    f_out = 2 * dim + levels
    params = (
        dim * f_out + (f_out if bias else 0)  # f
        + dim * sum(k * k for k in kernels)  # depthwise convolutions, no bias
        + dim * dim + (dim if bias else 0)  # h
        + dim * dim + dim  # proj (always with bias)
    )
    macs = tokens * (
        dim * f_out + dim * sum(k * k for k in kernels) + dim * levels + 2 * dim * dim + dim
    )
    return {"params": int(params), "macs": int(macs)}


def attention_cost(dim, height, width, bias=True):
    """Parameters and MACs of multi-head self-attention over ``height * width`` tokens.

    MACs are ``4 N C^2 + 2 N^2 C`` (softmax left out).
    """
    dim = _validate.positive_int("dim", dim)
    tokens = _validate.positive_int("height", height) * _validate.positive_int("width", width)
    params = 4 * dim * dim + (3 * dim if bias else 0) + dim
    macs = 4 * tokens * dim * dim + 2 * tokens * tokens * dim
    return {"params": int(params), "macs": int(macs)}


def block_cost(mixer_cost, dim, height, width, mlp_ratio=4.0):
    """Adds the rest of a pre-norm Transformer block (two LayerNorms, the MLP) to a mixer's cost."""
    dim = _validate.positive_int("dim", dim)
    tokens = _validate.positive_int("height", height) * _validate.positive_int("width", width)
    hidden = int(dim * mlp_ratio)
    params = mixer_cost["params"] + 2 * 2 * dim + dim * hidden + hidden + hidden * dim + dim
    macs = mixer_cost["macs"] + 2 * tokens * dim * hidden
    return {"params": int(params), "macs": int(macs)}
