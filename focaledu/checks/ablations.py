"""Checks for the exercises of chapter 10: ablations.

    >>> from focaledu import checks
    >>> checks.ablated_aggregation(my_ablated_aggregation)
"""

import math

import numpy as np

from focaledu.ablations import z_score
from focaledu.checks._core import CheckResult, compare

__all__ = ["ablated_aggregation", "mixer_params", "matched_hidden_width", "accuracy_z_score",
           "significance_prediction"]


def _callable_or_fail(name, fn):
    if not callable(fn):
        return CheckResult(name, False, f"expected a function, got {type(fn).__name__}.")
    return None


# --------------------------------------------------------------------------
# The aggregation with its parts switched off
# --------------------------------------------------------------------------


def _aggregate(contexts, gates, gating, global_context, *, ignore_gating=False, keep_global=False,
               drop_last_local=False, normalize=False):
    contexts, gates = np.asarray(contexts, "float64"), np.asarray(gates, "float64")
    levels = contexts.shape[0]  # L + 1, the global level last
    use = list(range(levels)) if (global_context or keep_global) else list(range(levels - 1))
    if not global_context and drop_last_local:
        use = list(range(levels - 2)) + [levels - 1]
    weights = gates if (gating or ignore_gating) else np.ones_like(gates)
    total = sum(contexts[level] * weights[..., level : level + 1] for level in use)
    return total / len(use) if normalize else total


def _aggregation_cases():
    rng = np.random.default_rng(10)
    contexts = rng.normal(size=(3, 4, 5, 6))  # L = 2 levels + global, 4 x 5 tokens, 6 channels
    gates = rng.normal(size=(4, 5, 3))
    wide = rng.normal(size=(4, 3, 3, 2)), rng.normal(size=(3, 3, 4))  # L = 3
    cases = []
    for gating in (True, False):
        for global_context in (True, False):
            cases.append((f"L = 2, gating={gating}, global_context={global_context}",
                          (contexts, gates, gating, global_context)))
    cases.append(("L = 3, gating=False, global_context=False", (*wide, False, False)))
    return cases


def ablated_aggregation(fn):
    """Checks ``fn(contexts, gates, gating, global_context) -> (H, W, C)``, an ablated aggregation."""
    failed = _callable_or_fail("ablated_aggregation", fn)
    if failed:
        return failed
    mistakes = [
        ("with gating=False every level is weighted by 1: the gates are not used at all",
         lambda *a: _aggregate(*a, ignore_gating=True)),
        ("with global_context=False the global level (the last one) is left out of the sum",
         lambda *a: _aggregate(*a, keep_global=True)),
        ("the global level is the *last* of contexts: leave out contexts[-1], not the last local level",
         lambda *a: _aggregate(*a, drop_last_local=True)),
        ("the aggregation is a sum, not a mean: dividing by the number of levels is normalize_modulator's "
         "job (off by default)",
         lambda *a: _aggregate(*a, normalize=True)),
    ]
    return compare("ablated_aggregation", fn, _aggregate, _aggregation_cases(), mistakes)


# --------------------------------------------------------------------------
# Parameters of the three token mixers
# --------------------------------------------------------------------------


def _mixer_params(mixer, dim, focal_level, height, width, num_heads, *, focal_no_gates=False,
                  no_table=False, table_hw=False, dw_no_expansion=False, no_biases=False):
    kernels = [2 * level + 3 for level in range(focal_level)]
    b = 0 if no_biases else 1
    if mixer == "focal":
        f_out = 2 * dim + (0 if focal_no_gates else focal_level + 1)
        return dim * f_out + b * f_out + dim * sum(k * k for k in kernels) + 2 * (dim * dim + b * dim)
    if mixer == "attention":
        rows = height * width if table_hw else (2 * height - 1) * (2 * width - 1)
        return 4 * (dim * dim + b * dim) + (0 if no_table else rows * num_heads)
    if mixer == "dwconv":
        hidden = dim if dw_no_expansion else 2 * dim
        return dim * hidden + b * hidden + hidden * sum(k * k for k in kernels) + hidden * dim + b * dim
    raise ValueError(f"`mixer` must be 'focal', 'attention' or 'dwconv'; received {mixer!r}.")


