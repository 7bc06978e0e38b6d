"""Checks added for the prediction and experiment exercises of chapters 4-6: the
reference solution passes, and each typical mistake is recognised by name."""

import numpy as np
import pytest
from keras import ops

from focaledu import checks

pytestmark = pytest.mark.backends


def _aggregate(levels, weights):
    # The levels are NumPy; torch does not multiply a NumPy array by a tensor.
    weights = ops.convert_to_numpy(weights)
    return sum(z * weights[..., l : l + 1] for l, z in enumerate(levels))


def softmax_gates(levels, gates):
    return _aggregate(levels, ops.softmax(gates, axis=-1))


def softmax_gates_numpy(levels, gates):
    e = np.exp(gates - gates.max(-1, keepdims=True))
    return _aggregate(levels, e / e.sum(-1, keepdims=True))


def test_softmax_gated_aggregation_solutions_pass():
    for solution in (softmax_gates, softmax_gates_numpy):
        result = checks.softmax_gated_aggregation(solution)
        assert result, result


@pytest.mark.parametrize("wrong, expected", [
    (lambda l, g: _aggregate(l, g), "raw gates"),
    (lambda l, g: _aggregate(l, ops.softmax(g, axis=1)), "rows of the map"),
    (lambda l, g: _aggregate(l, ops.softmax(g, axis=2)), "columns of the map"),
    (lambda l, g: _aggregate(l, np.concatenate([np.asarray(ops.softmax(g[..., :-1], axis=-1)), g[..., -1:]], -1)),
     "global level's gate is left out"),
    (lambda l, g: _aggregate(l, ops.sigmoid(g)), "sigmoid"),
    (lambda l, g: softmax_gates(l, g) / len(l), "already sum to 1"),
])
def test_softmax_gated_aggregation_names_the_mistake(wrong, expected):
    result = checks.softmax_gated_aggregation(wrong)
    assert not result and expected in result.message, result


RIGHT = {"focal modulation": 3, "gating=False": 2, "use_postln_in_modulation=True": 0, "self-attention": 1}


def test_scale_exponents_measured_slopes_are_the_integers():
    from focaledu.checks.modulation import _scale_slopes

    slopes = _scale_slopes()
    assert {key: round(value) for key, value in slopes.items()} == RIGHT
    assert all(abs(value - RIGHT[key]) < 0.15 for key, value in slopes.items()), slopes


def test_scale_exponents_right_predictions_pass():
    result = checks.scale_exponents(RIGHT)
    assert result and "focal modulation 3.0" in result.message, result


@pytest.mark.parametrize("key, guess, expected", [
    ("focal modulation", 1, "multiplies all three"),
    ("focal modulation", 2, "multiplies all three"),
    ("gating=False", 3, "without gates only q and the context"),
    ("use_postln_in_modulation=True", 3, "divides out whatever scale"),
    ("self-attention", 2, "softmax keeps every weight in [0, 1]"),
])
def test_scale_exponents_names_the_mistake(key, guess, expected):
    result = checks.scale_exponents({**RIGHT, key: guess})
    assert not result and "1 of 4 off" in result.message and expected in result.message, result


def test_scale_exponents_incomplete_or_malformed():
    assert "not predicted yet: 'self-attention'" in checks.scale_exponents({**RIGHT, "self-attention": None}).message
    assert "not a number" in checks.scale_exponents({**RIGHT, "gating=False": "two"}).message
    assert "unknown keys" in checks.scale_exponents({**RIGHT, "attention": 1}).message
    assert not checks.scale_exponents([3, 2, 0, 1])


SMALL = [(16, 16, 64), (8, 8, 128), (4, 4, 256)]


def test_stage_shapes_of_preset_right_predictions_pass():
    assert checks.stage_shapes_of_preset("focalnet_cifar_small", SMALL)
    assert checks.stage_shapes_of_preset("focalnet_cifar_tiny", [(8, 8, 64), (4, 4, 128), (2, 2, 256)])
    assert checks.stage_shapes_of_preset("focalnet_cifar_small", [list(shape) for shape in SMALL])


@pytest.mark.parametrize("predicted, expected", [
    ([(8, 8, 64), (4, 4, 128), (2, 2, 256)], "the patch size, 2 here, not 4"),
    ([(8, 8, 64), (4, 4, 128), (2, 2, 256)], "the first stage has no downsampling"),
    ([(16, 16, 64), (8, 8, 64), (4, 4, 64)], "the width doubles"),
    ([(32, 32, 64), (16, 16, 128), (8, 8, 256)], "32 // 2 = 16 tokens per side"),
    ([(16, 16, 64), (8, 8, 128), (4, 4, 512)], "stage 2: you predicted (4, 4, 512)"),
    (SMALL[:2], "has 3 stage(s)"),
    ([None, None, None], "fill in one (H, W, C)"),
])
def test_stage_shapes_of_preset_names_the_mistake(predicted, expected):
    result = checks.stage_shapes_of_preset("focalnet_cifar_small", predicted)
    assert not result and expected in result.message, result
