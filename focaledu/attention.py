"""Self-attention from scratch, the token mixer that focal modulation replaces; ``keras.ops`` only."""

import math

import keras
import numpy as np
from keras import layers, ops

from focaledu import _validate
from focaledu.block_parts import Mlp, layer_norm, layer_scales, scale

#: Added to the scores of masked positions. Finite (unlike -inf) so that a
#: fully masked row gives uniform weights instead of NaN, as in Keras.
MASK_VALUE = -1e9


def scaled_dot_product_attention(q, k, v, mask=None, return_scores=False):
    """``softmax(q k^T / sqrt(d_k)) v`` over the last two axes.

    Args:
        q: queries ``(..., N_q, d_k)``.
        k: keys ``(..., N_k, d_k)``.
        v: values ``(..., N_k, d_v)``.
        mask: optional, broadcastable to ``(..., N_q, N_k)``; True (or 1) where
            query ``i`` may attend to key ``j``.
        return_scores: also return the attention weights ``(..., N_q, N_k)``
            (after the softmax; Keras calls them "attention scores" too).

    Returns:
        ``(..., N_q, d_v)``, and the weights when ``return_scores``.
    """
    # Dividing by sqrt(d_k) keeps the logits' variance near 1 whatever the head
    # width, so the softmax does not saturate into a one-hot at initialisation.
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * scale
    # Each query's weights over the keys sum to 1: softmax over the key axis.
    weights = masked_softmax(scores, None if mask is None else ops.cast(mask, "bool"))
    out = ops.matmul(weights, v)
    return (out, weights) if return_scores else out


def masked_softmax(scores, mask=None):
    """``softmax`` over the last axis, with ``MASK_VALUE`` where ``mask`` is False.

    Half-precision scores are masked and normalised in float32, where ``MASK_VALUE`` is finite.
    """
    dtype = keras.backend.standardize_dtype(scores.dtype)
    if dtype in ("float16", "bfloat16"):
        scores = ops.cast(scores, "float32")
    if mask is not None:
        scores = ops.where(mask, scores, MASK_VALUE)
    weights = ops.softmax(scores, axis=-1)
    return weights if keras.backend.standardize_dtype(weights.dtype) == dtype else ops.cast(weights, dtype)


def split_heads(x, num_heads):
    """``(B, N, C)`` -> ``(B, num_heads, N, C // num_heads)``.

    Head ``h`` owns channels ``[h * d, (h + 1) * d)``, as in timm and
    ``keras.layers.MultiHeadAttention``. Reshaping straight to
    ``(B, heads, N, d)`` would instead mix tokens across heads.
    """
    head_dim = x.shape[-1] // num_heads
    x = ops.reshape(x, (-1, _tokens(x), num_heads, head_dim))
    return ops.transpose(x, (0, 2, 1, 3))


def merge_heads(x):
    """``(B, heads, N, d)`` -> ``(B, N, heads * d)``, the inverse of ``split_heads``."""
    x = ops.transpose(x, (0, 2, 1, 3))
    return ops.reshape(x, (-1, _tokens(x), x.shape[2] * x.shape[3]))


def _tokens(x):
    # Static when known; a dynamic size otherwise (e.g. keras.Input((None, C))).
    return x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]


def attention_output_spec(x, num_heads, dtype, return_attention_scores=False):
    """Symbolic outputs of an attention layer on ``x``: the tokens, and the ``(B, heads, N, N)`` weights if asked."""
    y = keras.KerasTensor(x.shape, dtype=dtype)
    if not return_attention_scores:
        return y
    spatial = x.shape[1:-1]
    tokens = None if None in spatial else math.prod(spatial)
    return y, keras.KerasTensor((x.shape[0], num_heads, tokens, tokens), dtype=dtype)


