"""The paper's nouns: PatchEmbedding, FocalModulation and FocalNetBlock, after microsoft/FocalNet (and timm's port).

Tensors are channels-last ``(B, H, W, C)``; the official 1x1 convolutions are ``Dense`` layers here.
"""

import keras
from keras import layers, ops

from focaledu import _validate
from focaledu.attention import MultiHeadSelfAttention, WindowAttention
from focaledu.block_parts import Mlp, gelu, layer_norm, layer_scales, scale


def focal_kernel_sizes(focal_level, focal_window, focal_factor):
    """``[focal_factor * k + focal_window for k < focal_level]``: one kernel per level, growing by ``focal_factor``."""
    return [focal_factor * k + focal_window for k in range(focal_level)]


#: The ablation switches earlier focaledu versions kept on the official layers
#: (Chapter 10's layers now live in ``focaledu.ablation_layers``), with their
#: official values.
LEGACY_SWITCHES = {"gating": True, "global_context": True, "pre_norm": True}


def without_legacy_switches(cls, config):
    """``config`` minus the switches an earlier version saved; raises if one of them is not official."""
    config = dict(config)
    for key, official in LEGACY_SWITCHES.items():
        if key in config and config.pop(key) != official:
            raise ValueError(
                f"This {cls.__name__} config sets `{key}`, one of Chapter 10's ablations: rebuild it with "
                f"focaledu.ablation_layers.Ablated{cls.__name__}(..., {key}=...)."
            )
    return config


