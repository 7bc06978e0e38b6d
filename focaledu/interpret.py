"""Gates and modulators of a FocalNet, read from its functional graph through a sub-model."""

import weakref

import keras
import numpy as np

_SUBMODELS = weakref.WeakKeyDictionary()


def modulation_model(model, blocks=None):
    """A ``keras.Model`` from ``model``'s images to ``{block: {"gates", "modulator"}}``.

    Args:
        model: a ``focaledu.FocalNet``.
        blocks: block names (see ``model.block_names``); all blocks by default.
    """
    outputs = getattr(model, "modulation_outputs", None)
    if outputs is None:
        raise ValueError(
            "`model` must be a focaledu.FocalNet (it exposes `modulation_outputs`); "
            f"received {type(model).__name__}."
        )
    if not outputs:
        raise ValueError(
            f"`model` has no focal-modulation blocks (mixer={getattr(model, 'mixer', None)!r}), "
            "so it has no gates or modulators to read."
        )
    names = list(outputs) if blocks is None else list(blocks)
    unknown = [name for name in names if name not in outputs]
    if unknown:
        raise ValueError(f"Unknown `blocks` {unknown}. Accepted values: {', '.join(outputs)}.")
    cache = _SUBMODELS.setdefault(model, {})
    key = tuple(names)
    if key not in cache:
        # Plain dicts: Keras wraps attributes in TrackedDict, which jax.jit rejects as an output.
        cache[key] = keras.Model(model.inputs, {name: dict(outputs[name]) for name in names})
    return cache[key]


def modulation_maps(model, images, blocks=None, batch_size=32):
    """Evaluates the gates and modulators of ``model`` on ``images``.

    Args:
        model: a ``focaledu.FocalNet``.
        images: ``(B, H, W, C)`` as the model takes them (standardised, or pixels with ``include_preprocessing``).
        blocks: block names to read; all by default.
        batch_size: images per forward pass.

    Returns:
        ``{block_name: {"gates": (B, h, w, L + 1), "modulator": (B, h, w, C_block)}}`` as NumPy arrays.
    """
    images = np.asarray(images)
    from focaledu.array_pipeline import model_scale

    takes_pixels = model_scale(model) == "pixels"
    if images.ndim != 4 or not ("float" in str(images.dtype) or (takes_pixels and images.dtype == np.uint8)):
        raise ValueError(
            "`images` must be a float array of shape (batch, height, width, channels) (uint8 too for a model "
            f"with include_preprocessing=True); received dtype {images.dtype} and shape {images.shape}."
        )
    submodel = modulation_model(model, blocks)
    return keras.tree.map_structure(
        np.asarray, submodel.predict(images, batch_size=batch_size, verbose=0)
    )


# --------------------------------------------------------------------------
# Chapter 8: reading the maps of a trained model.
# --------------------------------------------------------------------------