@keras.saving.register_keras_serializable(package="focaledu")
class MultiHeadSelfAttention(layers.Layer):
    """Multi-head self-attention over all tokens, timm ``Attention`` style (separate ``q``, ``k``, ``v`` and ``proj``).

    Args:
        dim: channels of the input and output.
        num_heads: number of heads; must divide ``dim``.
        qkv_bias: biases in ``q``, ``k`` and ``v``.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after ``proj``.
        relative_position_bias: add Swin's learned relative position bias (needs a fixed-size feature map).

    Call arguments:
        x: tokens ``(B, N, dim)`` or a feature map ``(B, H, W, dim)``; the output has the shape of ``x``.
        return_attention_scores: also return the weights ``(B, num_heads, N, N)`` (``N = H * W`` for a map).
    """

    def __init__(self, dim, num_heads=1, qkv_bias=True, attn_drop=0.0, proj_drop=0.0,
                 relative_position_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.dim = _validate.positive_int("dim", dim)
        self.num_heads = _validate.positive_int("num_heads", num_heads)
        if self.dim % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide `dim` so every head gets dim // num_heads channels; "
                f"received dim={dim!r} and num_heads={num_heads!r}."
            )
        self.head_dim = self.dim // self.num_heads
        self.qkv_bias = _validate.boolean("qkv_bias", qkv_bias)
        self.attn_drop_rate = _validate.rate("attn_drop", attn_drop)
        self.proj_drop_rate = _validate.rate("proj_drop", proj_drop)
        self.relative_position_bias = _validate.boolean("relative_position_bias", relative_position_bias)

    def build(self, input_shape):
        if len(input_shape) not in (3, 4) or input_shape[-1] != self.dim:
            raise ValueError(
                f"MultiHeadSelfAttention(dim={self.dim}) expects inputs of shape (batch, tokens, "
                f"{self.dim}) or (batch, height, width, {self.dim}); received shape "
                f"{tuple(input_shape)}."
            )
        if len(input_shape) == 4 and None in input_shape[1:3]:
            raise ValueError(
                "MultiHeadSelfAttention needs a known height and width for (batch, height, width, "
                f"channels) inputs; received shape {tuple(input_shape)}."
            )
        tokens_shape = (None, None, self.dim)
        policy = self.dtype_policy
        self.q = layers.Dense(self.dim, use_bias=self.qkv_bias, name="q", dtype=policy)
        self.k = layers.Dense(self.dim, use_bias=self.qkv_bias, name="k", dtype=policy)
        self.v = layers.Dense(self.dim, use_bias=self.qkv_bias, name="v", dtype=policy)
        self.attn_drop = layers.Dropout(self.attn_drop_rate, name="attn_drop", dtype=policy)
        self.proj = layers.Dense(self.dim, name="proj", dtype=policy)
        self.proj_drop = layers.Dropout(self.proj_drop_rate, name="proj_drop", dtype=policy)
        for dense in (self.q, self.k, self.v, self.proj):
            dense.build(tokens_shape)
        if self.relative_position_bias:
            if len(input_shape) != 4:
                raise ValueError(
                    "relative_position_bias=True needs feature-map inputs (batch, height, width, "
                    f"channels) to know the token grid; received shape {tuple(input_shape)}."
                )
            height, width = input_shape[1:3]
            self.relative_position_bias_table = self.add_weight(
                shape=((2 * height - 1) * (2 * width - 1), self.num_heads),
                initializer=keras.initializers.TruncatedNormal(stddev=0.02),  # as Swin
                name="relative_position_bias_table",
            )
            self._bias_grid = (int(height), int(width))
            self._relative_index = relative_position_index(height, width)

    def call(self, x, training=None, return_attention_scores=False):
        _validate.float_input("inputs", x.dtype)
        grid = x.shape[1:3] if len(x.shape) == 4 else None
        if grid is not None:  # a feature map is a sequence of H * W tokens
            x = ops.reshape(x, (-1, grid[0] * grid[1], self.dim))

        q, k, v = (split_heads(f(x), self.num_heads) for f in (self.q, self.k, self.v))
        # Same computation as scaled_dot_product_attention, with dropout on the
        # weights (where timm and Keras apply it) between softmax and V.
        scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if self.relative_position_bias:
            if grid is None or tuple(grid) != self._bias_grid:
                raise ValueError(
                    f"This layer's relative position bias was built for a {self._bias_grid} token grid; "
                    f"received inputs of shape {tuple(x.shape)}."
                )
            scores = scores + ops.cast(self.position_bias(), scores.dtype)
        weights = masked_softmax(scores)
        y = ops.matmul(self.attn_drop(weights, training=training), v)
        y = self.proj_drop(self.proj(merge_heads(y)), training=training)

        if grid is not None:
            y = ops.reshape(y, (-1, grid[0], grid[1], self.dim))
        return (y, weights) if return_attention_scores else y

    def position_bias(self):
        """The ``(num_heads, N, N)`` bias added to the scores (needs ``relative_position_bias=True``)."""
        tokens = self._bias_grid[0] * self._bias_grid[1]
        bias = ops.take(self.relative_position_bias_table, self._relative_index, axis=0)
        return ops.transpose(ops.reshape(bias, (tokens, tokens, self.num_heads)), (2, 0, 1))

    def compute_output_spec(self, x, training=None, return_attention_scores=False):
        return attention_output_spec(x, self.num_heads, self.compute_dtype, return_attention_scores)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_heads=self.num_heads,
            qkv_bias=self.qkv_bias,
            attn_drop=self.attn_drop_rate,
            proj_drop=self.proj_drop_rate,
            relative_position_bias=self.relative_position_bias,
        )
        return config