@keras.saving.register_keras_serializable(package="focaledu")
class PatchEmbedding(layers.Layer):
    """Patch embedding for the stem and for downsampling between stages.

    Args:
        embed_dim: output channels.
        patch_size: the stride; the spatial size must be divisible by it.
        use_conv_embed: the official overlapping convolutions (7x7 stride 4 stem, 3x3 stride 2 downsampling).
        use_norm: LayerNorm after the projection (``patch_norm`` in the official code).
    """

    #: patch_size -> (kernel_size, padding) of the official overlapping convolutions.
    CONV_EMBED = {4: (7, 2), 2: (3, 1)}

    def __init__(self, embed_dim, patch_size=4, use_conv_embed=False, use_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = _validate.positive_int("embed_dim", embed_dim)
        self.patch_size = _validate.positive_int("patch_size", patch_size)
        self.use_conv_embed = _validate.boolean("use_conv_embed", use_conv_embed)
        self.use_norm = _validate.boolean("use_norm", use_norm)
        kernel_size, padding = self.patch_size, 0
        if use_conv_embed:
            if self.patch_size not in self.CONV_EMBED:
                raise ValueError(
                    "With use_conv_embed=True, `patch_size` must be 4 (the 7x7 stride-4 stem) or "
                    f"2 (the 3x3 stride-2 downsampling); received patch_size={patch_size!r}."
                )
            kernel_size, padding = self.CONV_EMBED[self.patch_size]
        # Explicit symmetric padding: Keras "same" pads 1 before / 2 after for
        # the 7x7 stride-4 stem, PyTorch pads 2 on both sides.
        policy = self.dtype_policy  # sublayers share it, so mixed precision reaches them (keras-hub style)
        self.pad = layers.ZeroPadding2D(padding, name="pad", dtype=policy) if padding else None
        self.proj = layers.Conv2D(
            self.embed_dim, kernel_size, strides=self.patch_size, padding="valid", name="proj", dtype=policy
        )
        self.norm = layer_norm("norm", policy) if self.use_norm else None

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"PatchEmbedding expects inputs of shape (batch, height, width, channels); "
                f"received shape {tuple(input_shape)}."
            )
        for axis, size in zip(("height", "width"), input_shape[1:3]):
            if size is not None and size % self.patch_size:
                raise ValueError(
                    f"The input {axis} ({size}) must be divisible by `patch_size`={self.patch_size}."
                )
        shape = input_shape
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.proj.build(shape)
        if self.norm is not None:
            self.norm.build(self.proj.compute_output_shape(shape))

    def call(self, x):
        _validate.float_input("inputs", x.dtype)
        if self.pad is not None:
            x = self.pad(x)
        x = self.proj(x)
        return self.norm(x) if self.norm is not None else x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        height, width = (None if s is None else s // self.patch_size for s in (height, width))
        return (batch, height, width, self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            embed_dim=self.embed_dim,
            patch_size=self.patch_size,
            use_conv_embed=self.use_conv_embed,
            use_norm=self.use_norm,
        )
        return config


@keras.saving.register_keras_serializable(package="focaledu")
class FocalModulation(layers.Layer):
    """Focal modulation: ``y_i = q(x_i) * h(sum_l g_i^l z_i^l)``, with raw gates as in the official code.

    Args:
        dim: channels of the input and output.
        focal_window: kernel size of the first level (odd).
        focal_level: number of convolutional levels ``L`` (>= 1).
        focal_factor: kernel growth per level (even, so kernels stay odd).
        bias: biases in ``f`` and ``h``.
        proj_drop: dropout after the output projection.
        use_postln_in_modulation: LayerNorm on ``q * modulator`` before ``proj``.
        normalize_modulator: divide the aggregated context by ``L + 1``.

    Call arguments:
        x: ``(B, H, W, dim)``.
        return_modulation: also return ``{"gates": (B, H, W, L+1), "modulator": (B, H, W, dim)}``.
    """

    def __init__(
        self,
        dim,
        focal_window,
        focal_level,
        focal_factor=2,
        bias=True,
        proj_drop=0.0,
        use_postln_in_modulation=False,
        normalize_modulator=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim = _validate.positive_int("dim", dim)
        self.focal_window = _validate.odd_int("focal_window", focal_window)
        self.focal_level = _validate.positive_int("focal_level", focal_level)
        self.focal_factor = _validate.even_int("focal_factor", focal_factor)
        self.bias = _validate.boolean("bias", bias)
        self.proj_drop_rate = _validate.rate("proj_drop", proj_drop)
        self.use_postln_in_modulation = _validate.boolean(
            "use_postln_in_modulation", use_postln_in_modulation
        )
        self.normalize_modulator = _validate.boolean("normalize_modulator", normalize_modulator)

        self.kernel_sizes = focal_kernel_sizes(self.focal_level, self.focal_window, self.focal_factor)
        #: Levels summed into the modulator: L convolutional + 1 global.
        self.num_levels = self.focal_level + 1
        policy = self.dtype_policy
        self.f = layers.Dense(2 * self.dim + self._gate_channels(), use_bias=self.bias, name="f", dtype=policy)
        self.focal_layers = [
            layers.DepthwiseConv2D(size, padding="same", use_bias=False, name=f"focal_layers_{k}", dtype=policy)
            for k, size in enumerate(self.kernel_sizes)
        ]
        self.h = layers.Dense(self.dim, use_bias=self.bias, name="h", dtype=policy)
        self.ln = layer_norm("ln", policy) if self.use_postln_in_modulation else None
        self.proj = layers.Dense(self.dim, name="proj", dtype=policy)
        self.proj_drop = layers.Dropout(self.proj_drop_rate, name="proj_drop", dtype=policy)

    def _gate_channels(self):
        # One gate per level; Chapter 10's uniform-gates variant has none.
        return self.num_levels

    def build(self, input_shape):
        _validate.channels_last_input(type(self).__name__, self.dim, input_shape)
        self.f.build(input_shape)
        for focal_layer in self.focal_layers:
            focal_layer.build(input_shape)
        self.h.build(input_shape)
        if self.ln is not None:
            self.ln.build(input_shape)
        self.proj.build(input_shape)

    def call(self, x, training=None, return_modulation=False):
        _validate.float_input("inputs", x.dtype)
        q, ctx_all, gates = self._aggregate(x)
        modulator = self.h(ctx_all)
        y = q * modulator
        if self.ln is not None:
            y = self.ln(y)
        y = self.proj_drop(self.proj(y), training=training)
        if return_modulation:
            return y, {"gates": gates, "modulator": modulator}
        return y

    def _aggregate(self, x):
        """Hierarchical contextualization and gated aggregation: the query, the aggregated context, the gates."""
        q, ctx, gates = ops.split(self.f(x), [self.dim, 2 * self.dim], axis=-1)
        ctx_all = 0
        for level, focal_layer in enumerate(self.focal_layers):
            ctx = gelu(focal_layer(ctx))
            ctx_all = ctx_all + ctx * gates[..., level : level + 1]
        ctx_global = gelu(ops.mean(ctx, axis=(1, 2), keepdims=True))
        ctx_all = ctx_all + ctx_global * gates[..., self.focal_level :]
        if self.normalize_modulator:
            ctx_all = ctx_all / self.num_levels
        return q, ctx_all, gates

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            focal_window=self.focal_window,
            focal_level=self.focal_level,
            focal_factor=self.focal_factor,
            bias=self.bias,
            proj_drop=self.proj_drop_rate,
            use_postln_in_modulation=self.use_postln_in_modulation,
            normalize_modulator=self.normalize_modulator,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**without_legacy_switches(cls, config))


@keras.saving.register_keras_serializable(package="focaledu")
class DepthwiseConvMixer(layers.Layer):
    """A convolution-only token mixer: focal modulation's depthwise levels without gates, global context or modulation.

    Args:
        dim: channels of the input and output.
        focal_window, focal_level, focal_factor: the depthwise kernels, as in ``FocalModulation``.
        expansion: hidden channels as a multiple of ``dim``.
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim, focal_window=3, focal_level=2, focal_factor=2, expansion=2, proj_drop=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = _validate.positive_int("dim", dim)
        self.focal_window = _validate.odd_int("focal_window", focal_window)
        self.focal_level = _validate.positive_int("focal_level", focal_level)
        self.focal_factor = _validate.even_int("focal_factor", focal_factor)
        self.expansion = _validate.positive_int("expansion", expansion)
        self.proj_drop_rate = _validate.rate("proj_drop", proj_drop)
        self.kernel_sizes = focal_kernel_sizes(self.focal_level, self.focal_window, self.focal_factor)
        self.hidden_dim = self.expansion * self.dim
        policy = self.dtype_policy
        self.expand = layers.Dense(self.hidden_dim, name="expand", dtype=policy)
        self.conv_layers = [
            layers.DepthwiseConv2D(size, padding="same", use_bias=False, name=f"conv_layers_{k}", dtype=policy)
            for k, size in enumerate(self.kernel_sizes)
        ]
        self.proj = layers.Dense(self.dim, name="proj", dtype=policy)
        self.proj_drop = layers.Dropout(self.proj_drop_rate, name="proj_drop", dtype=policy)

    def build(self, input_shape):
        _validate.channels_last_input("DepthwiseConvMixer", self.dim, input_shape)
        self.expand.build(input_shape)
        hidden_shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
        for conv in self.conv_layers:
            conv.build(hidden_shape)
        self.proj.build(hidden_shape)

    def call(self, x, training=None):
        _validate.float_input("inputs", x.dtype)
        x = self.expand(x)
        for conv in self.conv_layers:
            x = gelu(conv(x))
        return self.proj_drop(self.proj(x), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            focal_window=self.focal_window,
            focal_level=self.focal_level,
            focal_factor=self.focal_factor,
            expansion=self.expansion,
            proj_drop=self.proj_drop_rate,
        )
        return config


@keras.saving.register_keras_serializable(package="focaledu")
class FocalNetBlock(layers.Layer):
    """A Transformer block with self-attention replaced by focal modulation (pre-norm, or ``use_postln``).

    Args:
        dim: channels.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        drop: dropout in the mixer's output projection and the MLP.
        drop_path: stochastic depth rate of this block.
        focal_level, focal_window, focal_factor: see ``FocalModulation``.
        use_layerscale: learnable per-channel scales ``gamma_1``, ``gamma_2``.
        layerscale_value: initial layer scale.
        use_postln: post-norm instead of pre-norm.
        use_postln_in_modulation, normalize_modulator: see ``FocalModulation``.
        mixer: ``"focal"`` (``FocalModulation``), ``"attention"`` (global, with relative position bias),
            ``"dwconv"`` (``DepthwiseConvMixer``) or ``"window"`` (``WindowAttention``).
        num_heads: attention heads; None picks ``dim // 32`` when 32 divides ``dim``, else one.
        window_size: window side for ``mixer="window"``; see ``focaledu.attention.window_plan``.
        shift_size: cyclic window shift for ``mixer="window"``, ``0 <= shift_size < window_size``.

    Call arguments:
        return_modulation: also return the gates and modulator (``mixer="focal"`` only; raises otherwise).
    """

    MIXERS = ("focal", "attention", "dwconv", "window")

    def __init__(
        self,
        dim,
        mlp_ratio=4.0,
        drop=0.0,
        drop_path=0.0,
        focal_level=2,
        focal_window=3,
        focal_factor=2,
        use_layerscale=False,
        layerscale_value=1e-4,
        use_postln=False,
        use_postln_in_modulation=False,
        normalize_modulator=False,
        mixer="focal",
        num_heads=None,
        window_size=7,
        shift_size=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim = _validate.positive_int("dim", dim)
        self.mlp_ratio = _validate.positive_float("mlp_ratio", mlp_ratio)
        self.drop_rate = _validate.rate("drop", drop)
        self.drop_path_rate = _validate.rate("drop_path", drop_path)
        self.focal_level = _validate.positive_int("focal_level", focal_level)
        self.focal_window = _validate.odd_int("focal_window", focal_window)
        self.focal_factor = _validate.even_int("focal_factor", focal_factor)
        self.use_layerscale = _validate.boolean("use_layerscale", use_layerscale)
        self.layerscale_value = _validate.positive_float("layerscale_value", layerscale_value)
        self.use_postln = _validate.boolean("use_postln", use_postln)
        self.use_postln_in_modulation = _validate.boolean("use_postln_in_modulation", use_postln_in_modulation)
        self.normalize_modulator = _validate.boolean("normalize_modulator", normalize_modulator)
        self.mixer = _validate.choice("mixer", mixer, self.MIXERS)
        self.num_heads = _validate.optional_positive_int("num_heads", num_heads)
        self.window_size = _validate.positive_int("window_size", window_size)
        self.shift_size = _validate.positive_int("shift_size", shift_size, minimum=0)

        policy = self.dtype_policy
        self.norm1 = self._norm1(policy)
        self.modulation = self.attn = self.dwconv = None
        if self.mixer == "focal":
            self.modulation = self._focal_modulation(
                dim=self.dim,
                focal_window=self.focal_window,
                focal_level=self.focal_level,
                focal_factor=self.focal_factor,
                proj_drop=self.drop_rate,
                use_postln_in_modulation=self.use_postln_in_modulation,
                normalize_modulator=self.normalize_modulator,
                name="modulation",
                dtype=policy,
            )
        elif self.mixer in ("attention", "window"):
            heads = self.num_heads or (self.dim // 32 if self.dim % 32 == 0 else 1)
            if self.mixer == "attention":
                self.attn = MultiHeadSelfAttention(
                    self.dim, heads, qkv_bias=True, proj_drop=self.drop_rate, relative_position_bias=True,
                    name="attn", dtype=policy,
                )
            else:
                self.attn = WindowAttention(
                    self.dim, heads, window_size=self.window_size, shift_size=self.shift_size, qkv_bias=True,
                    proj_drop=self.drop_rate, name="attn", dtype=policy,
                )
        else:
            self.dwconv = DepthwiseConvMixer(
                self.dim,
                focal_window=self.focal_window,
                focal_level=self.focal_level,
                focal_factor=self.focal_factor,
                proj_drop=self.drop_rate,
                name="dwconv",
                dtype=policy,
            )
        # Stochastic depth: one keep/drop decision per sample, rescaled like timm's DropPath.
        self.drop_path = layers.Dropout(
            self.drop_path_rate, noise_shape=(None, 1, 1, 1), name="drop_path", dtype=policy
        )
        self.norm2 = layer_norm("norm2", policy)
        self.mlp = Mlp(self.dim, int(self.dim * self.mlp_ratio), drop=self.drop_rate, name="mlp", dtype=policy)

    # Factories that Chapter 10's AblatedFocalNetBlock overrides.
    def _norm1(self, policy):
        return layer_norm("norm1", policy)

    def _focal_modulation(self, **kwargs):
        return FocalModulation(**kwargs)

    @property
    def token_mixer(self):
        """The mixer sublayer: ``modulation``, ``attn`` (attention or window) or ``dwconv``, as ``mixer`` says."""
        return {"focal": self.modulation, "dwconv": self.dwconv}.get(self.mixer, self.attn)

    def build(self, input_shape):
        _validate.channels_last_input("FocalNetBlock", self.dim, input_shape)
        self.norm1.build(input_shape)
        self.token_mixer.build(input_shape)
        self.norm2.build(input_shape)
        self.mlp.build(input_shape)
        self.gamma_1, self.gamma_2 = layer_scales(self, self.dim, self.layerscale_value, self.use_layerscale)

    def call(self, x, training=None, return_modulation=False):
        if return_modulation and self.mixer != "focal":
            raise ValueError(
                f"return_modulation=True needs mixer='focal': a block with mixer={self.mixer!r} has no "
                "gates or modulator."
            )
        shortcut = x
        if not self.use_postln:
            x = self.norm1(x)
        maps = None
        if self.mixer == "focal":
            x, maps = self.modulation(x, training=training, return_modulation=True)
        else:
            x = self.token_mixer(x, training=training)
        if self.use_postln:
            x = self.norm1(x)
        x = shortcut + self.drop_path(scale(x, self.gamma_1), training=training)

        if self.use_postln:
            branch = self.norm2(self.mlp(x, training=training))
        else:
            branch = self.mlp(self.norm2(x), training=training)
        x = x + self.drop_path(scale(branch, self.gamma_2), training=training)
        return (x, maps) if return_modulation else x

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            mlp_ratio=self.mlp_ratio,
            drop=self.drop_rate,
            drop_path=self.drop_path_rate,
            focal_level=self.focal_level,
            focal_window=self.focal_window,
            focal_factor=self.focal_factor,
            use_layerscale=self.use_layerscale,
            layerscale_value=self.layerscale_value,
            use_postln=self.use_postln,
            use_postln_in_modulation=self.use_postln_in_modulation,
            normalize_modulator=self.normalize_modulator,
            mixer=self.mixer,
            num_heads=self.num_heads,
            window_size=self.window_size,
            shift_size=self.shift_size,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**without_legacy_switches(cls, config))
