"""Every public layer through Keras's own layer-test harness (tests/conftest.py), on every backend.

``run_layer_test`` checks build, symbolic and eager calls, serialization, one
compiled training step and a ``mixed_float16`` call (output dtype as
promised, float32 weights). Then a whole small FocalNet runs a forward pass
and a train step under a mixed-precision policy.
"""

import keras
import numpy as np
import pytest

from focaledu.attention import MultiHeadSelfAttention, SelfAttentionBlock, WindowAttention
from focaledu.ablation_layers import AblatedFocalModulation, AblatedFocalNetBlock
from focaledu.block_parts import Mlp
from focaledu.layers import DepthwiseConvMixer, FocalModulation, FocalNetBlock, PatchEmbedding
from focaledu.model import FocalNet

pytestmark = pytest.mark.backends

DIM = 8
MAP = (2, 4, 4, DIM)

CASES = {
    "PatchEmbedding-patches": (PatchEmbedding, dict(embed_dim=DIM, patch_size=2), (2, 8, 8, 3), (2, 4, 4, DIM)),
    "PatchEmbedding-conv-stem": (
        PatchEmbedding, dict(embed_dim=DIM, patch_size=4, use_conv_embed=True), (2, 8, 8, 3), (2, 2, 2, DIM),
    ),
    "PatchEmbedding-no-norm": (
        PatchEmbedding, dict(embed_dim=DIM, patch_size=2, use_conv_embed=True, use_norm=False), (2, 4, 4, 3),
        (2, 2, 2, DIM),
    ),
    "FocalModulation": (FocalModulation, dict(dim=DIM, focal_window=3, focal_level=2), MAP, MAP),
    "FocalModulation-postln-normalized": (
        FocalModulation,
        dict(dim=DIM, focal_window=3, focal_level=2, use_postln_in_modulation=True, normalize_modulator=True),
        MAP, MAP,
    ),
    "AblatedFocalModulation": (
        AblatedFocalModulation, dict(dim=DIM, focal_window=3, focal_level=1, gating=False, global_context=False), MAP, MAP,
    ),
    "DepthwiseConvMixer": (DepthwiseConvMixer, dict(dim=DIM, proj_drop=0.1), MAP, MAP),
    "Mlp-tokens": (Mlp, dict(dim=DIM, hidden_dim=16), (2, 5, DIM), (2, 5, DIM)),
    "Mlp-map-dropout": (Mlp, dict(dim=DIM, hidden_dim=16, drop=0.1), MAP, MAP),
    "FocalNetBlock-focal": (FocalNetBlock, dict(dim=DIM, use_layerscale=True, drop_path=0.1), MAP, MAP),
    "FocalNetBlock-focal-postln": (
        FocalNetBlock,
        dict(dim=DIM, use_postln=True, use_postln_in_modulation=True, normalize_modulator=True,
             use_layerscale=True),
        MAP, MAP,
    ),
    "AblatedFocalNetBlock": (
        AblatedFocalNetBlock, dict(dim=DIM, gating=False, global_context=False, pre_norm=False), MAP, MAP,
    ),
    "FocalNetBlock-attention": (FocalNetBlock, dict(dim=DIM, mixer="attention", num_heads=2), MAP, MAP),
    "FocalNetBlock-dwconv": (FocalNetBlock, dict(dim=DIM, mixer="dwconv", drop=0.1), MAP, MAP),
    "FocalNetBlock-window": (
        FocalNetBlock, dict(dim=DIM, mixer="window", num_heads=2, window_size=2, shift_size=1), MAP, MAP,
    ),
    "MultiHeadSelfAttention-tokens": (
        MultiHeadSelfAttention, dict(dim=DIM, num_heads=2, attn_drop=0.1), (2, 5, DIM), (2, 5, DIM),
    ),
    "MultiHeadSelfAttention-position-bias": (
        MultiHeadSelfAttention, dict(dim=DIM, num_heads=2, relative_position_bias=True), (2, 3, 3, DIM),
        (2, 3, 3, DIM),
    ),
    "WindowAttention": (WindowAttention, dict(dim=DIM, num_heads=2, window_size=2), MAP, MAP),
    "WindowAttention-shifted": (
        WindowAttention, dict(dim=DIM, num_heads=2, window_size=2, shift_size=1, qkv_bias=False), MAP, MAP,
    ),
    "SelfAttentionBlock": (
        SelfAttentionBlock, dict(dim=DIM, num_heads=2, use_layerscale=True, drop_path=0.1), MAP, MAP,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_layer_passes_the_keras_harness(case, keras_layer_test):
    layer_cls, init_kwargs, input_shape, output_shape = CASES[case]
    keras_layer_test(layer_cls, init_kwargs, input_shape, output_shape)


def test_every_public_layer_is_covered():
    import focaledu

    public = {name for name in focaledu.__all__ if isinstance(getattr(focaledu, name), type)
              and issubclass(getattr(focaledu, name), keras.layers.Layer)
              and not issubclass(getattr(focaledu, name), keras.Model)}
    covered = {layer_cls.__name__ for layer_cls, *_ in CASES.values()}
    assert public <= covered, public - covered


SMALL = dict(embed_dim=16, depths=[1, 1], focal_levels=[2, 2], focal_windows=[3, 3])


def _inner_layers(model):
    # Every layer and sublayer but the input, which keeps the images' float32.
    return [layer for layer in model._flatten_layers(include_self=False)
            if not isinstance(layer, keras.layers.InputLayer)]


def _train_step(model, policy):
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[[0, 1, 2, 3]]
    logits = model(x, training=False)
    assert keras.backend.standardize_dtype(logits.dtype) == policy.compute_dtype
    assert np.isfinite(keras.ops.convert_to_numpy(logits)).all()
    for layer in _inner_layers(model):
        assert layer.dtype_policy.name == policy.name, layer.name
    assert all(v.dtype == "float32" for v in model.weights)
    model.compile(optimizer="adamw", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("mixer", ["focal", "window"])
def test_small_focalnet_trains_under_the_global_mixed_float16_policy(mixer, global_dtype_policy):
    global_dtype_policy("mixed_float16")
    model = FocalNet.from_preset("focalnet_cifar_tiny", num_classes=10, mixer=mixer, window_size=4, **SMALL)
    _train_step(model, keras.dtype_policies.get("mixed_float16"))


def test_small_focalnet_takes_a_dtype_argument():
    before = keras.config.dtype_policy().name
    model = FocalNet.from_preset("focalnet_cifar_tiny", num_classes=10, dtype="mixed_bfloat16", **SMALL,
                                 include_preprocessing=True)  # Rescaling and Normalization get the policy too
    assert keras.config.dtype_policy().name == before
    assert model.dtype_policy.name == "mixed_bfloat16"
    _train_step(model, keras.dtype_policies.get("mixed_bfloat16"))
