"""The prediction checks of chapters 8 and 10: a learner's guess against a measurement."""

import numpy as np

from focaledu.checks.ablations import significance_prediction
from focaledu.checks.interpretation import dominant_level_prediction

ACC = {"baseline": 0.5669, "uniform_gates": 0.5828, "levels_3": 0.5571, "attention": 0.4518}


def test_significance_prediction_passes_on_the_right_prediction():
    result = significance_prediction({"uniform_gates": True, "levels_3": False, "attention": True}, ACC, 10_000)
    assert result, result
    assert "z = +2.27" in result.message and "z = -1.40" in result.message and "z = -16.39" in result.message


def test_significance_prediction_names_the_wrong_variant():
    result = significance_prediction({"uniform_gates": False, "levels_3": True, "attention": True}, ACC, 10_000)
    assert not result
    assert "uniform_gates is past" in result.message and "levels_3 is inside" in result.message
    assert "attention is" not in result.message


def test_significance_prediction_rejects_unmade_or_unknown_predictions():
    assert "predict True or False" in significance_prediction({"uniform_gates": None}, ACC, 10_000).message
    assert "no accuracy" in significance_prediction({"no_global": True}, ACC, 10_000).message
    assert not significance_prediction([True], ACC, 10_000)


def test_significance_prediction_depends_on_n():
    # +1.59 points: past |z| = 2 on 10,000 images, inside it on 1,000
    assert significance_prediction({"uniform_gates": False}, ACC, 1_000)
    assert not significance_prediction({"uniform_gates": False}, ACC, 10_000)


def _gates(winner, levels=3, shape=(4, 2, 2)):
    gates = np.random.default_rng(0).normal(size=(*shape, levels))
    gates[..., winner - 1] += 10.0
    gates[0, 0, 0] = 0.0
    gates[0, 0, 0, winner % levels] = 20.0  # one position won by another level
    return gates


def test_dominant_level_prediction():
    for winner in (1, 2, 3):
        gates = _gates(winner)
        assert dominant_level_prediction(winner, gates)
        wrong = dominant_level_prediction(winner % 3 + 1, gates)
        assert not wrong and f"level {winner} has the largest gate" in wrong.message
    assert "(global)" in dominant_level_prediction(1, _gates(1)).message


def test_dominant_level_prediction_rejects_bad_levels():
    gates = _gates(1)
    for bad in (0, 4, 1.0, "1", True, None):
        result = dominant_level_prediction(bad, gates)
        assert not result and "predict a level from 1 to 3" in result.message