_MIXER_CASES = [
    ("focal, C = 64, L = 2", ("focal", 64, 2, 8, 8, 2)),
    ("focal, C = 96, L = 3", ("focal", 96, 3, 56, 56, 3)),
    ("attention, C = 64, 8 x 8 tokens, 2 heads", ("attention", 64, 2, 8, 8, 2)),
    ("attention, C = 128, 4 x 6 tokens, 4 heads", ("attention", 128, 2, 4, 6, 4)),
    ("dwconv, C = 64, L = 2", ("dwconv", 64, 2, 8, 8, 2)),
    ("dwconv, C = 32, L = 4", ("dwconv", 32, 4, 4, 4, 1)),
]


def mixer_params(fn):
    """Checks ``fn(mixer, dim, focal_level, height, width, num_heads) -> int``, a mixer's parameters.

    ``mixer`` is ``"focal"``, ``"attention"`` or ``"dwconv"``.
    """
    failed = _callable_or_fail("mixer_params", fn)
    if failed:
        return failed
    mistakes = [
        ("f also produces the L + 1 gates: it maps dim channels to 2 * dim + L + 1",
         lambda *a: _mixer_params(*a, focal_no_gates=True)),
        ("the relative position bias table has (2H - 1)(2W - 1) rows, one per offset, times num_heads",
         lambda *a: _mixer_params(*a, table_hw=True)),
        ("attention's relative position bias is a learned table of (2H - 1)(2W - 1) * num_heads parameters",
         lambda *a: _mixer_params(*a, no_table=True)),
        ("the depthwise-convolution mixer first expands to 2 * dim channels",
         lambda *a: _mixer_params(*a, dw_no_expansion=True)),
        ("every dense layer has a bias (the depthwise convolutions have none)",
         lambda *a: _mixer_params(*a, no_biases=True)),
    ]
    return compare("mixer_params", fn, _mixer_params, _MIXER_CASES, mistakes, atol=0, rtol=0)


# --------------------------------------------------------------------------
# An equal parameter budget
# --------------------------------------------------------------------------


def _hidden(dim, budget, mixer, *, no_norms=False, no_biases=False, floor=False):
    norms = 0 if no_norms else 4 * dim
    per_hidden = 2 * dim if no_biases else 2 * dim + 1
    fixed = mixer + norms + (0 if no_biases else dim)
    exact = (budget - fixed) / per_hidden
    return math.floor(exact) if floor else int(round(exact))


_HIDDEN_CASES = [
    ("dim 64, budget 52,291, mixer 18,400", (64, 52291, 18400)),
    ("dim 128, budget 203,000, mixer 70,000", (128, 203000, 70000)),
    ("dim 256, budget 790,000, mixer 266,000", (256, 790000, 266000)),
    ("dim 32, budget 13,333, mixer 4,500", (32, 13333, 4500)),
]


def matched_hidden_width(fn):
    """Checks ``fn(dim, budget, mixer_params) -> int``, the MLP width closest to ``budget`` parameters."""
    failed = _callable_or_fail("matched_hidden_width", fn)
    if failed:
        return failed
    mistakes = [
        ("the two LayerNorms have a scale and an offset each: 4 * dim parameters",
         lambda *a: _hidden(*a, no_norms=True)),
        ("the MLP's biases count too: n + dim of them, so each hidden unit costs 2 * dim + 1",
         lambda *a: _hidden(*a, no_biases=True)),
        ("round to the nearest width; the floor can leave the block a whole hidden unit short",
         lambda *a: _hidden(*a, floor=True)),
    ]
    return compare("matched_hidden_width", fn, _hidden, _HIDDEN_CASES, mistakes, atol=0, rtol=0)


# --------------------------------------------------------------------------
# Is a difference in test accuracy noise?
# --------------------------------------------------------------------------


