"""The chapter 7 check added for the prediction exercise: the smoothed loss of one confident prediction."""

import math

import keras
import numpy as np
import pytest

from focaledu.checks import training as checks


def smoothed_loss(gap, num_classes, smoothing):
    return math.log(math.exp(gap) + num_classes - 1) - (1 - smoothing + smoothing / num_classes) * gap


@pytest.mark.parametrize("gap, num_classes, smoothing", [(0.0, 10, 0.1), (4.5, 10, 0.1), (20.0, 10, 0.1),
                                                         (2.0, 2, 0.2), (-1.0, 5, 0.3)])
def test_reference_is_keras_loss(gap, num_classes, smoothing):
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    target = np.eye(num_classes, dtype="float32")[[0]]
    logits = np.array([[gap] + [0.0] * (num_classes - 1)], dtype="float32")
    assert checks._gap_loss(gap, num_classes, smoothing) == pytest.approx(float(loss(target, logits)), abs=1e-5)


def test_smallest_loss_is_the_entropy_of_the_smoothed_target():
    gaps = np.linspace(0, 20, 20001)
    losses = [checks._gap_loss(g, 10, 0.1) for g in gaps]
    target = np.array([0.91] + [0.01] * 9)
    assert min(losses) == pytest.approx(-(target * np.log(target)).sum(), abs=1e-6)
    assert gaps[int(np.argmin(losses))] == pytest.approx(math.log(91), abs=1e-3)


def test_passes_and_names_mistakes():
    assert checks.smoothed_loss(smoothed_loss)
    no_smoothing = checks.smoothed_loss(lambda g, k, s: math.log(math.exp(g) + k - 1) - g)
    assert not no_smoothing and "without label smoothing" in no_smoothing.message
    others_only = checks.smoothed_loss(lambda g, k, s: math.log(math.exp(g) + k - 1) - (1 - s) * g)
    assert not others_only and "right one included" in others_only.message
    no_lse = checks.smoothed_loss(lambda g, k, s: -(1 - s + s / k) * g)
    assert not no_lse and "log-sum-exp" in no_lse.message


def test_stub_and_non_function_are_reported():
    def stub(gap, num_classes, smoothing):
        raise NotImplementedError("log-sum-exp minus the target's share")

    assert "not implemented yet" in checks.smoothed_loss(stub).message
    assert not checks.smoothed_loss(0.5)
