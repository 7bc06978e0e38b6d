"""Self-attention from scratch, the token mixer that focal modulation replaces.

* ``scaled_dot_product_attention``: ``softmax(Q K^T / sqrt(d_k)) V``;
* ``MultiHeadSelfAttention``: the ViT/timm attention layer, weight-compatible
  with ``keras.layers.MultiHeadAttention`` (see ``to_keras_mha``);
* ``SelfAttentionBlock``: a pre-norm ViT block with the same ``(B, H, W, C)``
  interface as ``focaledu.FocalNetBlock``, so chapters can swap the mixer;
* ``self_attention_1d`` and ``focal_modulation_1d``: tiny single-sequence
  versions of both mixers, small enough to check by hand (Chapter 2).

Only ``keras.ops`` is used, so everything runs on every Keras backend.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from focaledu import _validate
from focaledu.layers import Mlp, layer_norm, layer_scales, scale

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
    if mask is not None:
        scores = ops.where(ops.cast(mask, "bool"), scores, MASK_VALUE)
    # Each query's weights over the keys sum to 1: softmax over the key axis.
    weights = ops.softmax(scores, axis=-1)
    out = ops.matmul(weights, v)
    return (out, weights) if return_scores else out


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
    """Symbolic outputs of an attention layer on ``x``: the tokens, and the ``(B, heads, N, N)`` weights if asked.

    Needed because Keras infers a single output from ``compute_output_shape``;
    with ``return_attention_scores=True`` there are two.
    """
    y = keras.KerasTensor(x.shape, dtype=dtype)
    if not return_attention_scores:
        return y
    spatial = x.shape[1:-1]
    tokens = None if None in spatial else math.prod(spatial)
    return y, keras.KerasTensor((x.shape[0], num_heads, tokens, tokens), dtype=dtype)


@keras.saving.register_keras_serializable(package="focaledu")
class MultiHeadSelfAttention(layers.Layer):
    """Multi-head self-attention over all tokens, timm ``Attention`` style.

    ``q``, ``k`` and ``v`` are separate ``Dense(dim)`` layers (timm fuses them
    into one ``qkv``; the maths is the same) and ``proj`` is the output
    projection. Each of the ``num_heads`` heads attends with its own
    ``dim // num_heads`` channels.

    Attention alone does not know where tokens are: permuting the tokens
    permutes the output. ``relative_position_bias=True`` adds Swin's learned
    bias ``B[h, i - j]`` to every head's scores, one number per head and
    relative offset on the ``H x W`` grid (a table of ``(2H - 1)(2W - 1)``
    rows), so attention can prefer near or far tokens; it needs feature-map
    inputs of a fixed size.

    Args:
        dim: channels of the input and output.
        num_heads: number of heads; must divide ``dim``.
        qkv_bias: biases in ``q``, ``k`` and ``v`` (timm's default is False,
            ViT's and Keras' are True).
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after ``proj``.
        relative_position_bias: add Swin's learned relative position bias to
            the scores (``(2H - 1)(2W - 1) * num_heads`` parameters).

    Call arguments:
        x: tokens ``(B, N, dim)`` or a feature map ``(B, H, W, dim)``, whose
            ``H * W`` positions all attend to each other; the output has the
            shape of ``x``.
        return_attention_scores: also return the attention weights
            ``(B, num_heads, N, N)`` (``N = H * W`` for a feature map).
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
        self.q = layers.Dense(self.dim, use_bias=self.qkv_bias, name="q")
        self.k = layers.Dense(self.dim, use_bias=self.qkv_bias, name="k")
        self.v = layers.Dense(self.dim, use_bias=self.qkv_bias, name="v")
        self.attn_drop = layers.Dropout(self.attn_drop_rate, name="attn_drop")
        self.proj = layers.Dense(self.dim, name="proj")
        self.proj_drop = layers.Dropout(self.proj_drop_rate, name="proj_drop")
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
        weights = ops.softmax(scores, axis=-1)
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
    """Swin's ``(N * N,)`` index into the relative position bias table, ``N = height * width``.

    Entry ``i * N + j`` is the table row of the offset from token ``j`` to
    token ``i`` (row-major tokens): ``(dy + height - 1) * (2 * width - 1) + dx + width - 1``
    with ``(dy, dx) = (y_i - y_j, x_i - x_j)``, so equal offsets share a row.
    """
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    coords = np.stack([rows.ravel(), cols.ravel()])  # (2, N)
    offsets = coords[:, :, None] - coords[:, None, :]  # (2, N, N)
    index = (offsets[0] + height - 1) * (2 * width - 1) + offsets[1] + width - 1
    return index.reshape(-1).astype("int32")


