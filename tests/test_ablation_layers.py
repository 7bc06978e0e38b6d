"""Chapter 10's ablations: focaledu.ablation_layers (uniform gates, no global context, no pre-norm) and
the token mixers a FocalNetBlock can swap in."""

import keras
import numpy as np
import pytest
from keras import ops

from focaledu import FocalModulation, FocalNet, FocalNetBlock, MultiHeadSelfAttention
from focaledu.ablation_layers import AblatedFocalModulation, AblatedFocalNet, AblatedFocalNetBlock
from focaledu.attention import relative_position_index, to_keras_mha
from focaledu.layers import DepthwiseConvMixer
from layer_checks import check_layer, random_inputs

SMALL = dict(image_size=32, num_classes=4, embed_dim=8, depths=(1, 1), focal_levels=(2, 2), focal_windows=(3, 3))


def np_(x):
    return ops.convert_to_numpy(x)


# --- FocalModulation: gating and global_context ------------------------------------------------


@pytest.mark.backends
@pytest.mark.parametrize("gating, global_context", [(False, True), (True, False), (False, False)])
def test_focal_modulation_switches_pass_the_layer_checks(gating, global_context, tmp_path):
    kwargs = dict(dim=8, focal_window=3, focal_level=2, gating=gating, global_context=global_context)
    check_layer(AblatedFocalModulation, kwargs, (2, 6, 10, 8), (2, 6, 10, 8), 2 + 2 + 2 + 2, tmp_path)


@pytest.mark.backends
@pytest.mark.parametrize("level", [1, 3])
def test_switches_remove_only_the_gate_channels_of_f(level):
    def params(**kwargs):
        layer = AblatedFocalModulation(8, focal_window=3, focal_level=level, **kwargs)
        layer.build((None, 6, 6, 8))
        return layer.count_params(), layer.f.kernel.shape[-1]

    full, f_out = params()
    assert f_out == 2 * 8 + level + 1
    assert full - params(gating=False)[0] == (8 + 1) * (level + 1)
    assert full - params(global_context=False)[0] == 8 + 1
    assert params(gating=False, global_context=False) == (full - (8 + 1) * (level + 1), 2 * 8)
    # bias=False also drops all biases of f (2 * 8 + L + 1 with the gates) and h (8).
    assert full - params(gating=False, bias=False)[0] == 8 * (level + 1) + (2 * 8 + level + 1) + 8


def _copy_into_gated(gated, ablated, gate_bias):
    """Gives ``gated`` the weights of ``ablated``, with gate channels whose kernel is 0 and bias ``gate_bias``."""
    x = random_inputs((2, 7, 7, 8))
    gated(x), ablated(x)
    kernel, bias = np_(ablated.f.kernel), np_(ablated.f.bias)
    gated.f.kernel.assign(np.concatenate([kernel[:, :16], np.zeros((8, len(gate_bias)), "float32")], axis=-1))
    gated.f.bias.assign(np.concatenate([bias[:16], np.asarray(gate_bias, "float32")]))
    for a, b in zip(gated.focal_layers, ablated.focal_layers):
        a.kernel.assign(b.kernel)
    for name in ("h", "proj"):
        getattr(gated, name).set_weights(getattr(ablated, name).get_weights())
    return x


@pytest.mark.backends
def test_uniform_gates_weigh_every_level_by_one():
    uniform = AblatedFocalModulation(8, focal_window=3, focal_level=2, gating=False)
    gated = FocalModulation(8, focal_window=3, focal_level=2)
    # The official layer with its gate channels forced to the constant 1 computes the same function:
    # the uniform layer has no gate weights, so nothing learned can re-weigh the levels.
    x = _copy_into_gated(gated, uniform, gate_bias=[1.0, 1.0, 1.0])
    y_uniform, maps = uniform(x, return_modulation=True)
    y_gated, gated_maps = gated(x, return_modulation=True)
    np.testing.assert_allclose(np_(y_uniform), np_(y_gated), atol=1e-5)
    np.testing.assert_array_equal(np_(maps["gates"]), np.ones((2, 7, 7, 3), "float32"))
    np.testing.assert_allclose(np_(maps["modulator"]), np_(gated_maps["modulator"]), atol=1e-5)
    # Other gate values give another function: the gates were doing something.
    gated.f.bias.assign(np.concatenate([np_(uniform.f.bias), np.float32([0.5, 2.0, -1.0])]))
    assert not np.allclose(np_(gated(x)), np_(y_uniform), atol=1e-4)


