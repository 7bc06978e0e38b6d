"""Load timm FocalNet weights into a focaledu model: timm names mapped onto Keras variables, NCHW layouts transposed.

A state dict is any mapping from timm names to arrays (CPU ``torch.Tensor``s work); torch is not imported.
"""

import numpy as np

from focaledu.layers import FocalNetBlock
from focaledu.model import OFFICIAL_SWITCHES, ablated_switches


def _conv(w):  # (out, in, kh, kw) -> (kh, kw, in, out)
    return w.transpose(2, 3, 1, 0)


def _depthwise(w):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    return w.transpose(2, 3, 0, 1)


def _dense(w):  # Linear (out, in) or 1x1 conv (out, in, 1, 1) -> (in, out)
    if w.ndim == 4 and w.shape[2:] == (1, 1):
        w = w[:, :, 0, 0]
    return w.T


def _same(w):
    return w


def _norm(prefix, layer):
    return {f"{prefix}.weight": (layer.gamma, _same), f"{prefix}.bias": (layer.beta, _same)}


def _dense_layer(prefix, layer):
    entries = {f"{prefix}.weight": (layer.kernel, _dense)}
    if layer.use_bias:
        entries[f"{prefix}.bias"] = (layer.bias, _same)
    return entries


def _patch_embedding(prefix, layer):
    entries = {f"{prefix}.proj.weight": (layer.proj.kernel, _conv), f"{prefix}.proj.bias": (layer.proj.bias, _same)}
    if layer.norm is not None:
        entries.update(_norm(f"{prefix}.norm", layer.norm))
    return entries


def _block(prefix, block):
    post = "_post" if block.use_postln else ""
    modulation = block.modulation
    entries = {}
    entries.update(_norm(f"{prefix}.norm1{post}", block.norm1))
    entries.update(_norm(f"{prefix}.norm2{post}", block.norm2))
    entries.update(_dense_layer(f"{prefix}.modulation.f", modulation.f))
    entries.update(_dense_layer(f"{prefix}.modulation.h", modulation.h))
    entries.update(_dense_layer(f"{prefix}.modulation.proj", modulation.proj))
    for level, conv in enumerate(modulation.focal_layers):
        entries[f"{prefix}.modulation.focal_layers.{level}.0.weight"] = (conv.kernel, _depthwise)
    if modulation.ln is not None:
        entries.update(_norm(f"{prefix}.modulation.norm", modulation.ln))
    entries.update(_dense_layer(f"{prefix}.mlp.fc1", block.mlp.fc1))
    entries.update(_dense_layer(f"{prefix}.mlp.fc2", block.mlp.fc2))
    if block.use_layerscale:
        entries[f"{prefix}.ls1.gamma"] = (block.gamma_1, _same)
        entries[f"{prefix}.ls2.gamma"] = (block.gamma_2, _same)
    return entries


def timm_weight_map(model):
    """``{timm name: (keras variable, layout transform)}`` for a built ``FocalNet``."""
    ablated = ablated_switches(model.get_config())
    if ablated:
        raise ValueError(
            f"timm's FocalNet has no ablated blocks; this model was built with {ablated}. "
            f"Only models with {OFFICIAL_SWITCHES} map to timm weights."
        )
    entries = _patch_embedding("stem", model.get_layer("stem"))
    for layer in model.layers:
        parts = layer.name.split("_")
        if isinstance(layer, FocalNetBlock):
            entries.update(_block(f"layers.{parts[1]}.blocks.{parts[3]}", layer))
        elif layer.name.endswith("_downsample"):
            entries.update(_patch_embedding(f"layers.{parts[1]}.downsample", layer))
    entries.update(_norm("norm", model.get_layer("norm")))
    if model.num_classes:
        entries.update(_dense_layer("head.fc", model.get_layer("head")))
    return entries


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype="float32")


def load_timm_weights(model, state_dict, skip_prefixes=()):
    """Copies a timm FocalNet ``state_dict`` into ``model``, built with the matching config.

    Args:
        model: a ``focaledu.FocalNet``.
        state_dict: mapping from timm parameter names to arrays.
        skip_prefixes: names starting with these are ignored on both sides, e.g. ``("head.",)``.

    Returns:
        The number of tensors copied.

    Raises:
        ValueError: listing every missing, unexpected or mis-shaped tensor; the model is left untouched.
    """
    if not hasattr(model, "modulation_outputs"):
        raise ValueError(f"`model` must be a focaledu.FocalNet; received {type(model).__name__}.")
    if not hasattr(state_dict, "keys"):
        raise ValueError(
            "`state_dict` must be a mapping from timm parameter names to arrays; "
            f"received {type(state_dict).__name__}."
        )
    skip = tuple(skip_prefixes)
    expected = {k: v for k, v in timm_weight_map(model).items() if not k.startswith(skip)}
    given = {k: v for k, v in state_dict.items() if not k.startswith(skip)}

    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    converted, mismatched = {}, []
    for name in sorted(set(expected) & set(given)):
        variable, transform = expected[name]
        value = _to_numpy(given[name])
        try:
            value = transform(value)
        except (ValueError, IndexError):
            pass  # reported as a shape mismatch below
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(f"{name}: got {tuple(_to_numpy(given[name]).shape)}, "
                              f"expected a tensor that maps to Keras shape {tuple(variable.shape)}")
        else:
            converted[name] = value

    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if names:
            shown = "\n  ".join(names[:20]) + (f"\n  ... and {len(names) - 20} more" if len(names) > 20 else "")
            problems.append(f"{len(names)} {label}:\n  {shown}")
    if problems and any(name.startswith("patch_embed.") for name in unexpected):
        problems.append(
            "These look like an official microsoft/FocalNet checkpoint: rename them to timm's "
            "names first (timm.models.focalnet.checkpoint_filter_fn does it)."
        )
    if problems:
        raise ValueError(
            "`state_dict` does not match this FocalNet's config (check embed_dim, depths, "
            "focal_levels, focal_windows, use_conv_embed, use_postln, use_layerscale, "
            "use_postln_in_modulation, num_classes); nothing was loaded.\n" + "\n".join(problems)
        )
    for name, value in converted.items():
        expected[name][0].assign(value)
    return len(converted)