def relative_position_index(height, width):
    """Swin's ``(N * N,)`` index into the relative position bias table, ``N = height * width``."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    coords = np.stack([rows.ravel(), cols.ravel()])  # (2, N)
    offsets = coords[:, :, None] - coords[:, None, :]  # (2, N, N)
    index = (offsets[0] + height - 1) * (2 * width - 1) + offsets[1] + width - 1
    return index.reshape(-1).astype("int32")


# --- Swin's window attention: the baseline the FocalNet paper compares against ---


def window_plan(height, width, window_size, shift_size=0):
    """How ``WindowAttention`` tiles a ``height x width`` map: ``(window_h, window_w, shift)``, as Swin.

    A map whose smaller side fits in ``window_size`` is not split that way and not shifted.

    Raises:
        ValueError: if the windows do not tile the map exactly (no padding).
    """
    height = _validate.positive_int("height", height)
    width = _validate.positive_int("width", width)
    window_size = _validate.positive_int("window_size", window_size)
    shift_size = _validate.positive_int("shift_size", shift_size, minimum=0)
    if height <= window_size and width <= window_size:
        return height, width, 0
    if min(height, width) <= window_size:
        window, shift_size = min(height, width), 0
    else:
        window = window_size
    if height % window or width % window:
        shrunk = "" if window == window_size else f" (the map's smaller side, {window}, as Swin shrinks the window)"
        raise ValueError(
            f"`window_size` must divide the feature map's height and width: {height}x{width} tokens cannot "
            f"be tiled by {window}x{window} windows{shrunk}; received window_size={window_size!r}. Choose "
            "a window size that divides both sides (this layer does not pad), or one at least as large as "
            "the map for a single window."
        )
    return window, window, shift_size


def shifted_window_mask(height, width, window, shift):
    """Swin's attention mask for shifted windows, ``(num_windows, window**2, window**2)`` booleans.

    True where query ``i`` may attend to key ``j``.
    """
    labels = np.zeros((height, width), dtype="int32")
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = 0
    for rows in bounds:
        for cols in bounds:
            labels[rows, cols] = region
            region += 1
    windows = labels.reshape(height // window, window, width // window, window).transpose(0, 2, 1, 3)
    windows = windows.reshape(-1, window * window)
    return windows[:, :, None] == windows[:, None, :]


@keras.saving.register_keras_serializable(package="focaledu")
class WindowAttention(layers.Layer):
    """Swin's (shifted) window self-attention on a feature map (Liu et al., 2021).

    Attention runs inside non-overlapping ``M x M`` windows with a learned relative position bias; with
    ``shift_size > 0`` the map is rolled first and Swin's mask (``shifted_window_mask``) applied. Names
    follow Swin (``qkv``, ``proj``, ``relative_position_bias_table``).

    Args:
        dim: channels of the input and output.
        num_heads: attention heads; must divide ``dim``.
        window_size: side ``M`` of the square windows; must divide the map's sides (see ``window_plan``).
        shift_size: cyclic shift of the windows, ``0 <= shift_size < window_size``.
        qkv_bias: biases in ``qkv``.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after ``proj``.

    Call arguments:
        x: a feature map ``(B, H, W, dim)`` of a known size; the output has its shape.
        return_attention_scores: also return the weights ``(B, num_windows, num_heads, M^2, M^2)``.
    """

    def __init__(self, dim, num_heads=1, window_size=7, shift_size=0, qkv_bias=True, attn_drop=0.0,
                 proj_drop=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = _validate.positive_int("dim", dim)
        self.num_heads = _validate.positive_int("num_heads", num_heads)
        if self.dim % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide `dim` so every head gets dim // num_heads channels; "
                f"received dim={dim!r} and num_heads={num_heads!r}."
            )
        self.head_dim = self.dim // self.num_heads
        self.window_size = _validate.positive_int("window_size", window_size)
        self.shift_size = _validate.positive_int("shift_size", shift_size, minimum=0)
        if self.shift_size >= self.window_size:
            raise ValueError(
                f"`shift_size` must be smaller than `window_size` (Swin shifts by window_size // 2); "
                f"received shift_size={shift_size!r} and window_size={window_size!r}."
            )
        self.qkv_bias = _validate.boolean("qkv_bias", qkv_bias)
        self.attn_drop_rate = _validate.rate("attn_drop", attn_drop)
        self.proj_drop_rate = _validate.rate("proj_drop", proj_drop)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] != self.dim or None in input_shape[1:3]:
            raise ValueError(
                f"WindowAttention(dim={self.dim}) expects feature maps of a known size, shape (batch, "
                f"height, width, {self.dim}); received shape {tuple(input_shape)}."
            )
        self.grid = (int(input_shape[1]), int(input_shape[2]))
        window_h, window_w, shift = window_plan(*self.grid, self.window_size, self.shift_size)
        self.window = (window_h, window_w)  # the windows actually used on this map
        self.shift = shift  # 0 when the map is one window (or as small as one), as in Swin
        self.num_windows = (self.grid[0] // window_h) * (self.grid[1] // window_w)
        policy = self.dtype_policy
        self.qkv = layers.Dense(3 * self.dim, use_bias=self.qkv_bias, name="qkv", dtype=policy)
        self.attn_drop = layers.Dropout(self.attn_drop_rate, name="attn_drop", dtype=policy)
        self.proj = layers.Dense(self.dim, name="proj", dtype=policy)
        self.proj_drop = layers.Dropout(self.proj_drop_rate, name="proj_drop", dtype=policy)
        self.qkv.build((None, None, self.dim))
        self.proj.build((None, None, self.dim))
        self.relative_position_bias_table = self.add_weight(
            shape=((2 * window_h - 1) * (2 * window_w - 1), self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),  # as Swin
            name="relative_position_bias_table",
        )
        self._relative_index = relative_position_index(window_h, window_w)
        self._mask = shifted_window_mask(*self.grid, window_h, shift) if shift else None

    def position_bias(self):
        """The ``(num_heads, M^2, M^2)`` relative position bias shared by all windows."""
        tokens = self.window[0] * self.window[1]
        bias = ops.take(self.relative_position_bias_table, self._relative_index, axis=0)
        return ops.transpose(ops.reshape(bias, (tokens, tokens, self.num_heads)), (2, 0, 1))

    def call(self, x, training=None, return_attention_scores=False):
        _validate.float_input("inputs", x.dtype)
        if tuple(x.shape[1:3]) != self.grid:
            raise ValueError(
                f"This WindowAttention was built for a {self.grid[0]}x{self.grid[1]} map (its windows, "
                f"mask and position bias depend on it); received inputs of shape {tuple(x.shape)}."
            )
        (height, width), (window_h, window_w) = self.grid, self.window
        tokens = window_h * window_w
        if self.shift:  # the cyclic shift: token (i, j) moves to (i - s, j - s)
            x = ops.roll(ops.roll(x, -self.shift, axis=1), -self.shift, axis=2)
        # (B, H, W, C) -> (B * windows, M^2, C), windows row-major, tokens row-major inside.
        x = ops.reshape(x, (-1, height // window_h, window_h, width // window_w, window_w, self.dim))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, tokens, self.dim))

        qkv = ops.reshape(self.qkv(x), (-1, tokens, 3, self.num_heads, self.head_dim))
        q, k, v = ops.unstack(ops.transpose(qkv, (2, 0, 3, 1, 4)), 3, axis=0)  # each (B*nW, heads, M^2, d)
        scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = scores + ops.cast(self.position_bias(), scores.dtype)
        scores = ops.reshape(scores, (-1, self.num_windows, self.num_heads, tokens, tokens))
        # Tokens brought together by the roll do not see each other.
        weights = masked_softmax(scores, None if self._mask is None else self._mask[None, :, None])
        dropped = ops.reshape(self.attn_drop(weights, training=training), (-1, self.num_heads, tokens, tokens))
        y = merge_heads(ops.matmul(dropped, v))  # (B * windows, M^2, C)
        y = self.proj_drop(self.proj(y), training=training)

        y = ops.reshape(y, (-1, height // window_h, width // window_w, window_h, window_w, self.dim))
        y = ops.reshape(ops.transpose(y, (0, 1, 3, 2, 4, 5)), (-1, height, width, self.dim))
        if self.shift:
            y = ops.roll(ops.roll(y, self.shift, axis=1), self.shift, axis=2)
        return (y, weights) if return_attention_scores else y

    def compute_output_spec(self, x, training=None, return_attention_scores=False):
        y = keras.KerasTensor(x.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return y
        height, width = x.shape[1:3]
        window_h, window_w, _ = window_plan(height, width, self.window_size, self.shift_size)
        windows = (height // window_h) * (width // window_w)
        tokens = window_h * window_w
        shape = (x.shape[0], windows, self.num_heads, tokens, tokens)
        return y, keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_heads=self.num_heads,
            window_size=self.window_size,
            shift_size=self.shift_size,
            qkv_bias=self.qkv_bias,
            attn_drop=self.attn_drop_rate,
            proj_drop=self.proj_drop_rate,
        )
        return config


def to_keras_mha(layer, input_shape=None):
    """A ``keras.layers.MultiHeadAttention`` computing the same function as ``layer``; call it as ``mha(x, x)``.

    Args:
        layer: a built ``MultiHeadSelfAttention`` with ``qkv_bias=True``.
        input_shape: the shape it will be called on; default ``(None, None, dim)``, tokens.
    """
    if not isinstance(layer, MultiHeadSelfAttention) or not layer.built:
        raise ValueError("`layer` must be a built focaledu MultiHeadSelfAttention; call it once first.")
    if not layer.qkv_bias:
        raise ValueError("keras.layers.MultiHeadAttention always has q/k/v biases; use qkv_bias=True.")
    if layer.relative_position_bias:
        raise ValueError("keras.layers.MultiHeadAttention has no relative position bias; "
                         "use relative_position_bias=False.")
    heads, head_dim, dim = layer.num_heads, layer.head_dim, layer.dim
    mha = layers.MultiHeadAttention(heads, key_dim=head_dim, dropout=layer.attn_drop_rate)
    input_shape = (None, None, dim) if input_shape is None else tuple(input_shape)
    mha.build(input_shape, input_shape)
    weights = []
    for dense in (layer.q, layer.k, layer.v):
        kernel, bias = (ops.convert_to_numpy(w) for w in (dense.kernel, dense.bias))
        weights += [kernel.reshape(dim, heads, head_dim), bias.reshape(heads, head_dim)]
    kernel, bias = (ops.convert_to_numpy(w) for w in (layer.proj.kernel, layer.proj.bias))
    weights += [kernel.reshape(heads, head_dim, dim), bias]
    mha.set_weights(weights)
    return mha


@keras.saving.register_keras_serializable(package="focaledu")
class SelfAttentionBlock(layers.Layer):
    """A pre-norm ViT block, interchangeable with ``focaledu.FocalNetBlock`` (only the token mixer differs).

    Args:
        dim: channels.
        num_heads: attention heads; must divide ``dim``.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        qkv_bias: biases in the q, k, v projections.
        drop: dropout after the attention projection and in the MLP.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic depth rate of this block.
        use_layerscale: learnable per-channel residual scales ``gamma_1``, ``gamma_2``.
        layerscale_value: their initial value.

    Call arguments:
        x: ``(B, H, W, dim)`` (or tokens ``(B, N, dim)``).
        return_attention_scores: also return the weights ``(B, heads, N, N)``.
    """

    def __init__(
        self,
        dim,
        num_heads=1,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop=0.0,
        attn_drop=0.0,
        drop_path=0.0,
        use_layerscale=False,
        layerscale_value=1e-4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim = _validate.positive_int("dim", dim)
        self.mlp_ratio = _validate.positive_float("mlp_ratio", mlp_ratio)
        self.drop_rate = _validate.rate("drop", drop)
        self.drop_path_rate = _validate.rate("drop_path", drop_path)
        self.use_layerscale = _validate.boolean("use_layerscale", use_layerscale)
        self.layerscale_value = _validate.positive_float("layerscale_value", layerscale_value)

        policy = self.dtype_policy
        self.norm1 = layer_norm("norm1", policy)
        self.attn = MultiHeadSelfAttention(
            self.dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=self.drop_rate,
            name="attn", dtype=policy,
        )
        self.norm2 = layer_norm("norm2", policy)
        self.mlp = Mlp(self.dim, int(self.dim * self.mlp_ratio), drop=self.drop_rate, name="mlp", dtype=policy)

    def build(self, input_shape):
        if len(input_shape) not in (3, 4) or input_shape[-1] != self.dim:
            raise ValueError(
                f"SelfAttentionBlock(dim={self.dim}) expects inputs of shape (batch, height, width, "
                f"{self.dim}); received shape {tuple(input_shape)}. Set `dim` to the channel count."
            )
        # One keep/drop decision per sample, rescaled like timm's DropPath.
        noise_shape = (None,) + (1,) * (len(input_shape) - 1)
        self.drop_path = layers.Dropout(
            self.drop_path_rate, noise_shape=noise_shape, name="drop_path", dtype=self.dtype_policy
        )
        self.norm1.build(input_shape)
        self.attn.build(input_shape)
        self.norm2.build(input_shape)
        self.mlp.build(input_shape)
        self.gamma_1, self.gamma_2 = layer_scales(self, self.dim, self.layerscale_value, self.use_layerscale)

    def call(self, x, training=None, return_attention_scores=False):
        branch, weights = self.attn(self.norm1(x), training=training, return_attention_scores=True)
        x = x + self.drop_path(scale(branch, self.gamma_1), training=training)
        branch = self.mlp(self.norm2(x), training=training)
        x = x + self.drop_path(scale(branch, self.gamma_2), training=training)
        return (x, weights) if return_attention_scores else x

    def compute_output_spec(self, x, training=None, return_attention_scores=False):
        return attention_output_spec(x, self.attn.num_heads, self.compute_dtype, return_attention_scores)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_heads=self.attn.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.attn.qkv_bias,
            drop=self.drop_rate,
            attn_drop=self.attn.attn_drop_rate,
            drop_path=self.drop_path_rate,
            use_layerscale=self.use_layerscale,
            layerscale_value=self.layerscale_value,
        )
        return config


# --- Chapter 2: both mixers on one short sequence, small enough to do by hand ---


def self_attention_1d(x, wq, wk, wv, return_weights=False):
    """Single-head self-attention on one sequence: interaction, then aggregation.

    Args:
        x: tokens ``(N, C)``.
        wq, wk: ``(C, d_k)`` projections; wv: ``(C, d_v)``.
        return_weights: also return the weights ``(N, N)``.
    """
    q, k, v = ops.matmul(x, wq), ops.matmul(x, wk), ops.matmul(x, wv)
    return scaled_dot_product_attention(q, k, v, return_scores=return_weights)


def focal_modulation_1d(x, wq, wz, kernel, return_modulator=False):
    """A stripped-down focal modulation on one sequence: aggregation, then interaction.

    ``y_i = q(x_i) * m_i`` with ``m_i = local_i + mean_j(local_j)`` and
    ``local_i = sum_t kernel[t] z_{i + t - K // 2}`` (zero padding): the context
    ``z = x wz`` is aggregated first, around every position and globally, and
    only then does each query interact with its own aggregate, element-wise.

    The real ``FocalModulation`` adds a GELU after each level, several levels,
    per-token gates from ``x`` instead of the fixed weights 1 and 1, and a
    linear ``h`` on the modulator; they are left out so the numbers can be
    checked by hand.

    Args:
        x: tokens ``(N, C)``.
        wq, wz: ``(C, D)`` projections to the query and the context.
        kernel: ``(K,)`` (shared by all channels) or ``(K, D)`` (depthwise), K odd.
            Applied as a cross-correlation, like ``keras.layers.DepthwiseConv1D``.
        return_modulator: also return ``m``, ``(N, D)``.
    """
    q, z = ops.matmul(x, wq), ops.matmul(x, wz)
    kernel = ops.convert_to_tensor(kernel, dtype=z.dtype)
    if len(kernel.shape) == 1:
        kernel = ops.expand_dims(kernel, -1)
    size, n = kernel.shape[0], z.shape[0]
    if size % 2 == 0:
        raise ValueError(f"`kernel` must have an odd length; received length {size}.")
    half = size // 2
    padded = ops.pad(z, ((half, half), (0, 0)))
    local = sum(kernel[t] * padded[t : t + n] for t in range(size))
    modulator = local + ops.mean(local, axis=0, keepdims=True)
    y = q * modulator
    return (y, modulator) if return_modulator else y


def focal_aggregation_matrix(n, kernel):
    """The ``(n, n)`` matrix ``A`` with ``modulator = A @ z`` in ``focal_modulation_1d``.

    Args:
        n: number of tokens.
        kernel: ``(K,)``, K odd, shared by all channels.
    """
    kernel = ops.convert_to_tensor(kernel, dtype="float32")
    size = kernel.shape[0]
    if len(kernel.shape) != 1 or size % 2 == 0:
        raise ValueError(f"`kernel` must be 1-D with an odd length; received shape {tuple(kernel.shape)}.")
    # Entry (i, j) holds kernel[j - i + K // 2] when that index is inside the kernel.
    offset = ops.arange(n)[None, :] - ops.arange(n)[:, None] + size // 2
    inside = (offset >= 0) & (offset < size)
    band = ops.where(inside, ops.take(kernel, ops.clip(offset, 0, size - 1)), 0.0)
    return band + ops.mean(band, axis=0, keepdims=True)
