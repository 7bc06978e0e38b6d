"""FocalNet: a functional Keras model with the official argument names, plus presets."""

import copy

import keras
import numpy as np
from keras import layers

from focaledu import _validate, zoo
from focaledu.block_parts import layer_norm
from focaledu.image_dataset import CIFAR10_MEAN, CIFAR10_STD
from focaledu.layers import FocalNetBlock, PatchEmbedding, without_legacy_switches

#: Per-channel statistics of ImageNet (timm's defaults), for images scaled to [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="focaledu")
class FocalNet(keras.Model):
    """Focal Modulation Network (Yang et al., NeurIPS 2022) for image classification.

    Maps ``(B, H, W, in_chans)`` images to logits ``(B, num_classes)`` (pooled features when ``num_classes=0``).
    Every focal block's gates and modulator are symbolic outputs in ``model.modulation_outputs[block_name]``,
    read with ``focaledu.interpret.modulation_maps``.

    Args:
        image_size: int or ``(height, width)``; divisible by ``patch_size * 2 ** (len(depths) - 1)``.
        num_classes: size of the linear head; 0 for no head.
        patch_size: stem stride.
        embed_dim: width of the first stage; stage ``i`` has ``embed_dim * 2**i``.
        depths: blocks per stage.
        mlp_ratio: MLP hidden width as a multiple of the stage width.
        drop_rate: dropout after the stem, in the modulation projection and the MLP.
        drop_path_rate: stochastic depth of the last block, linear from 0 over all blocks.
        focal_levels: focal levels ``L`` per stage.
        focal_windows: first-level kernel size per stage.
        focal_factor: kernel growth per level.
        use_conv_embed: overlapping convolutions for the stem and downsampling.
        use_layerscale: learnable per-channel residual scales.
        layerscale_value: their initial value.
        use_postln: post-norm blocks.
        use_postln_in_modulation: LayerNorm inside the modulation.
        normalize_modulator: divide the aggregated context by ``L + 1``.
        patch_norm: LayerNorm after the stem.
        in_chans: input channels.
        mixer: the blocks' token mixer, ``"focal"``, ``"attention"``, ``"dwconv"`` or ``"window"`` (no gates but focal).
        num_heads: attention heads per stage for ``mixer="attention"`` or ``"window"``; None: head width 32.
        include_preprocessing: take pixels in 0-255 (uint8 or float) and rescale and standardise them in the
            model; False (what training uses): take standardised float images.
        mean: per-channel mean of the images scaled to [0, 1] (default: ImageNet's).
        std: per-channel standard deviation of the images scaled to [0, 1].
        window_size: window side for ``mixer="window"``, the same in every stage; it must divide each stage's
            feature map unless the map fits in one window. Odd blocks shift their windows by half.
        dtype: a dtype policy for every layer, e.g. ``"mixed_bfloat16"``; not stored in ``get_config``.
    """

    def __init__(
        self,
        image_size=224,
        num_classes=1000,
        patch_size=4,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.1,
        focal_levels=(2, 2, 2, 2),
        focal_windows=(3, 3, 3, 3),
        focal_factor=2,
        use_conv_embed=False,
        use_layerscale=False,
        layerscale_value=1e-4,
        use_postln=False,
        use_postln_in_modulation=False,
        normalize_modulator=False,
        patch_norm=True,
        in_chans=3,
        mixer="focal",
        num_heads=None,
        window_size=7,
        include_preprocessing=False,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        name="focalnet",
        **kwargs,
    ):
        height, width = _validate.image_size(image_size)
        num_classes = _validate.positive_int("num_classes", num_classes, minimum=0)
        patch_size = _validate.positive_int("patch_size", patch_size)
        embed_dim = _validate.positive_int("embed_dim", embed_dim)
        in_chans = _validate.positive_int("in_chans", in_chans)
        if isinstance(depths, (str, bytes)) or not hasattr(depths, "__len__") or len(depths) == 0:
            raise ValueError(f"`depths` must be a non-empty list of block counts; received depths={depths!r}.")
        depths = [_validate.positive_int("depths", d) for d in depths]
        num_stages = len(depths)
        focal_levels = _validate.per_stage("focal_levels", focal_levels, num_stages)
        focal_windows = _validate.per_stage("focal_windows", focal_windows, num_stages)
        drop_rate = _validate.rate("drop_rate", drop_rate)
        drop_path_rate = _validate.rate("drop_path_rate", drop_path_rate)
        mixer = _validate.choice("mixer", mixer, FocalNetBlock.MIXERS)
        if num_heads is not None:
            num_heads = [_validate.positive_int("num_heads", n)
                         for n in _validate.per_stage("num_heads", num_heads, num_stages)]
        window_size = _validate.positive_int("window_size", window_size)
        include_preprocessing = _validate.boolean("include_preprocessing", include_preprocessing)
        mean = _validate.per_channel("mean", mean, in_chans)
        std = _validate.per_channel("std", std, in_chans, positive=True)
        if use_conv_embed and patch_size != 4:
            raise ValueError(
                "With use_conv_embed=True the stem is the official 7x7 stride-4 convolution, so "
                f"`patch_size` must be 4; received patch_size={patch_size!r}."
            )
        stride = patch_size * 2 ** (num_stages - 1)
        if height % stride or width % stride:
            raise ValueError(
                f"`image_size` must be divisible by patch_size * 2**(len(depths) - 1) = {stride} "
                f"(patch_size={patch_size}, {num_stages} stages); received image_size={image_size!r}."
            )
        if mixer == "window":  # fail here, naming the stage, rather than inside the graph construction
            from focaledu.attention import window_plan

            for i in range(num_stages):
                side_h, side_w = height // patch_size // 2**i, width // patch_size // 2**i
                try:
                    window_plan(side_h, side_w, window_size)
                except ValueError as error:
                    raise ValueError(
                        f"With mixer='window', stage {i} of this FocalNet has a {side_h}x{side_w} feature map "
                        f"(image_size={image_size!r}, patch_size={patch_size}). {error}"
                    ) from None

        # As in keras-hub, every layer gets the model's dtype policy.
        dtype = kwargs.pop("dtype", None)
        inputs = keras.Input((height, width, in_chans), name="images")
        x = inputs
        if include_preprocessing:
            x = layers.Rescaling(1 / 255, name="rescaling", dtype=dtype)(x)
            x = layers.Normalization(mean=mean, variance=np.square(std), name="normalization", dtype=dtype)(x)
        x = PatchEmbedding(
            embed_dim, patch_size, use_conv_embed, use_norm=patch_norm, name="stem", dtype=dtype
        )(x)
        x = layers.Dropout(drop_rate, name="pos_drop", dtype=dtype)(x)
        drop_paths = np.linspace(0.0, drop_path_rate, sum(depths))
        modulation_outputs, block_names = {}, []
        for i, depth in enumerate(depths):
            dim = embed_dim * 2**i
            if i > 0:
                x = PatchEmbedding(dim, 2, use_conv_embed, name=f"layers_{i}_downsample", dtype=dtype)(x)
            for j in range(depth):
                block = self._block(
                    dim=dim,
                    mlp_ratio=mlp_ratio,
                    drop=drop_rate,
                    drop_path=float(drop_paths[sum(depths[:i]) + j]),
                    focal_level=focal_levels[i],
                    focal_window=focal_windows[i],
                    focal_factor=focal_factor,
                    use_layerscale=use_layerscale,
                    layerscale_value=layerscale_value,
                    use_postln=use_postln,
                    use_postln_in_modulation=use_postln_in_modulation,
                    normalize_modulator=normalize_modulator,
                    mixer=mixer,
                    num_heads=None if num_heads is None else num_heads[i],
                    window_size=window_size,
                    shift_size=window_size // 2 if j % 2 else 0,  # Swin: every second block shifted
                    name=f"layers_{i}_blocks_{j}",
                    dtype=dtype,
                )
                block_names.append(block.name)
                if mixer == "focal":
                    x, modulation_outputs[block.name] = block(x, return_modulation=True)
                else:
                    x = block(x)
        x = layer_norm("norm", dtype)(x)
        outputs = layers.GlobalAveragePooling2D(name="avgpool", dtype=dtype)(x)
        if num_classes:
            outputs = layers.Dense(num_classes, name="head", dtype=dtype)(outputs)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        if dtype is not None:  # a functional Model ignores `dtype`; keras-hub's backbones set it so
            self.dtype_policy = keras.dtype_policies.get(dtype)

        self.modulation_outputs = modulation_outputs
        self._block_names = block_names
        self.image_size = (height, width)
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depths = depths
        self.mlp_ratio = mlp_ratio
        self.drop_rate = drop_rate
        self.drop_path_rate = drop_path_rate
        self.focal_levels = focal_levels
        self.focal_windows = focal_windows
        self.focal_factor = focal_factor
        self.use_conv_embed = use_conv_embed
        self.use_layerscale = use_layerscale
        self.layerscale_value = layerscale_value
        self.use_postln = use_postln
        self.use_postln_in_modulation = use_postln_in_modulation
        self.normalize_modulator = normalize_modulator
        self.patch_norm = patch_norm
        self.in_chans = in_chans
        self.mixer = mixer
        self.num_heads = num_heads
        self.window_size = window_size
        self.include_preprocessing = include_preprocessing
        self.mean = mean
        self.std = std

    def call(self, inputs, training=None, mask=None):
        if not self.include_preprocessing:
            # The functional graph would silently cast uint8 images to float32
            # and feed unscaled 0-255 pixels through the network.
            _validate.float_input(
                "images", inputs.dtype,
                hint="This model takes standardised images: build it with include_preprocessing=True to "
                     "pass pixels as they come, or convert them with focaledu.training.preprocess_images.",
            )
        return super().call(inputs, training=training, mask=mask)

    @property
    def block_names(self):
        """Names of the ``FocalNetBlock`` layers, in order: ``layers_{stage}_blocks_{index}``."""
        return list(self._block_names)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": list(self.image_size),
            "num_classes": self.num_classes,
            "patch_size": self.patch_size,
            "embed_dim": self.embed_dim,
            "depths": list(self.depths),
            "mlp_ratio": self.mlp_ratio,
            "drop_rate": self.drop_rate,
            "drop_path_rate": self.drop_path_rate,
            "focal_levels": list(self.focal_levels),
            "focal_windows": list(self.focal_windows),
            "focal_factor": self.focal_factor,
            "use_conv_embed": self.use_conv_embed,
            "use_layerscale": self.use_layerscale,
            "layerscale_value": self.layerscale_value,
            "use_postln": self.use_postln,
            "use_postln_in_modulation": self.use_postln_in_modulation,
            "normalize_modulator": self.normalize_modulator,
            "patch_norm": self.patch_norm,
            "in_chans": self.in_chans,
            "mixer": self.mixer,
            "num_heads": None if self.num_heads is None else list(self.num_heads),
            "window_size": self.window_size,
            "include_preprocessing": self.include_preprocessing,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**without_legacy_switches(cls, config))

    def _block(self, **kwargs):
        # Chapter 10's AblatedFocalNet overrides this factory.
        return FocalNetBlock(**kwargs)

    @classmethod
    def from_preset(cls, preset, load_weights=None, **overrides):
        """A model from a preset: an architecture (``list_presets()``) or a trained model (``list_pretrained()``).

        Args:
            preset: a name from ``list_presets()`` or ``focaledu.list_pretrained()``.
            load_weights: load the shipped weights; None: when the preset has them (True without any raises).
            **overrides: constructor arguments replacing the preset's (for a trained model, only with
                ``load_weights=False``).
        """
        trained = zoo.list_pretrained()
        if load_weights not in (None, True, False):
            raise ValueError(f"`load_weights` must be True, False or None; received load_weights={load_weights!r}.")
        if preset in trained:
            if load_weights is False:
                config = without_legacy_switches(cls, zoo.pretrained_info(preset)["config"])
                return cls(**{**config, **overrides})
            if overrides:
                raise ValueError(
                    f"The weights of {preset!r} fit its own architecture; received overrides {sorted(overrides)}. "
                    "Pass load_weights=False to build the changed architecture without them."
                )
            return zoo.load(cls, preset)
        if preset not in PRESETS:
            raise ValueError(
                f"Unknown `preset` {preset!r}. Accepted values: {', '.join(PRESETS)}; with trained weights: "
                f"{', '.join(trained) or '(none shipped)'}."
            )
        if load_weights:
            raise ValueError(
                f"`load_weights=True`, but the preset {preset!r} is an architecture without weights. Presets "
                f"with weights: {', '.join(trained) or '(none shipped)'}."
            )
        return cls(**preset_config(preset, **overrides))


