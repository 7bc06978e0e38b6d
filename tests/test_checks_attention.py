"""The prediction checks of Chapters 1-3: each answer equals what the library measures,
and each typical wrong prediction is named."""

import numpy as np
import pytest
from keras import ops

from focaledu import FocalModulation, attention, checks, receptive
from focaledu.checks.attention import REACH_TOKEN, REACH_X, reach_measurement

# --- Chapter 1: attention_growth --------------------------------------------------------


def test_attention_growth_answers_are_measured():
    """Doubling the grid side: y grows 4x, the attention weights 16x, the parameters 1x."""
    sizes = {}
    for side in (4, 8):
        layer = attention.MultiHeadSelfAttention(16, num_heads=2)
        x = np.zeros((1, side, side, 16), "float32")
        y, weights = layer(x, return_attention_scores=True)
        sizes[side] = (np.prod(y.shape), np.prod(weights.shape), layer.count_params())
    output, weights, params = (b / a for a, b in zip(sizes[4], sizes[8]))
    assert (output, weights, params) == (4, 16, 1)
    assert checks.attention_growth(output, weights, params)


@pytest.mark.parametrize(
    "prediction, words",
    [
        ((2, 16, 1), "side^2 tokens"),
        ((16, 16, 1), "grows like N"),
        ((4, 4, 1), "one number per query-key pair"),
        ((4, 8, 1), "not 2^3"),
        ((4, 16, 4), "do not depend on N"),
        (("a", 16, 1), "three numbers"),
    ],
)
def test_attention_growth_names_the_mistake(prediction, words):
    result = checks.attention_growth(*prediction)
    assert not result and words in result.message


# --- Chapter 2: perturbation_reach ------------------------------------------------------


def test_reach_measurement_is_every_token_then_the_window():
    n, j = len(REACH_X), REACH_TOKEN
    assert reach_measurement() == (list(range(n)), list(range(n)), [j - 1, j, j + 1])
    # The local set is the kernel's window: a 5-tap kernel reaches two tokens each side.
    wide = reach_measurement(kernel=np.full(5, 0.2, "float32"))
    assert wide[2] == [j - 2, j - 1, j, j + 1, j + 2]


def test_reach_local_set_is_the_modulator_without_its_global_shift():
    """Outside the window every token's modulator moves by the same (global) amount."""
    eye = np.eye(2, dtype="float32")
    moved = REACH_X.copy()
    moved[REACH_TOKEN, 0] += 1
    kernel = np.array([0.25, 0.5, 0.25], "float32")
    _, m0 = attention.focal_modulation_1d(REACH_X, eye, eye, kernel, return_modulator=True)
    _, m1 = attention.focal_modulation_1d(moved, eye, eye, kernel, return_modulator=True)
    shift = ops.convert_to_numpy(m1 - m0)
    far = [i for i in range(len(REACH_X)) if abs(i - REACH_TOKEN) > 1]
    np.testing.assert_allclose(shift[far], np.tile([1 / len(REACH_X), 0], (len(far), 1)), atol=1e-6)


def test_perturbation_reach_passes_the_measured_sets():
    assert checks.perturbation_reach(range(9), list(range(9)), (3, 4, 5))


@pytest.mark.parametrize(
    "prediction, words",
    [
        (([4], range(9), [3, 4, 5]), "key and a value of every other query"),
        (([3, 4, 5], range(9), [3, 4, 5]), "no neighbourhood"),
        ((range(9), [3, 4, 5], [3, 4, 5]), "global level averages"),
        ((range(9), range(9), range(9)), "3-tap kernel window covers token 4"),
        ((range(9), range(9), [4]), "tokens 3 and 5 also"),
        ((range(9), range(9), "x"), "lists of token indices"),
    ],
)
def test_perturbation_reach_names_the_mistake(prediction, words):
    result = checks.perturbation_reach(*prediction)
    assert not result and words in result.message


# --- Chapter 3: receptive_field_prediction ------------------------------------------------


@pytest.mark.parametrize("level, window, factor", [(3, 5, 2), (3, 3, 2), (2, 7, 4)])
def test_receptive_field_prediction_equals_the_gradient_support(level, window, factor):
    layer = FocalModulation(4, focal_window=window, focal_level=level, focal_factor=factor)
    gradients = receptive.receptive_field_gradients(layer, 41, 41, (20, 20))
    rows = np.flatnonzero(gradients[level - 1].sum(axis=1) > 0)
    side = int(rows.max() - rows.min() + 1)
    assert checks.receptive_field_prediction(side, level, window, factor)


@pytest.mark.parametrize(
    "side, words",
    [
        (21, "added the kernel sizes"),
        (18, "forgot the centre"),
        (9, "last level's kernel alone"),
        (9, "radius"),
        (13, "kept every kernel at focal_window"),
        (25, "first kernel is focal_window + focal_factor"),
        (361, "number of positions"),
        (7, "add them up from 1"),
        ("nineteen", "one number"),
    ],
)
def test_receptive_field_prediction_names_the_mistake(side, words):
    result = checks.receptive_field_prediction(side)
    assert not result and words in result.message
