"""Chapter 10's ablations as layers: the official layers with a part switched off.

Every switch defaults to the official layer, whose weights the ablated layer then has, name for name.
"""

import keras
from keras import layers, ops

from focaledu import _validate
from focaledu.block_parts import gelu
from focaledu.layers import FocalModulation, FocalNetBlock
from focaledu.model import FocalNet


def _switches(gating, global_context, pre_norm):
    """The three switches, checked: what the block and the model store, pass on and serialise."""
    return {"gating": _validate.boolean("gating", gating),
            "global_context": _validate.boolean("global_context", global_context),
            "pre_norm": _validate.boolean("pre_norm", pre_norm)}


@keras.saving.register_keras_serializable(package="focaledu")
class AblatedFocalModulation(FocalModulation):
    """``FocalModulation`` with ``gating`` and ``global_context`` switches.

    Args:
        gating: learned gates (True, official) or uniform gates of 1 (False).
        global_context: include the global level ``L + 1`` (True, official).
        **kwargs: ``FocalModulation``'s arguments.

    ``return_modulation`` always returns ``L + 1`` level weights, the global one last, for every variant.
    """

    def __init__(self, *args, gating=True, global_context=True, **kwargs):
        # Set before FocalModulation.__init__, which sizes `f` from _gate_channels().
        self.gating = _validate.boolean("gating", gating)
        self.global_context = _validate.boolean("global_context", global_context)
        super().__init__(*args, **kwargs)
        self.num_levels = self.focal_level + int(self.global_context)

    def _gate_channels(self):
        return (self.focal_level + int(self.global_context)) if self.gating else 0

    def _aggregate(self, x):
        if self.gating:
            q, ctx, gates = ops.split(self.f(x), [self.dim, 2 * self.dim], axis=-1)
        else:
            (q, ctx), gates = ops.split(self.f(x), [self.dim], axis=-1), None

        def weigh(context, level):  # uniform gates: weight 1, no multiplication
            return context if gates is None else context * gates[..., level : level + 1]

        ctx_all = 0
        for level, focal_layer in enumerate(self.focal_layers):
            ctx = gelu(focal_layer(ctx))
            ctx_all = ctx_all + weigh(ctx, level)
        if self.global_context:
            ctx_global = gelu(ops.mean(ctx, axis=(1, 2), keepdims=True))
            ctx_all = ctx_all + weigh(ctx_global, self.focal_level)
        if self.normalize_modulator:
            ctx_all = ctx_all / self.num_levels
        return q, ctx_all, self._level_weights(q, gates)

    def _level_weights(self, q, gates):
        """The ``(B, H, W, L + 1)`` weights the levels got (learned, ones, zero for a dropped global level)."""
        if self.gating and self.global_context:
            return gates
        ones = ops.ones_like(q[..., :1])
        if gates is None:
            gates = ops.concatenate([ones] * self.num_levels, axis=-1)
        if not self.global_context:
            gates = ops.concatenate([gates, ops.zeros_like(ones)], axis=-1)
        return gates

    def get_config(self):
        return {**super().get_config(), "gating": self.gating, "global_context": self.global_context}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="focaledu")
class AblatedFocalNetBlock(FocalNetBlock):
    """``FocalNetBlock`` with ``pre_norm``, and ``gating``/``global_context`` for its modulation.

    Args:
        gating, global_context: see ``AblatedFocalModulation`` (focal mixer only).
        pre_norm: LayerNorm ``norm1`` before the token mixer (True, official); a post-norm block has none to remove.
        **kwargs: ``FocalNetBlock``'s arguments.
    """

    def __init__(self, *args, gating=True, global_context=True, pre_norm=True, **kwargs):
        # Set before FocalNetBlock.__init__, which calls the two factories below.
        self.switches = _switches(gating, global_context, pre_norm)
        if not pre_norm and kwargs.get("use_postln", False):
            raise ValueError(
                "`pre_norm=False` removes the LayerNorm before the token mixer of a pre-norm block; "
                "a post-norm block (use_postln=True) has none there. Use pre_norm=True with use_postln=True."
            )
        super().__init__(*args, **kwargs)

    def _norm1(self, policy):
        return super()._norm1(policy) if self.switches["pre_norm"] else layers.Identity(name="norm1", dtype=policy)

    def _focal_modulation(self, **kwargs):
        return AblatedFocalModulation(gating=self.switches["gating"], global_context=self.switches["global_context"],
                                      **kwargs)

    def get_config(self):
        return {**super().get_config(), **self.switches}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="focaledu")
class AblatedFocalNet(FocalNet):
    """``FocalNet`` whose blocks are ``AblatedFocalNetBlock``.

    Args:
        gating, global_context, pre_norm: passed to every block; the defaults build the official model.
        **kwargs: ``FocalNet``'s arguments.
    """

    def __init__(self, gating=True, global_context=True, pre_norm=True, **kwargs):
        # Set before FocalNet.__init__, which builds the blocks with _block().
        self.switches = _switches(gating, global_context, pre_norm)
        super().__init__(**kwargs)

    def _block(self, **kwargs):
        return AblatedFocalNetBlock(**self.switches, **kwargs)

    def get_config(self):
        return {**super().get_config(), **self.switches}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
