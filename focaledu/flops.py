"""Parameters and multiply-accumulates (MACs) of a whole FocalNet, from its config, without building it.

MACs count convolutions, linear maps and the modulation's multiplications; biases, GELUs, residuals, layer
scale and global averages are left out, as are LayerNorms unless ``include_norms=True``.
"""

from focaledu.model import FocalNet, ablated_switches, preset_config
from focaledu.receptive import block_cost, modulation_cost

#: The FocalNet paper's ImageNet-1K table (Yang et al., 2022, Table 1), 224 x 224
#: images: preset -> (parameters in millions, GFLOPs).
PUBLISHED = {
    "focalnet_tiny_srf": (28.4, 4.4),
    "focalnet_tiny_lrf": (28.6, 4.5),
    "focalnet_small_srf": (49.9, 8.6),
    "focalnet_small_lrf": (50.3, 8.7),
    "focalnet_base_srf": (88.1, 15.3),
    "focalnet_base_lrf": (88.7, 15.4),
}

_DEFAULTS = dict(
    image_size=224, num_classes=1000, patch_size=4, embed_dim=96, depths=(2, 2, 6, 2), mlp_ratio=4.0,
    focal_levels=(2, 2, 2, 2), focal_windows=(3, 3, 3, 3), focal_factor=2, use_conv_embed=False,
    use_layerscale=False, use_postln_in_modulation=False, patch_norm=True, in_chans=3,
)


def _config(model_or_config, image_size):
    if isinstance(model_or_config, str):
        config = preset_config(model_or_config)
    elif isinstance(model_or_config, FocalNet):
        config = model_or_config.get_config()
    elif isinstance(model_or_config, dict):
        config = dict(model_or_config)
    else:
        raise ValueError(
            "`model_or_config` must be a focaledu.FocalNet, its config dict or a preset name; "
            f"received {type(model_or_config).__name__}."
        )
    config = {**_DEFAULTS, **config}
    ablated = ablated_switches(config)
    if ablated:
        raise ValueError(
            f"The analytic counts cover the official FocalNet block; this config sets {ablated}. "
            "For an ablated model build it and call count_params() (focaledu.ablation_layers.AblatedFocalNet "
            "for gating, global_context and pre_norm; FocalNet for mixer)."
        )
    if image_size is not None:
        config["image_size"] = image_size
    size = config["image_size"]
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    stride = config["patch_size"] * 2 ** (len(config["depths"]) - 1)
    if height % stride or width % stride:
        raise ValueError(
            f"`image_size` must be divisible by patch_size * 2**(len(depths) - 1) = {stride}; "
            f"received image_size={size!r}."
        )
    config["image_size"] = (height, width)
    return config


def _conv(c_in, c_out, kernel, tokens):
    return {"params": c_in * kernel * kernel * c_out + c_out, "macs": tokens * c_in * kernel * kernel * c_out}


def _add(total, part):
    for key in ("params", "macs"):
        total[key] += part[key]
    return total


def flops_breakdown(model_or_config, image_size=None, include_norms=False):
    """Parameters and MACs of each part of a FocalNet.

    Args:
        model_or_config: a ``FocalNet``, its ``get_config()`` dict or a preset name.
        image_size: overrides the config's image size (int or ``(height, width)``).
        include_norms: also count one MAC per element a LayerNorm normalises.

    Returns:
        ``{"stem": ..., "stage_0": ..., ..., "head": ...}``, each ``{"params": int, "macs": int}`` plus, for the
        stem and the stages, the output ``"shape"``. Stage ``i > 0`` includes its downsampling.
    """
    c = _config(model_or_config, image_size)
    (height, width), patch = c["image_size"], c["patch_size"]
    h, w, dim = height // patch, width // patch, c["embed_dim"]
    norm = 1 if include_norms else 0

    parts = {}
    kernel = 7 if c["use_conv_embed"] else patch
    stem = _conv(c["in_chans"], dim, kernel, h * w)
    if c["patch_norm"]:
        _add(stem, {"params": 2 * dim, "macs": norm * h * w * dim})
    parts["stem"] = {**stem, "shape": (h, w, dim)}

    for i, depth in enumerate(c["depths"]):
        stage = {"params": 0, "macs": 0}
        if i > 0:
            h, w, dim = h // 2, w // 2, 2 * dim
            _add(stage, _conv(dim // 2, dim, 3 if c["use_conv_embed"] else 2, h * w))
            _add(stage, {"params": 2 * dim, "macs": norm * h * w * dim})  # downsampling LayerNorm
        mixer = modulation_cost(dim, h, w, c["focal_levels"][i], c["focal_windows"][i], c["focal_factor"])
        block = block_cost(mixer, dim, h, w, c["mlp_ratio"])  # + norm1, norm2, MLP
        block["macs"] += norm * 2 * h * w * dim
        if c["use_layerscale"]:
            block["params"] += 2 * dim
        if c["use_postln_in_modulation"]:
            _add(block, {"params": 2 * dim, "macs": norm * h * w * dim})
        for _ in range(depth):
            _add(stage, block)
        parts[f"stage_{i}"] = {**stage, "shape": (h, w, dim)}

    head = {"params": 2 * dim, "macs": norm * h * w * dim}
    if c["num_classes"]:
        _add(head, {"params": dim * c["num_classes"] + c["num_classes"], "macs": dim * c["num_classes"]})
    parts["head"] = head
    return {name: {**part, "params": int(part["params"]), "macs": int(part["macs"])} for name, part in parts.items()}


def model_flops(model_or_config, image_size=None, include_norms=False, per_stage=False):
    """MACs of one forward pass (the paper's "FLOPs") on one image; ``per_stage=True``: ``{part: macs}``."""
    parts = flops_breakdown(model_or_config, image_size, include_norms)
    if per_stage:
        return {name: part["macs"] for name, part in parts.items()}
    return sum(part["macs"] for part in parts.values())


def model_params(model_or_config):
    """Parameters of a FocalNet, without building it: equals ``count_params()`` of the built model."""
    return sum(part["params"] for part in flops_breakdown(model_or_config).values())