@pytest.mark.backends
def test_no_global_context_equals_a_zero_global_gate():
    local = AblatedFocalModulation(8, focal_window=3, focal_level=2, global_context=False)
    gated = FocalModulation(8, focal_window=3, focal_level=2)
    x = random_inputs((2, 7, 7, 8))
    local(x), gated(x)
    kernel, bias = np_(local.f.kernel), np_(local.f.bias)
    gated.f.kernel.assign(np.concatenate([kernel, np.zeros((8, 1), "float32")], axis=-1))
    gated.f.bias.assign(np.concatenate([bias, np.zeros(1, "float32")]))
    for a, b in zip(gated.focal_layers, local.focal_layers):
        a.kernel.assign(b.kernel)
    for name in ("h", "proj"):
        getattr(gated, name).set_weights(getattr(local, name).get_weights())
    y_local, maps = local(x, return_modulation=True)
    np.testing.assert_allclose(np_(y_local), np_(gated(x)), atol=1e-5)
    gates = np_(maps["gates"])
    assert gates.shape == (2, 7, 7, 3)  # always L + 1 channels, the global one last
    np.testing.assert_array_equal(gates[..., 2], 0.0)
    np.testing.assert_allclose(gates[..., :2], np_(local.f(x))[..., 16:], atol=1e-6)


@pytest.mark.backends
@pytest.mark.parametrize("global_context", [True, False])
def test_without_global_context_a_token_only_sees_its_receptive_field(global_context):
    # L = 1, kernel 3: without the global level, output (0, 0) depends on tokens (0..1, 0..1) only.
    layer = AblatedFocalModulation(8, focal_window=3, focal_level=1, global_context=global_context)
    x = random_inputs((1, 8, 8, 8))
    far = x.copy()
    far[0, 5:, 5:] += 3.0
    near = x.copy()
    near[0, 1, 1] += 3.0
    y, y_far, y_near = (np_(layer(v))[0, 0, 0] for v in (x, far, near))
    assert not np.allclose(y, y_near, atol=1e-4)
    assert np.allclose(y, y_far, atol=1e-6) == (not global_context)


@pytest.mark.backends
def test_normalize_modulator_divides_by_the_levels_in_use():
    plain = AblatedFocalModulation(8, focal_window=3, focal_level=2, global_context=False, bias=False)
    normalized = AblatedFocalModulation(8, focal_window=3, focal_level=2, global_context=False, bias=False,
                                 normalize_modulator=True)
    x = random_inputs((1, 5, 5, 8))
    plain(x), normalized(x)
    normalized.set_weights(plain.get_weights())
    _, a = normalized(x, return_modulation=True)
    _, b = plain(x, return_modulation=True)
    np.testing.assert_allclose(np_(a["modulator"]) * 2, np_(b["modulator"]), rtol=1e-5, atol=1e-5)


# --- The official layers have no switches; the ablated ones default to them ---------------------


@pytest.mark.parametrize("layer, kwargs", [(FocalModulation, dict(dim=8, focal_window=3, focal_level=2)),
                                           (FocalNetBlock, dict(dim=8))])
@pytest.mark.parametrize("switch", ["gating", "global_context", "pre_norm"])
def test_official_layers_take_no_ablation_switch(layer, kwargs, switch):
    with pytest.raises(ValueError, match=f"Unrecognized keyword arguments.*{switch}"):
        layer(**kwargs, **{switch: False})


