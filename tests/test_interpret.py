"""modulation_maps reads gates and modulators from the functional graph."""

import keras
import numpy as np
import pytest
from keras import ops

from focaledu import FocalNet
from focaledu.interpret import modulation_maps

pytestmark = pytest.mark.backends

CONFIG = dict(image_size=(32, 48), num_classes=4, embed_dim=8, depths=(1, 2), focal_levels=(2, 3), focal_windows=(3, 3))


def _eager_first_block_maps(model, images):
    """The first block's gates and modulator computed layer by layer, in eager mode."""
    x = model.get_layer("stem")(images)
    block = model.get_layer("layers_0_blocks_0")
    _, maps = block.modulation(block.norm1(x), return_modulation=True)
    return {k: ops.convert_to_numpy(v) for k, v in maps.items()}


def test_shapes_per_block():
    model = FocalNet(**CONFIG)
    images = np.random.rand(3, 32, 48, 3).astype("float32")
    maps = modulation_maps(model, images)
    assert list(maps) == model.block_names
    assert maps["layers_0_blocks_0"]["gates"].shape == (3, 8, 12, 3)
    assert maps["layers_0_blocks_0"]["modulator"].shape == (3, 8, 12, 8)
    assert maps["layers_1_blocks_1"]["gates"].shape == (3, 4, 6, 4)
    assert maps["layers_1_blocks_1"]["modulator"].shape == (3, 4, 6, 16)
    only = modulation_maps(model, images, blocks=["layers_1_blocks_0"])
    assert list(only) == ["layers_1_blocks_0"]


def test_maps_follow_training_of_a_jit_compiled_model():
    model = FocalNet(**CONFIG)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    images = np.random.default_rng(0).random((4, 32, 48, 3)).astype("float32")
    before = modulation_maps(model, images)["layers_0_blocks_0"]
    model.fit(images, np.arange(4), epochs=2, verbose=0)
    after = modulation_maps(model, images)["layers_0_blocks_0"]
    expected = _eager_first_block_maps(model, images)
    # The maps are the trained model's, not a stale copy from an earlier call.
    assert not np.allclose(before["gates"], after["gates"])
    np.testing.assert_allclose(after["gates"], expected["gates"], atol=1e-4)
    np.testing.assert_allclose(after["modulator"], expected["modulator"], atol=1e-4)
