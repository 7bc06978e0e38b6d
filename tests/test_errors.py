"""Bad input raises ValueError naming the argument and what it accepts."""

import numpy as np
import pytest

from focaledu import FocalModulation, FocalNet, FocalNetBlock, PatchEmbedding, preset_config
from focaledu.convert import load_timm_weights
from focaledu.interpret import modulation_maps

pytestmark = pytest.mark.backends

SMALL = dict(image_size=32, num_classes=4, embed_dim=8, depths=(1, 1), focal_levels=(2, 2), focal_windows=(3, 3))


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        (dict(image_size=30), r"image_size.*divisible by .* = 8"),
        (dict(image_size=(32, 36)), r"image_size.*divisible"),
        (dict(image_size=(32, 32, 3)), r"image_size.*\(height, width\)"),
        (dict(image_size=0), r"image_size.*>= 1"),
        (dict(patch_size=0), r"patch_size.*>= 1"),
        (dict(focal_levels=(0, 2)), r"focal_level.*>= 1"),
        (dict(focal_windows=(4, 3)), r"focal_window.*odd"),
        (dict(focal_windows=(-1, 3)), r"focal_window.*>= 1"),
        (dict(focal_factor=3), r"focal_factor.*even"),
        (dict(depths=()), r"depths.*non-empty"),
        (dict(depths=(1, 0)), r"depths.*>= 1"),
        (dict(focal_levels=(2, 2, 2)), r"focal_levels.*len\(depths\)=2"),
        (dict(focal_windows=(3,)), r"focal_windows.*one entry per stage"),
        (dict(drop_path_rate=-0.1), r"drop_path_rate.*\[0, 1\)"),
        (dict(drop_rate=1.0), r"drop_rate.*\[0, 1\)"),
        (dict(num_classes=-1), r"num_classes.*>= 0"),
        (dict(embed_dim=2.5), r"embed_dim.*integer"),
        (dict(mlp_ratio=0), r"mlp_ratio.*> 0"),
        (dict(use_conv_embed=True, patch_size=2), r"patch_size.*must be 4"),
        (dict(use_postln="yes"), r"use_postln.*True or False"),
        (dict(layerscale_value=-1.0), r"layerscale_value.*> 0"),
    ],
)
def test_bad_model_arguments(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        FocalNet(**dict(SMALL, **overrides))


def test_unknown_preset_lists_the_accepted_names():
    with pytest.raises(ValueError, match=r"Unknown `preset` 'focalnet_tiny'.*focalnet_tiny_srf"):
        FocalNet.from_preset("focalnet_tiny")
    with pytest.raises(ValueError, match="Unknown `preset`"):
        preset_config("resnet50")


def test_wrong_channel_count():
    layer = FocalModulation(8, focal_window=3, focal_level=2)
    with pytest.raises(ValueError, match=r"dim=8.*received shape \(2, 4, 4, 6\)"):
        layer(np.zeros((2, 4, 4, 6), "float32"))
    with pytest.raises(ValueError, match=r"FocalNetBlock\(dim=8\)"):
        FocalNetBlock(8)(np.zeros((2, 4, 4, 5), "float32"))
    model = FocalNet(**SMALL)
    with pytest.raises(ValueError):
        model(np.zeros((1, 32, 32, 1), "float32"))


def test_non_float_images():
    model = FocalNet(**SMALL)
    with pytest.raises(ValueError, match=r"`images` must be a floating-point tensor.*uint8.*include_preprocessing=True"):
        model(np.zeros((1, 32, 32, 3), "uint8"))
    with pytest.raises(ValueError, match=r"`inputs` must be a floating-point"):
        PatchEmbedding(8, 4)(np.zeros((1, 8, 8, 3), "int32"))


def test_preprocessing_statistics():
    with pytest.raises(ValueError, match=r"`mean` must be 3 numbers, one per input channel; received mean=\(0.5, 0.5\)"):
        FocalNet(**SMALL, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"`std` must be 3 numbers > 0.*received std=\(0.2, 0, 0.2\)"):
        FocalNet(**SMALL, std=(0.2, 0, 0.2))
    with pytest.raises(ValueError, match=r"`include_preprocessing` must be True or False; received include_preprocessing='yes'"):
        FocalNet(**SMALL, include_preprocessing="yes")


def test_layer_arguments():
    with pytest.raises(ValueError, match=r"focal_window.*odd"):
        FocalModulation(8, focal_window=2, focal_level=1)
    with pytest.raises(ValueError, match=r"proj_drop.*\[0, 1\)"):
        FocalModulation(8, focal_window=3, focal_level=1, proj_drop=1.5)
    with pytest.raises(ValueError, match=r"drop_path.*\[0, 1\)"):
        FocalNetBlock(8, drop_path=-0.5)
    with pytest.raises(ValueError, match=r"patch_size.*4.*or 2"):
        PatchEmbedding(8, 3, use_conv_embed=True)
    with pytest.raises(ValueError, match=r"height \(10\).*divisible by `patch_size`=4"):
        PatchEmbedding(8, 4)(np.zeros((1, 10, 8, 3), "float32"))


def test_bad_state_dicts():
    model = FocalNet(**SMALL)
    with pytest.raises(ValueError, match="`state_dict` must be a mapping"):
        load_timm_weights(model, [("stem.proj.weight", np.zeros(1))])
    with pytest.raises(ValueError, match=r"(?s)44 missing:.*head.fc.bias.*and 24 more"):
        load_timm_weights(model, {})
    with pytest.raises(ValueError, match=r"official microsoft/FocalNet checkpoint"):
        load_timm_weights(model, {"patch_embed.proj.weight": np.zeros((8, 3, 4, 4))})
    with pytest.raises(ValueError, match="`model` must be a focaledu.FocalNet"):
        load_timm_weights(object(), {})


def test_bad_modulation_map_requests():
    model = FocalNet(**SMALL)
    images = np.zeros((1, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match=r"Unknown `blocks` \['layers_9_blocks_0'\].*layers_0_blocks_0"):
        modulation_maps(model, images, blocks=["layers_9_blocks_0"])
    with pytest.raises(ValueError, match="`images` must be a float array"):
        modulation_maps(model, images.astype("uint8"))
