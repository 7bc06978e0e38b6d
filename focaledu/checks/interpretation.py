"""Checks for the exercises of chapter 8: reading the maps of a trained FocalNet (references: ``focaledu.interpret``).

    >>> from focaledu import checks
    >>> checks.upsample_nearest(my_upsample_nearest)
"""

import numpy as np

from focaledu import interpret
from focaledu.checks._core import CheckResult, compare

__all__ = ["upsample_nearest", "modulator_norm", "dominant_level", "normalize_map", "dominant_level_prediction"]


def _rng(seed):
    return np.random.default_rng(seed)


def upsample_nearest(fn):
    """Checks ``fn(values, factor)``: nearest-neighbour upsampling of ``(h, w[, k])`` maps."""
    cases = [
        ("a 4x4 map, factor 8", (_rng(0).normal(size=(4, 4)), 8)),
        ("a 2x3 map, factor 2", (_rng(1).normal(size=(2, 3)), 2)),
        ("3x2 gates with 3 levels (h, w, L + 1), factor 4", (_rng(2).normal(size=(3, 2, 3)), 4)),
        ("a 5x5 map, factor 1", (_rng(3).normal(size=(5, 5)), 1)),
    ]
    mistakes = [
        (
            "you tiled the whole map (np.tile) instead of repeating each token (np.repeat)",
            lambda v, f: np.tile(v, (f, f) + (1,) * (np.ndim(v) - 2)),
        ),
        (
            "you repeated the last two axes: for gates (h, w, L + 1) the spatial axes are 0 and 1, "
            "the levels must not be repeated",
            lambda v, f: np.repeat(np.repeat(v, f, axis=-2), f, axis=-1),
        ),
        (
            "your rows and columns are swapped (a transposed map)",
            lambda v, f: np.swapaxes(interpret.upsample_nearest(v, f), 0, 1),
        ),
    ]
    return compare("upsample_nearest", fn, interpret.upsample_nearest, cases, mistakes)


def modulator_norm(fn):
    """Checks ``fn(modulator) -> ||M||`` over the last axis."""
    cases = [
        ("one image's modulator (8, 8, 16)", (_rng(10).normal(size=(8, 8, 16)),)),
        ("a batch (2, 4, 5, 6)", (_rng(11).normal(size=(2, 4, 5, 6)),)),
        ("a modulator with 3 channels (3, 3, 3)", (_rng(12).normal(size=(3, 3, 3)),)),
    ]
    mistakes = [
        (
            "you took the channel mean: signed channels cancel out; take the Euclidean norm over the "
            "channels (as the keras.io tutorial's display_grid does with tf.norm)",
            lambda m: np.mean(m, axis=-1),
        ),
        ("you returned the squared norm: take the square root", lambda m: np.sum(np.square(m), axis=-1)),
        ("you summed absolute values (L1 norm); use the Euclidean (L2) norm", lambda m: np.abs(m).sum(axis=-1)),
        ("you took the mean of squares (or its root): sum over channels, do not average",
         lambda m: np.sqrt(np.mean(np.square(m), axis=-1))),
        ("you reduced over the first axis; the channels are the last axis", lambda m: np.linalg.norm(m, axis=0)),
    ]
    return compare("modulator_norm", fn, interpret.modulator_norm, cases, mistakes)


def dominant_level(fn):
    """Checks ``fn(gates) -> argmax over the levels`` (0 = level 1)."""
    cases = [
        ("gates (8, 8, 3)", (_rng(20).normal(size=(8, 8, 3)),)),
        ("a batch of gates (2, 4, 4, 4)", (_rng(21).normal(size=(2, 4, 4, 4)),)),
        ("gates (3, 5, 3), all negative", (-np.abs(_rng(22).normal(size=(3, 5, 3))) - 0.1,)),
    ]
    mistakes = [
        ("you numbered the levels from 1: return indices from 0 (level 1) to L (global)",
         lambda g: np.argmax(g, axis=-1) + 1),
        ("you took the argmax of |gates|: the gates are raw and signed, a large negative gate "
         "inverts its level instead of weighing it most", lambda g: np.argmax(np.abs(g), axis=-1)),
        ("you took the argmin: the dominant level has the largest gate", lambda g: np.argmin(g, axis=-1)),
        ("you took the argmax over the wrong axis; the levels are the last axis",
         lambda g: np.argmax(g, axis=0)),
    ]
    return compare("dominant_level", fn, interpret.dominant_level, cases, mistakes, atol=0, rtol=0)


_NAN = -12345.0  # stands for NaN, which np.allclose never matches


def _nan_as_sentinel(fn):
    def wrapped(values):
        out = np.asarray(fn(values), dtype="float64")
        return np.where(np.isnan(out), _NAN, out)

    return wrapped


def normalize_map(fn):
    """Checks ``fn(values)``: min-max scaling to [0, 1], zeros for a constant map."""
    cases = [
        ("a positive map (8, 8)", (_rng(30).uniform(1.0, 5.0, size=(8, 8)),)),
        ("a signed map (4, 6)", (_rng(31).normal(size=(4, 6)),)),
        ("a map (32, 32) with an offset", (_rng(32).normal(size=(32, 32)) + 10.0,)),
        ("a constant map (3, 3)", (np.full((3, 3), 2.5),)),
    ]

    def span(v):
        return v.max() - v.min()

    mistakes = [
        ("you divided by the maximum only: subtract the minimum, then divide by max - min",
         lambda v: v / v.max()),
        ("you divided by the range but did not subtract the minimum", lambda v: v / span(v) if span(v) else v * 0),
        ("you subtracted the minimum but divided by the maximum instead of max - min",
         lambda v: (v - v.min()) / v.max()),
        ("a constant map has max - min = 0 and your division gave NaN: return zeros for it",
         lambda v: np.full(np.shape(v), _NAN) if span(v) == 0 else interpret.normalize_map(v)),
    ]
    if not callable(fn):
        return compare("normalize_map", fn, interpret.normalize_map, cases)
    return compare("normalize_map", _nan_as_sentinel(fn), interpret.normalize_map, cases, mistakes)


def dominant_level_prediction(prediction, gates):
    """Checks ``prediction`` (1 to ``L + 1``): the level whose gate is largest at the most positions."""
    name = "dominant_level_prediction"
    gates = np.asarray(gates)
    levels = gates.shape[-1]
    if isinstance(prediction, bool) or not isinstance(prediction, (int, np.integer)) \
            or not 1 <= prediction <= levels:
        return CheckResult(name, False, f"predict a level from 1 to {levels} ({levels} is the global level); "
                                        f"got {prediction!r}.")
    share = np.bincount(interpret.dominant_level(gates).ravel(), minlength=levels) / gates[..., 0].size
    winner = int(np.argmax(share)) + 1
    measured = ", ".join(f"level {i + 1}{' (global)' if i == levels - 1 else ''} {s:.0%}"
                         for i, s in enumerate(share))
    if prediction == winner:
        return CheckResult(name, True, f"level {winner} has the largest gate at most positions ({measured}).")
    return CheckResult(name, False, f"you predicted level {prediction}, but level {winner} has the largest gate "
                                    f"at most positions ({measured}).")