def _z(acc_a, acc_b, n, *, no_sqrt=False, add_errors=False, one_variance=False, pooled=False):
    var_a, var_b = acc_a * (1 - acc_a) / n, acc_b * (1 - acc_b) / n
    if pooled:
        p = (acc_a + acc_b) / 2
        return (acc_a - acc_b) / math.sqrt(2 * p * (1 - p) / n)
    if no_sqrt:
        return (acc_a - acc_b) / (var_a + var_b)
    if add_errors:
        return (acc_a - acc_b) / (math.sqrt(var_a) + math.sqrt(var_b))
    if one_variance:
        return (acc_a - acc_b) / math.sqrt(var_a)
    return z_score(acc_a, acc_b, n)  # the reference: the library's own, which chapter 10 uses


_Z_CASES = [
    ("0.62 vs 0.60 on 10,000 images", (0.62, 0.60, 10000)),
    ("0.55 vs 0.58 on 1,000 images", (0.55, 0.58, 1000)),
    ("0.90 vs 0.70 on 500 images", (0.90, 0.70, 500)),
    ("0.351 vs 0.349 on 10,000 images", (0.351, 0.349, 10000)),
]


def accuracy_z_score(fn):
    """Checks ``fn(acc_a, acc_b, n) -> float``, the z-score of the difference of two accuracies on ``n`` images each."""
    failed = _callable_or_fail("accuracy_z_score", fn)
    if failed:
        return failed
    mistakes = [
        ("divide by the standard error, the square root of the summed variances",
         lambda *a: _z(*a, no_sqrt=True)),
        ("independent errors add in quadrature: sqrt(var_a + var_b), not sqrt(var_a) + sqrt(var_b)",
         lambda *a: _z(*a, add_errors=True)),
        ("both accuracies are noisy: add the variance of b to that of a",
         lambda *a: _z(*a, one_variance=True)),
        ("that is the pooled z-test; here give each accuracy its own variance a (1 - a) / n",
         lambda *a: _z(*a, pooled=True)),
    ]
    return compare("accuracy_z_score", fn, _z, _Z_CASES, mistakes, atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------
# A prediction, then the measurement: which differences are past |z| = 2?
# --------------------------------------------------------------------------


def significance_prediction(prediction, accuracies, n, baseline="baseline", threshold=2.0):
    """Checks ``prediction``, ``{variant: bool}``: does each variant differ significantly from the baseline?

    Significant means at least ``threshold`` standard errors.

    ``accuracies`` maps every variant of ``prediction`` and ``baseline`` to a test accuracy on ``n`` images.
    """
    name = "significance_prediction"
    if not isinstance(prediction, dict) or not prediction:
        return CheckResult(name, False, "expected a dict {variant: True or False}, e.g. "
                                        "{'uniform_gates': True, 'levels_3': False}.")
    missing = [v for v in [baseline, *prediction] if v not in accuracies]
    if missing:
        return CheckResult(name, False, f"no accuracy for {', '.join(map(repr, missing))}: "
                                        f"known variants are {', '.join(map(repr, accuracies))}.")
    undecided = [v for v, p in prediction.items() if not isinstance(p, (bool, np.bool_))]
    if undecided:
        return CheckResult(name, False, f"predict True or False for {', '.join(map(repr, undecided))} "
                                        "before computing the z-scores.")
    base = accuracies[baseline]
    lines, wrong = [], []
    for variant, predicted in prediction.items():
        z = _z(accuracies[variant], base, n)
        actual = abs(z) >= threshold
        lines.append(f"{variant}: {100 * (accuracies[variant] - base):+.2f} points, z = {z:+.2f}")
        if bool(predicted) != actual:
            wrong.append(f"{variant} is {'past' if actual else 'inside'} |z| = {threshold:g}")
    measured = "; ".join(lines)
    if wrong:
        return CheckResult(name, False, f"{'; '.join(wrong)}. Measured on {n:,} images: {measured}. "
                                        f"|z| = {threshold:g} needs a difference of about {threshold:g} "
                                        "times the standard error sqrt(a(1 - a)/n + b(1 - b)/n).")
    return CheckResult(name, True, f"all {len(prediction)} predictions hold. Measured on {n:,} images: "
                                   f"{measured}. This is test-set noise only: a second seed adds more.")