@pytest.mark.backends
def test_ablated_model_with_every_switch_on_is_the_official_model():
    # Same seed, same weights in the same order: the recorded ablation baselines stay reproducible.
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    keras.utils.set_random_seed(3)
    official = FocalNet(**SMALL)
    keras.utils.set_random_seed(3)
    ablated = AblatedFocalNet(**SMALL)
    assert [w.path for w in ablated.weights] == [w.path for w in official.weights]
    for a, b in zip(ablated.weights, official.weights):
        np.testing.assert_array_equal(np_(a), np_(b))
    np.testing.assert_array_equal(ablated.predict(images, verbose=0), official.predict(images, verbose=0))


@pytest.mark.parametrize("cls, kwargs", [(FocalNet, SMALL), (FocalNetBlock, dict(dim=8)),
                                         (FocalModulation, dict(dim=8, focal_window=3, focal_level=2))])
def test_configs_saved_with_the_old_switches_still_load(cls, kwargs):
    config = cls(**kwargs).get_config()
    legacy = {**config, "gating": True, "global_context": True}
    assert cls.from_config(legacy).get_config() == config
    with pytest.raises(ValueError, match=rf"sets `global_context`.*Ablated{cls.__name__}"):
        cls.from_config({**legacy, "global_context": False})


# --- FocalNetBlock: pre_norm and mixer ------------------------------------------------------------


@pytest.mark.backends
@pytest.mark.parametrize(
    "kwargs, trainable",
    [
        (dict(dim=8, pre_norm=False), 2 + 8 + 4),
        (dict(dim=8, gating=False, global_context=False, use_layerscale=True), 4 + 8 + 4 + 2),
        (dict(dim=8, mixer="attention", drop=0.1), 4 + 9 + 4),  # q, k, v, proj + bias table
        (dict(dim=64, mixer="attention", num_heads=4, mlp_ratio=2.0), 4 + 9 + 4),
        (dict(dim=8, mixer="dwconv", focal_level=3), 4 + 7 + 4),  # expand, 3 convs, proj
        (dict(dim=8, mixer="dwconv", pre_norm=False, drop_path=0.1), 2 + 6 + 4),
    ],
)
def test_ablated_blocks_pass_the_layer_checks(kwargs, trainable, tmp_path):
    # check_layer also trains one jit-compiled step and round-trips the .keras file.
    dim = kwargs["dim"]
    check_layer(AblatedFocalNetBlock, kwargs, (2, 6, 4, dim), (2, 6, 4, dim), trainable, tmp_path)


@pytest.mark.backends
def test_depthwise_conv_mixer_passes_the_layer_checks(tmp_path):
    check_layer(DepthwiseConvMixer, dict(dim=8, focal_level=2, expansion=3), (2, 6, 10, 8), (2, 6, 10, 8),
                2 + 2 + 2, tmp_path)


@pytest.mark.backends
def test_dwconv_mixer_parameters_follow_the_docstring():
    for dim, level in ((8, 1), (64, 2), (32, 4)):
        mixer = DepthwiseConvMixer(dim, focal_level=level)
        mixer.build((None, 8, 8, dim))
        kernels = sum(k * k for k in mixer.kernel_sizes)
        assert mixer.count_params() == 4 * dim * dim + 2 * dim * kernels + 3 * dim


@pytest.mark.backends
def test_block_without_pre_norm_feeds_the_raw_stream_to_the_mixer():
    block = AblatedFocalNetBlock(8, pre_norm=False)
    x = random_inputs((2, 4, 4, 8)) * 10 + 3
    block(x)
    assert isinstance(block.norm1, keras.layers.Identity)
    mixed = x + np_(block.modulation(x))
    expected = mixed + np_(block.mlp(block.norm2(mixed)))
    np.testing.assert_allclose(np_(block(x)), expected, rtol=1e-5, atol=1e-4)
    # With the pre-norm the mixer's input, hence its gates, ignores a per-token affine change
    # (tests/test_layers.py); without it the gates follow the change.
    _, maps_a = block(x, return_modulation=True)
    _, maps_b = block(x * 2 + 5, return_modulation=True)
    assert not np.allclose(np_(maps_a["gates"]), np_(maps_b["gates"]), atol=1e-2)
    with_norm = FocalNetBlock(8)
    with_norm(x)
    assert with_norm.count_params() - block.count_params() == 2 * 8


