"""Checks for the exercises of chapter 7: training on CIFAR-10.

    >>> from focaledu import checks
    >>> checks.warmup_cosine_lr(my_warmup_cosine_lr)
"""

import math
import re

import numpy as np

from focaledu.checks._core import CheckResult, compare

__all__ = ["warmup_cosine_lr", "optimizer_steps", "weight_decay_mask", "smooth_labels", "smoothed_loss"]


def _callable_or_fail(name, fn):
    if not callable(fn):
        return CheckResult(name, False, f"expected a function, got {type(fn).__name__}.")
    return None


# --------------------------------------------------------------------------
# Warm-up + cosine learning rate (the keras.io tutorial's WarmUpCosine)
# --------------------------------------------------------------------------


def _lr(step, base_lr, total_steps, warmup_steps, warmup_lr, *, cos_over_total=False, no_shift=False,
        warmup_from_zero=False, no_half=False):
    if step > total_steps:
        return 0.0
    if warmup_steps > 0 and step < warmup_steps:
        start = 0.0 if warmup_from_zero else warmup_lr
        return start + (base_lr - start) * step / warmup_steps
    span = total_steps if cos_over_total else total_steps - warmup_steps
    progress = step if no_shift else step - warmup_steps
    cosine = 1 + math.cos(math.pi * progress / span)
    return base_lr * cosine if no_half else 0.5 * base_lr * cosine


_LR_STEPS = (0, 1, 5, 9, 10, 11, 25, 29, 30, 31, 50, 75, 99, 100)
_LR_CASES = [
    ("base_lr=1e-3, total 100 steps, warm-up 10 from 1e-5", (_LR_STEPS, 1e-3, 100, 10, 1e-5)),
    ("base_lr=2e-3, total 100 steps, warm-up 30 from 1e-6", (_LR_STEPS, 2e-3, 100, 30, 1e-6)),
    ("base_lr=0.1, total 50 steps, no warm-up", ((0, 1, 10, 25, 40, 49, 50), 0.1, 50, 0, 0.0)),
]


def warmup_cosine_lr(fn):
    """Checks ``fn(step, base_lr, total_steps, warmup_steps, warmup_lr) -> float``, a warm-up + cosine rate."""
    failed = _callable_or_fail("warmup_cosine_lr", fn)
    if failed:
        return failed

    def over_steps(rate):
        return lambda steps, *rest: [float(rate(int(s), *rest)) for s in steps]

    mistakes = [
        ("the cosine must span the steps after the warm-up: divide by total_steps - warmup_steps, not total_steps",
         over_steps(lambda *a: _lr(*a, cos_over_total=True))),
        ("the cosine starts when the warm-up ends: use (step - warmup_steps), otherwise the rate drops "
         "right after the warm-up and hits 0 before the end",
         over_steps(lambda *a: _lr(*a, no_shift=True))),
        ("the warm-up starts at warmup_lr, not at 0",
         over_steps(lambda *a: _lr(*a, warmup_from_zero=True))),
        ("the cosine part is 0.5 * base_lr * (1 + cos(...)): without the 0.5 it starts at twice the peak",
         over_steps(lambda *a: _lr(*a, no_half=True))),
    ]
    return compare("warmup_cosine_lr", over_steps(fn), over_steps(_lr), _LR_CASES, mistakes, atol=1e-9, rtol=1e-6)


# --------------------------------------------------------------------------
# Optimizer steps with drop_remainder
# --------------------------------------------------------------------------


_STEP_CASES = [
    ("1,800 images, batch 64, 3 epochs", (1800, 64, 3)),
    ("45,000 images, batch 128, 30 epochs", (45000, 128, 30)),
    ("1,000 images, batch 100, 2 epochs (exact)", (1000, 100, 2)),
    ("100 images, batch 32, 7 epochs", (100, 32, 7)),
]