#: The switches at their official values: chapter 10's ablations (``focaledu.ablation_layers``) and the mixer.
OFFICIAL_SWITCHES = {"gating": True, "global_context": True, "pre_norm": True, "mixer": "focal"}


def ablated_switches(config):
    """The entries of a ``FocalNet`` (or ``AblatedFocalNet``) config that differ from the official model."""
    return {k: config[k] for k, v in OFFICIAL_SWITCHES.items() if config.get(k, v) != v}


def pretrained(name, *, directory=None):
    """``FocalNet.from_preset(name)`` for a trained model, its weights' sha256 checked.

    ``directory`` reads another weights folder.
    """
    return zoo.load(FocalNet, name, directory)


def _official(depths, embed_dim, focal_levels, drop_path_rate, focal_window=3, **flags):
    stages = len(depths)
    config = dict(
        image_size=224,
        num_classes=1000,
        depths=depths,
        embed_dim=embed_dim,
        focal_levels=[focal_levels] * stages,
        focal_windows=[focal_window] * stages,
        drop_path_rate=drop_path_rate,
    )
    config.update(flags)
    return config


# For include_preprocessing=True; training standardises in the input pipeline instead.
_CIFAR10_STATS = dict(mean=CIFAR10_MEAN, std=CIFAR10_STD)
_LARGE = dict(use_conv_embed=True, use_layerscale=True, use_postln=True)