@pytest.mark.backends
def test_block_mixers_swap_only_the_mixer():
    x = random_inputs((2, 4, 4, 64))
    blocks = {m: FocalNetBlock(64, mixer=m) for m in FocalNetBlock.MIXERS}
    for mixer, block in blocks.items():
        block(x)
        assert block.token_mixer is not None and block.token_mixer.name in ("modulation", "attn", "dwconv")
        assert [block.modulation, block.attn, block.dwconv].count(None) == 2
        branch = np_(block.token_mixer(block.norm1(x)))
        mixed = x + branch
        np.testing.assert_allclose(np_(block(x)), mixed + np_(block.mlp(block.norm2(mixed))), rtol=1e-5, atol=1e-4)
    assert blocks["attention"].attn.num_heads == 2  # head width 32
    assert blocks["attention"].attn.relative_position_bias
    with pytest.raises(ValueError, match="return_modulation=True needs mixer='focal'"):
        blocks["dwconv"](x, return_modulation=True)


@pytest.mark.backends
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mixer="transformer"), r"`mixer` must be one of 'focal', 'attention', 'dwconv', 'window'; received mixer='transformer'"),
        (dict(mixer="transformer", gating=False), r"`mixer` must be one of"),
        (dict(pre_norm=False, use_postln=True), "pre_norm=False"),
        (dict(pre_norm=0), r"`pre_norm` must be True or False"),
        (dict(num_heads=0), r"`num_heads` must be an integer >= 1"),
        (dict(gating="no"), r"`gating` must be True or False"),
        (dict(global_context=None), r"`global_context` must be True or False"),
    ],
)
def test_block_switches_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AblatedFocalNetBlock(8, **kwargs)


def test_attention_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="`num_heads` must divide `dim`"):
        FocalNetBlock(8, mixer="attention", num_heads=3)


# --- Relative position bias ------------------------------------------------------------------------


def test_relative_position_index_matches_the_offsets():
    height, width = 3, 4
    index = relative_position_index(height, width).reshape(12, 12)
    coords = [(r, c) for r in range(height) for c in range(width)]
    for i, (ri, ci) in enumerate(coords):
        for j, (rj, cj) in enumerate(coords):
            assert index[i, j] == (ri - rj + height - 1) * (2 * width - 1) + (ci - cj + width - 1)
    assert index.max() == (2 * height - 1) * (2 * width - 1) - 1


@pytest.mark.backends
def test_attention_with_relative_position_bias_adds_the_bias_to_the_scores():
    layer = MultiHeadSelfAttention(8, num_heads=2, relative_position_bias=True)
    x = random_inputs((2, 3, 4, 8))
    layer(x)
    table = np.random.default_rng(1).normal(size=(5 * 7, 2)).astype("float32")
    layer.relative_position_bias_table.assign(table)
    y, weights = layer(x, return_attention_scores=True)
    tokens = x.reshape(2, 12, 8)
    q, k = (np_(d(tokens)).reshape(2, 12, 2, 4).transpose(0, 2, 1, 3) for d in (layer.q, layer.k))
    bias = table[relative_position_index(3, 4)].reshape(12, 12, 2).transpose(2, 0, 1)
    scores = q @ k.transpose(0, 1, 3, 2) / 2.0 + bias
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(np_(weights), expected, atol=1e-5)
    assert layer.count_params() == 4 * (8 * 8 + 8) + 35 * 2
    assert np_(y).shape == x.shape


