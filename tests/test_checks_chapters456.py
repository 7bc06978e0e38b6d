"""Checks added for the prediction and experiment exercises of chapters 4-6: the
reference solution passes, and each typical mistake is recognised by name."""

import numpy as np
import pytest
from keras import ops

from focaledu import checks

pytestmark = pytest.mark.backends


def _aggregate(levels, weights):
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