#: name -> (config, one-line description). ImageNet variants use the official
#: hyper-parameters (drop path from the official training configs); their
#: parameter counts match timm's models of the same name.
PRESETS = {
    "focalnet_tiny_srf": (_official([2, 2, 6, 2], 96, 2, 0.2), "FocalNet-T, small receptive field (2 levels)"),
    "focalnet_tiny_lrf": (_official([2, 2, 6, 2], 96, 3, 0.2), "FocalNet-T, large receptive field (3 levels)"),
    "focalnet_small_srf": (_official([2, 2, 18, 2], 96, 2, 0.3), "FocalNet-S, small receptive field"),
    "focalnet_small_lrf": (_official([2, 2, 18, 2], 96, 3, 0.3), "FocalNet-S, large receptive field"),
    "focalnet_base_srf": (_official([2, 2, 18, 2], 128, 2, 0.5), "FocalNet-B, small receptive field"),
    "focalnet_base_lrf": (_official([2, 2, 18, 2], 128, 3, 0.5), "FocalNet-B, large receptive field"),
    "focalnet_tiny_iso": (
        _official([12], 192, 3, 0.1, patch_size=16),
        "Isotropic FocalNet-T/16: one stage of 12 blocks on 16x16 patches (ViT-like)",
    ),
    "focalnet_small_iso": (
        _official([12], 384, 3, 0.2, patch_size=16),
        "Isotropic FocalNet-S/16",
    ),
    "focalnet_base_iso": (
        _official([12], 768, 3, 0.3, patch_size=16, use_layerscale=True, use_postln=True),
        "Isotropic FocalNet-B/16 (layer scale, post-norm)",
    ),
    "focalnet_large_fl3": (_official([2, 2, 18, 2], 192, 3, 0.2, focal_window=5, **_LARGE), "FocalNet-L, 3 focal levels"),
    "focalnet_large_fl4": (_official([2, 2, 18, 2], 192, 4, 0.2, **_LARGE), "FocalNet-L, 4 focal levels"),
    "focalnet_xlarge_fl3": (_official([2, 2, 18, 2], 256, 3, 0.2, focal_window=5, **_LARGE), "FocalNet-XL, 3 focal levels"),
    "focalnet_xlarge_fl4": (_official([2, 2, 18, 2], 256, 4, 0.2, **_LARGE), "FocalNet-XL, 4 focal levels"),
    "focalnet_huge_fl3": (
        _official([2, 2, 18, 2], 352, 3, 0.2, use_postln_in_modulation=True, **_LARGE),
        "FocalNet-H, 3 focal levels",
    ),
    "focalnet_huge_fl4": (
        _official([2, 2, 18, 2], 352, 4, 0.2, use_postln_in_modulation=True, **_LARGE),
        "FocalNet-H, 4 focal levels",
    ),
    "focalnet_cifar_tiny": (
        dict(
            image_size=32, num_classes=10, patch_size=4, embed_dim=64, depths=[2, 2, 2],
            focal_levels=[2, 2, 2], focal_windows=[3, 3, 3], drop_path_rate=0.1, **_CIFAR10_STATS,
        ),
        "CIFAR-10, 32x32: patch 4, width 64, depths 2-2-2 (CPU-friendly)",
    ),
    "focalnet_cifar_small": (
        dict(
            image_size=32, num_classes=10, patch_size=2, embed_dim=64, depths=[2, 2, 4],
            focal_levels=[3, 2, 2], focal_windows=[3, 3, 3], drop_path_rate=0.1, **_CIFAR10_STATS,
        ),
        "CIFAR-10, 32x32: patch 2, width 64, depths 2-2-4",
    ),
    "keras_io_tutorial": (
        dict(
            image_size=48, num_classes=10, patch_size=4, embed_dim=256, depths=[2, 3, 2],
            mlp_ratio=4.0, drop_rate=0.1, drop_path_rate=0.0, focal_levels=[2, 2, 2],
            focal_windows=[3, 3, 3], **_CIFAR10_STATS,
        ),
        "The keras.io tutorial's configuration (CIFAR-10 resized to 48x48, 39M parameters), "
        "built with the official block (pre-norm, 1e-5 epsilons)",
    ),
}


def list_presets():
    """Returns ``{name: description}`` for every preset."""
    return {name: description for name, (_, description) in PRESETS.items()}


def preset_config(preset, **overrides):
    """The constructor arguments of a preset, with ``overrides`` applied."""
    if preset not in PRESETS:
        raise ValueError(
            f"Unknown `preset` {preset!r}. Accepted values: {', '.join(PRESETS)}."
        )
    config = copy.deepcopy(PRESETS[preset][0])
    config.update(overrides)
    return config