def to_keras_mha(layer, input_shape=None):
    """A ``keras.layers.MultiHeadAttention`` computing the same function as ``layer``.

    Keras stores a head's projection as a ``(dim, heads, head_dim)`` einsum
    kernel; ours is a ``(dim, dim)`` Dense kernel whose columns are grouped by
    head, so a reshape is all it takes. Call the result as ``mha(x, x)``; on a
    feature map Keras attends over height and width jointly, as we do.

    Args:
        layer: a built ``MultiHeadSelfAttention`` with ``qkv_bias=True`` (Keras'
            layer always has biases).
        input_shape: the shape it will be called on; Keras builds for one rank.
            Default ``(None, None, dim)``, tokens.
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
    """A pre-norm ViT block, interchangeable with ``focaledu.FocalNetBlock``::

        x = x + drop_path(gamma_1 * attn(norm1(x)))
        x = x + drop_path(gamma_2 * mlp(norm2(x)))

    Both blocks map ``(B, H, W, dim)`` to ``(B, H, W, dim)``, use the same
    LayerNorm (eps 1e-5), MLP and stochastic depth, and differ only in the
    token mixer: global attention here, focal modulation there.

    Args:
        dim: channels.
        num_heads: attention heads; must divide ``dim``.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        qkv_bias: biases in the q, k, v projections.
        drop: dropout after the attention projection and in the MLP.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic depth rate of this block.
        use_layerscale: learnable per-channel residual scales ``gamma_1``,
            ``gamma_2`` initialised to ``layerscale_value``.
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

        self.norm1 = layer_norm("norm1")
        self.attn = MultiHeadSelfAttention(
            self.dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=self.drop_rate,
            name="attn",
        )
        self.norm2 = layer_norm("norm2")
        self.mlp = Mlp(self.dim, int(self.dim * self.mlp_ratio), drop=self.drop_rate, name="mlp")

    def build(self, input_shape):
        if len(input_shape) not in (3, 4) or input_shape[-1] != self.dim:
            raise ValueError(
                f"SelfAttentionBlock(dim={self.dim}) expects inputs of shape (batch, height, width, "
                f"{self.dim}); received shape {tuple(input_shape)}. Set `dim` to the channel count."
            )
        # One keep/drop decision per sample, rescaled like timm's DropPath.
        noise_shape = (None,) + (1,) * (len(input_shape) - 1)
        self.drop_path = layers.Dropout(self.drop_path_rate, noise_shape=noise_shape, name="drop_path")
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

    ``y_i = sum_j a_ij v_j`` with ``a_ij = softmax_j(q_i . k_j / sqrt(d_k))``:
    every query first interacts with every key (``N^2`` dot products), then the
    values are aggregated with the resulting weights.

    Args:
        x: tokens ``(N, C)``.
        wq, wk: ``(C, d_k)`` projections; wv: ``(C, d_v)``.
        return_weights: also return ``a``, ``(N, N)``.
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

    ``A = B + (1/n) 1 1^T B``, where the band ``B[i, i + t - K // 2] = kernel[t]``
    is the local aggregation (zero padding) and the second term its global
    average. ``A`` depends on positions only, whereas attention's weights
    depend on the content of every pair of tokens.

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