def upsample_nearest(values, factor):
    """Repeats every token of ``values`` (``(h, w)`` or ``(h, w, k)``) ``factor`` times along rows and columns."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"`factor` must be a positive integer; received {factor!r}.")
    values = np.asarray(values)
    return np.repeat(np.repeat(values, factor, axis=0), factor, axis=1)


def upsample_map(values, size, method="bilinear"):
    """Stretches a token map ``(h, w)`` or ``(h, w, k)`` to ``size = (H, W)`` pixels.

    Args:
        method: ``"nearest"`` (``H``, ``W`` multiples of ``h``, ``w``) or ``"bilinear"`` (as
            ``keras.ops.image.resize``).
    """
    values = np.asarray(values, dtype="float32")
    if values.ndim not in (2, 3):
        raise ValueError(f"`values` must have shape (h, w) or (h, w, k); received shape {values.shape}.")
    height, width = (int(s) for s in size)
    h, w = values.shape[:2]
    if method == "nearest":
        if height % h or width % w or height // h != width // w:
            raise ValueError(
                f"method='nearest' needs the same integer factor on both axes; {values.shape[:2]} -> {(height, width)}."
            )
        return upsample_nearest(values, height // h).astype("float32")
    if method != "bilinear":
        raise ValueError(f"`method` must be 'nearest' or 'bilinear'; received method={method!r}.")
    stacked = values if values.ndim == 3 else values[..., None]
    out = keras.ops.image.resize(stacked, (height, width), interpolation="bilinear", antialias=False)
    out = np.asarray(keras.ops.convert_to_numpy(out), dtype="float32")
    return out if values.ndim == 3 else out[..., 0]


def normalize_map(values):
    """Min-max scales ``values`` to ``[0, 1]`` (a constant map becomes zeros)."""
    values = np.asarray(values, dtype="float64")
    low, high = values.min(), values.max()
    if high - low == 0:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def modulator_norm(modulator):
    """``||M_i||``: the L2 norm over the channels (last axis) of a modulator ``(..., C)``."""
    return np.linalg.norm(np.asarray(modulator, dtype="float64"), axis=-1)


def dominant_level(gates):
    """Index (0 = level 1, ``L`` = global) of the largest gate per position, ``(..., L + 1) -> (...)``."""
    return np.argmax(np.asarray(gates), axis=-1)


def block_level_map(maps, block, level, index=0):
    """One ``(h, w)`` float map of one image from :func:`modulation_maps`' output.

    Args:
        maps: ``{block: {"gates", "modulator"}}`` from :func:`modulation_maps`.
        block: a block name, e.g. ``"layers_1_blocks_1"``.
        level: ``1 .. L + 1`` for that level's gate (``L + 1`` global), or ``"modulator"`` for ``||M||``.
        index: which image of the batch.
    """
    if block not in maps:
        raise ValueError(f"Unknown `block` {block!r}. Accepted values: {', '.join(maps)}.")
    gates, modulator = maps[block]["gates"], maps[block]["modulator"]
    if not 0 <= int(index) < len(gates):
        raise ValueError(f"`index` must be in [0, {len(gates)}); received index={index!r}.")
    if isinstance(level, str):
        if level != "modulator":
            raise ValueError(f"`level` must be 1 .. {gates.shape[-1]} or 'modulator'; received level={level!r}.")
        return modulator_norm(modulator[index])
    levels = gates.shape[-1]
    if not 1 <= int(level) <= levels:
        raise ValueError(
            f"`level` must be 1 .. {levels} (L + 1 = {levels} is the global level) or 'modulator'; "
            f"received level={level!r}."
        )
    return np.asarray(gates[index, ..., int(level) - 1], dtype="float64")


def centre_prior(size):
    """A foreground proxy: 1 at the image centre, falling linearly to 0 at the corners, ``(H, W)``."""
    height, width = (int(s) for s in size)
    rows = (np.arange(height) + 0.5) / height - 0.5
    cols = (np.arange(width) + 0.5) / width - 0.5
    distance = np.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)
    return 1.0 - distance / distance.max()


def occlusion_map(predict, images, labels, patch=8, stride=4, fill=0.0, batch_size=256):
    """Saliency by occlusion: the mean drop in the true class's probability over squares covering a pixel.

    Args:
        predict: images ``(n, H, W, C)`` -> logits ``(n, classes)``, e.g. ``lambda x: model(x, training=False)``.
        images: ``(B, H, W, C)`` float, as the model takes them.
        labels: ``B`` integer classes.
        patch, stride: square size and step in pixels.
        fill: value of the occluder.
        batch_size: occluded images per ``predict`` call.

    Returns:
        ``(B, H, W)`` float64, positive where hiding the region hurts.
    """
    images = np.asarray(images, dtype="float32")
    labels = np.asarray(labels).astype(int).reshape(-1)
    if images.ndim != 4 or len(labels) != len(images):
        raise ValueError(
            f"`images` must be (B, H, W, C) with one label each; received shape {images.shape} "
            f"and {len(labels)} labels."
        )
    batch, height, width = images.shape[:3]
    if not (1 <= patch <= min(height, width)) or stride < 1:
        raise ValueError(f"`patch` must be in [1, {min(height, width)}] and `stride` >= 1; received {patch}, {stride}.")
    corners = [(r, c) for r in range(0, height - patch + 1, stride) for c in range(0, width - patch + 1, stride)]

    def probabilities(x):
        # convert_to_numpy: np.asarray refuses a torch tensor that tracks gradients.
        logits = np.concatenate([np.asarray(keras.ops.convert_to_numpy(predict(x[i : i + batch_size])), dtype="float64")
                                 for i in range(0, len(x), batch_size)])
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    base = probabilities(images)[np.arange(batch), labels]
    occluded = np.repeat(images[:, None], len(corners), axis=1)
    for k, (r, c) in enumerate(corners):
        occluded[:, k, r : r + patch, c : c + patch] = fill
    probs = probabilities(occluded.reshape(-1, *images.shape[1:])).reshape(batch, len(corners), -1)
    drops = base[:, None] - probs[np.arange(batch)[:, None], np.arange(len(corners))[None], labels[:, None]]
    total = np.zeros((batch, height, width))
    count = np.zeros((height, width))
    for k, (r, c) in enumerate(corners):
        total[:, r : r + patch, c : c + patch] += drops[:, k, None, None]
        count[r : r + patch, c : c + patch] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def map_correlation(a, b):
    """Pearson correlation of two maps over their last two axes, ``(..., H, W) -> (...)``; NaN for a constant map."""
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"The maps must have the same (H, W); received {a.shape} and {b.shape}. Upsample first.")
    a, b = np.broadcast_arrays(a, b)
    a = a.reshape(*a.shape[:-2], -1)
    b = b.reshape(*b.shape[:-2], -1)
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(-1) / np.where(denominator > 0, denominator, 1), np.nan)


def attention_received(weights, grid):
    """How much attention each token receives (mean over heads and queries), as ``(B, h, w)`` maps that sum to 1.

    Args:
        weights: attention weights ``(B, heads, N, N)``, queries then keys.
        grid: ``(h, w)`` with ``h * w = N``.
    """
    weights = np.asarray(keras.ops.convert_to_numpy(weights), dtype="float64")  # a layer's output on any backend
    height, width = (int(s) for s in grid)
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2] or weights.shape[-1] != height * width:
        raise ValueError(
            f"`weights` must be (B, heads, N, N) with N = h * w = {height * width}; received shape {weights.shape}."
        )
    return weights.mean(axis=(1, 2)).reshape(len(weights), height, width)