def test_relative_position_bias_needs_a_feature_map():
    with pytest.raises(ValueError, match="relative_position_bias=True needs feature-map inputs"):
        MultiHeadSelfAttention(8, relative_position_bias=True)(random_inputs((2, 5, 8)))
    layer = MultiHeadSelfAttention(8, relative_position_bias=True)
    layer(random_inputs((1, 3, 3, 8)))
    with pytest.raises(ValueError, match="no relative position bias"):
        to_keras_mha(layer)


# --- FocalNet ------------------------------------------------------------------------------------------


@pytest.mark.backends
@pytest.mark.parametrize("mixer", ["attention", "dwconv"])
def test_focalnet_with_another_mixer_has_no_modulation_outputs(mixer, tmp_path):
    from focaledu import interpret

    model = FocalNet(**SMALL, mixer=mixer, num_heads=None if mixer == "dwconv" else (1, 2))
    assert model.modulation_outputs == {}
    assert model.block_names == ["layers_0_blocks_0", "layers_1_blocks_0"]
    assert {model.get_layer(n).mixer for n in model.block_names} == {mixer}
    config = model.get_config()
    assert config["mixer"] == mixer and FocalNet.from_config(config).get_config() == config
    images = np.random.rand(2, 32, 32, 3).astype("float32")
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(restored.predict(images, verbose=0), model.predict(images, verbose=0))
    with pytest.raises(ValueError, match="no focal-modulation blocks"):
        interpret.modulation_maps(model, images)


@pytest.mark.backends
def test_focalnet_passes_the_switches_to_every_block(tmp_path):
    model = AblatedFocalNet(**SMALL, gating=False, global_context=False, pre_norm=False)
    blocks = [model.get_layer(n) for n in model.block_names]
    off = {"gating": False, "global_context": False, "pre_norm": False}
    assert model.switches == off and all(b.switches == off for b in blocks)
    assert all(not b.modulation.gating and not b.modulation.global_context for b in blocks)
    from focaledu.interpret import modulation_maps

    images = np.random.rand(2, 32, 32, 3).astype("float32")
    maps = modulation_maps(model, images)
    gates = maps["layers_0_blocks_0"]["gates"]
    np.testing.assert_array_equal(gates, np.concatenate([np.ones((2, 8, 8, 2)), np.zeros((2, 8, 8, 1))], -1))
    config = model.get_config()
    assert not config["gating"] and AblatedFocalNet.from_config(config).get_config() == config
    model.save(tmp_path / "ablated.keras")
    restored = keras.saving.load_model(tmp_path / "ablated.keras")
    assert type(restored) is AblatedFocalNet and restored.switches == off
    np.testing.assert_array_equal(restored.predict(images, verbose=0), model.predict(images, verbose=0))
    attention = FocalNet(**SMALL, mixer="attention", num_heads=(2, 4))
    assert [attention.get_layer(n).attn.num_heads for n in attention.block_names] == [2, 4]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mixer="conv"), "`mixer` must be one of"),
        (dict(num_heads=(1,)), "`num_heads` must have one entry per stage"),
        (dict(gating=1), "`gating` must be True or False"),
    ],
)
def test_focalnet_switches_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AblatedFocalNet(**SMALL, **kwargs)


def test_official_only_tools_refuse_ablated_models():
    from focaledu import convert, flops

    model = AblatedFocalNet(**SMALL, gating=False)
    with pytest.raises(ValueError, match="timm's FocalNet has no ablated blocks"):
        convert.timm_weight_map(model)
    with pytest.raises(ValueError, match="count_params"):
        flops.model_params(model)
    assert flops.model_params(FocalNet(**SMALL)) == FocalNet(**SMALL).count_params()


def test_modulation_monitor_skips_models_without_gates(tmp_path):
    from focaledu.callbacks import ModulationMonitor

    model = FocalNet(**SMALL, mixer="dwconv")
    monitor = ModulationMonitor(np.zeros((2, 32, 32, 3), "uint8"), out_dir=tmp_path)
    monitor.set_model(model)
    assert monitor.save(1) is None and monitor.paths == []