def optimizer_steps(fn):
    """Checks ``fn(n_images, batch_size, epochs) -> int``, the steps with ``drop_remainder=True``."""
    failed = _callable_or_fail("optimizer_steps", fn)
    if failed:
        return failed

    def reference(n, batch, epochs):
        return (n // batch) * epochs

    mistakes = [
        ("with drop_remainder=True the partial batch is dropped: use n_images // batch_size, not a ceiling",
         lambda n, b, e: math.ceil(n / b) * e),
        ("the partial batch is dropped in every epoch, not once per run: (n_images // batch_size) * epochs",
         lambda n, b, e: (n * e) // b),
        ("the number of steps is a whole number: (n_images // batch_size) * epochs",
         lambda n, b, e: n / b * e),
        ("that is the steps of one epoch: multiply by the number of epochs",
         lambda n, b, e: n // b),
    ]
    return compare("optimizer_steps", fn, reference, _STEP_CASES, mistakes, atol=0, rtol=0)


# --------------------------------------------------------------------------
# Weight-decay exclusions
# --------------------------------------------------------------------------


_NAMES = ("kernel", "bias", "gamma", "beta", "gamma_1", "gamma_2", "depthwise_kernel", "embeddings",
          "moving_mean", "alpha")
_MASK_CASES = [
    ("focaledu's patterns ('gamma', 'beta', 'bias')", (_NAMES, ("gamma", "beta", "bias"))),
    ("patterns ('bias',)", (_NAMES, ("bias",))),
    ("patterns ('gamma_1', 'kernel$')", (_NAMES, ("gamma_1", "kernel$"))),
    ("no patterns", (_NAMES, ())),
]


def _mask(names, patterns, *, exact=False, invert=False):
    def excluded(name):
        if exact:
            return name in patterns
        return any(re.search(pattern, name) for pattern in patterns)

    return [float(excluded(name) != invert) for name in names]


def weight_decay_mask(fn):
    """Checks ``fn(names, patterns) -> list[bool]``: True where no pattern ``re.search``-matches."""
    failed = _callable_or_fail("weight_decay_mask", fn)
    if failed:
        return failed

    def as_floats(f):
        return lambda names, patterns: [float(bool(v)) for v in f(list(names), tuple(patterns))]

    mistakes = [
        ("True means *decayed*: you returned the excluded variables",
         lambda names, patterns: _mask(names, patterns)),
        ("Keras matches the patterns with re.search, anywhere in the name: 'gamma' also excludes the "
         "layer-scale 'gamma_1', and 'kernel$' matches 'depthwise_kernel'",
         lambda names, patterns: _mask(names, patterns, exact=True, invert=True)),
    ]
    return compare("weight_decay_mask", as_floats(fn), lambda n, p: _mask(n, p, invert=True), _MASK_CASES,
                   mistakes, atol=0, rtol=0)


# --------------------------------------------------------------------------
# Label smoothing
# --------------------------------------------------------------------------


_SMOOTH_CASES = [
    ("labels [0, 3, 9], 10 classes, smoothing 0.1", ((0, 3, 9), 10, 0.1)),
    ("labels [1, 0], 2 classes, smoothing 0.2", ((1, 0), 2, 0.2)),
    ("labels [2], 5 classes, smoothing 0", ((2,), 5, 0.0)),
]


def _smooth(labels, num_classes, smoothing, *, others_k_minus_1=False, no_subtract=False, no_true_share=False):
    onehot = np.eye(num_classes)[np.asarray(labels, dtype=int)]
    if others_k_minus_1:
        return onehot * (1 - smoothing) + (1 - onehot) * smoothing / (num_classes - 1)
    if no_subtract:
        return onehot + smoothing / num_classes
    if no_true_share:
        return onehot * (1 - smoothing) + (1 - onehot) * smoothing / num_classes
    return onehot * (1 - smoothing) + smoothing / num_classes


def smooth_labels(fn):
    """Checks ``fn(labels, num_classes, smoothing) -> (N, num_classes)``, the label-smoothed targets."""
    failed = _callable_or_fail("smooth_labels", fn)
    if failed:
        return failed
    mistakes = [
        ("Keras spreads smoothing / num_classes over *every* class, the true one included, not "
         "smoothing / (num_classes - 1) over the others only",
         lambda *a: _smooth(*a, others_k_minus_1=True)),
        ("the true class keeps 1 - smoothing of the mass, so each row still sums to 1",
         lambda *a: _smooth(*a, no_subtract=True)),
        ("the true class also gets its share smoothing / num_classes: (1 - smoothing) * one_hot + "
         "smoothing / num_classes (your rows sum to less than 1)",
         lambda *a: _smooth(*a, no_true_share=True)),
    ]
    return compare("smooth_labels", fn, _smooth, _SMOOTH_CASES, mistakes, atol=1e-7, rtol=1e-6)


# --------------------------------------------------------------------------
# The smoothed loss of one confident prediction
# --------------------------------------------------------------------------


_GAP_CASES = [
    ("gap 0, 10 classes, smoothing 0.1", (0.0, 10, 0.1)),
    ("gap 4.5, 10 classes, smoothing 0.1", (4.5, 10, 0.1)),
    ("gap 20, 10 classes, smoothing 0.1", (20.0, 10, 0.1)),
    ("gap 3, 10 classes, smoothing 0", (3.0, 10, 0.0)),
    ("gap 2, 2 classes, smoothing 0.2", (2.0, 2, 0.2)),
    ("gap -1, 5 classes, smoothing 0.3", (-1.0, 5, 0.3)),
]


def _gap_loss(gap, num_classes, smoothing, *, share=None, no_logsumexp=False):
    """Cross-entropy of logits (gap, 0, ..., 0) against the smoothed target of class 0."""
    gap = float(gap)
    right = 1 - smoothing + smoothing / num_classes if share is None else share
    if no_logsumexp:
        return -right * gap
    return float(np.logaddexp(gap, math.log(num_classes - 1))) - right * gap


def smoothed_loss(fn):
    """Checks ``fn(gap, num_classes, smoothing) -> float``, the smoothed loss of logits ``(gap, 0, ..., 0)``.

    The right class is the first.
    """
    failed = _callable_or_fail("smoothed_loss", fn)
    if failed:
        return failed
    mistakes = [
        ("that is the loss without label smoothing: the target of the right class is "
         "1 - smoothing + smoothing / num_classes, not 1",
         lambda g, k, s: _gap_loss(g, k, s, share=1.0)),
        ("Keras spreads smoothing / num_classes over every class, the right one included: the right "
         "class's target is 1 - smoothing + smoothing / num_classes, not 1 - smoothing",
         lambda g, k, s: _gap_loss(g, k, s, share=1 - s)),
        ("the log-softmax of the right class is gap - log(exp(gap) + num_classes - 1): the "
         "log-sum-exp term is missing (the targets sum to 1, so it enters the loss once)",
         lambda g, k, s: _gap_loss(g, k, s, no_logsumexp=True)),
        ("the loss depends on the gap: the smallest loss (the entropy of the smoothed target) is "
         "reached at one gap only",
         lambda g, k, s: _gap_loss(math.log((1 - s + s / k) * (k - 1) / (s / k)), k, s) if s > 0 else 0.0),
    ]
    return compare("smoothed_loss", fn, _gap_loss, _GAP_CASES, mistakes, atol=1e-6, rtol=1e-5)
