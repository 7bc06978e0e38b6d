import json
from pathlib import Path

import numpy as np
import pytest

from focaledu import FocalNet, flops, preset_config

FIXTURE = Path(__file__).parent / "fixtures" / "timm_param_counts.json"
TIMM = json.loads(FIXTURE.read_text())["variants"]

TINY_CONFIGS = [
    dict(image_size=32, num_classes=5, embed_dim=8, depths=[1, 2], focal_levels=[2, 3], focal_windows=[3, 5]),
    dict(image_size=(32, 64), num_classes=0, embed_dim=8, depths=[1, 1, 1], focal_levels=[1, 2, 1],
         focal_windows=[3, 3, 5], mlp_ratio=2.0, use_conv_embed=True, use_layerscale=True, use_postln=True,
         use_postln_in_modulation=True, patch_norm=False),
]


@pytest.mark.parametrize("preset", sorted(flops.PUBLISHED))
def test_published_table(preset):
    params_m, gflops = flops.PUBLISHED[preset]
    assert round(flops.model_flops(preset) / 1e9, 1) == gflops
    assert round(flops.model_flops(preset, include_norms=True) / 1e9, 1) == gflops
    assert round(flops.model_params(preset) / 1e6, 1) == params_m


@pytest.mark.parametrize("variant", sorted(TIMM))
def test_params_equal_timm_counts(variant):
    assert flops.model_params(TIMM[variant]["official_kwargs"]) == TIMM[variant]["num_params"]
    assert flops.model_params(variant) == TIMM[variant]["num_params"]


@pytest.mark.parametrize("config", TINY_CONFIGS + [preset_config("focalnet_cifar_tiny")])
def test_params_equal_count_params(config):
    model = FocalNet(**config)
    assert flops.model_params(model) == flops.model_params(config) == model.count_params()


def _graph_macs(model):
    """MACs of the matmuls and (depthwise) convolutions in the model's TensorFlow graph, batch 1."""
    tf = pytest.importorskip("tensorflow")
    height, width = model.image_size
    spec = tf.TensorSpec((1, height, width, model.in_chans))
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    total = 0
    for op in graph.get_operations():
        out = op.outputs[0].shape.as_list() if op.outputs else None
        if op.type in ("MatMul", "BatchMatMulV2"):
            a = op.inputs[0].shape.as_list()
            inner = a[-2] if op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x") else a[-1]
            total += int(np.prod(out)) * inner
        elif op.type == "Conv2D":
            kh, kw, c_in, _ = op.inputs[1].shape.as_list()
            total += int(np.prod(out)) * kh * kw * c_in
        elif op.type == "DepthwiseConv2dNative":
            kh, kw, _, _ = op.inputs[1].shape.as_list()
            total += int(np.prod(out)) * kh * kw
    return total


@pytest.mark.parametrize("config", TINY_CONFIGS)
def test_macs_equal_an_independent_count_from_the_graph(config):
    pytest.importorskip("tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("reads the TensorFlow graph")
    model = FocalNet(**config)
    # The graph count has the weighted ops only; add the modulation's own
    # products: L + 1 gatings and q * M per channel and token of every block.
    gating = 0
    for name in model.block_names:
        block = model.get_layer(name)
        _, h, w, dim = block.input.shape
        gating += h * w * dim * (block.modulation.focal_level + 2)
    assert flops.model_flops(model) == _graph_macs(model) + gating


def test_per_stage_and_shapes():
    parts = flops.flops_breakdown("focalnet_tiny_srf")
    assert list(parts) == ["stem", "stage_0", "stage_1", "stage_2", "stage_3", "head"]
    assert [parts[f"stage_{i}"]["shape"] for i in range(4)] == [(56, 56, 96), (28, 28, 192), (14, 14, 384),
                                                                 (7, 7, 768)]
    assert parts["stem"]["macs"] == 56 * 56 * 96 * 3 * 16
    assert parts["head"]["macs"] == 768 * 1000
    per_stage = flops.model_flops("focalnet_tiny_srf", per_stage=True)
    assert sum(per_stage.values()) == flops.model_flops("focalnet_tiny_srf")
    # MACs of the blocks scale with the tokens: a 448 image costs about 4x.
    ratio = flops.model_flops("focalnet_tiny_srf", image_size=448) / flops.model_flops("focalnet_tiny_srf")
    assert 3.9 < ratio < 4.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by"):
        flops.model_flops("focalnet_tiny_srf", image_size=100)
    with pytest.raises(ValueError, match="preset name"):
        flops.model_flops(3)
    with pytest.raises(ValueError, match="Unknown `preset`"):
        flops.model_flops("focalnet_gigantic")


def test_architecture_checks_pass_right_answers_and_name_mistakes():
    from focaledu.checks import architecture as checks

    def shapes(size, patch, dim, stages):
        return [(size // patch // 2**i, size // patch // 2**i, dim * 2**i) for i in range(stages)]

    assert checks.stage_shapes(shapes)
    assert "no downsampling" in checks.stage_shapes(lambda s, p, d, n: shapes(s // 2, p, d, n)).message

    from focaledu import FocalNetBlock

    def block(dim, level, window, ratio):
        layer = FocalNetBlock(dim, ratio, focal_level=level, focal_window=window)
        layer.build((1, 8, 8, dim))
        return layer.count_params()

    assert checks.block_params(block)
    assert "LayerNorms" in checks.block_params(lambda d, l, w, r: block(d, l, w, r) - 4 * d).message

    assert checks.stem_macs(lambda s, p, c, e: (s // p) ** 2 * p * p * c * e)
    assert "tokens" in checks.stem_macs(lambda s, p, c, e: s * s * p * p * c * e).message
    assert "not implemented" in checks.stem_macs(lambda *a: (_ for _ in ()).throw(NotImplementedError())).message
