"""Checks for the exercises of Chapter 9: the MACs of focal modulation, self-attention and window attention."""

import numpy as np

from focaledu import receptive
from focaledu.checks._core import compare

# --- attention MACs -------------------------------------------------------------------


def _attention_macs(dim, tokens):
    return receptive.attention_cost(dim, tokens, 1)["macs"]


_ATTN_CASES = [
    ("C = 96, N = 3136 (56 x 56)", (96, 3136)),
    ("C = 64, N = 196 (14 x 14)", (64, 196)),
    ("C = 768, N = 50", (768, 50)),
]
_ATTN_MISTAKES = [
    ("you left out the projections: W_q, W_k, W_v and W_o cost 4 N C^2 on top of 2 N^2 C",
     lambda c, n: 2 * n * n * c),
    ("you counted only Q K^T: A V is another N^2 C (2 N^2 C in all)",
     lambda c, n: 4 * n * c * c + n * n * c),
    ("you counted three projections (q, k, v); the output projection W_o adds N C^2 (4 N C^2 in all)",
     lambda c, n: 3 * n * c * c + 2 * n * n * c),
    ("the score matrix is N x N and each entry is a dot product of C/h per head, C over all heads: "
     "2 N^2 C, not 2 N C^2", lambda c, n: 4 * n * c * c + 2 * n * c * c),
    ("you counted only the projections; the N^2 terms Q K^T and A V are what makes attention quadratic",
     lambda c, n: 4 * n * c * c),
    ("MACs grow with N^2 C, not N^2 C^2: each of the N^2 query-key pairs costs one C-long dot product",
     lambda c, n: 4 * n * c * c + 2 * n * n * c * c),
]


def attention_macs(fn):
    """Checks ``fn(dim, tokens) -> int``: the MACs of one multi-head self-attention layer (softmax left out)."""
    return compare("attention_macs", fn, _attention_macs, _ATTN_CASES, _ATTN_MISTAKES, atol=0.5, rtol=1e-9)


# --- focal modulation MACs -------------------------------------------------------------


def _modulation_variant(dim, tokens, level, window, factor, dw=True, square=True, gating=True,
                        h=True, proj=True, gates=None, qm=True):
    kernels = receptive.kernel_sizes(level, window, factor)
    gates = level + 1 if gates is None else gates
    per_token = dim * (2 * dim + gates)  # f
    if dw:
        per_token += dim * sum(k * k if square else k for k in kernels)
    if gating:
        per_token += dim * gates
    per_token += dim * dim * (int(h) + int(proj))
    if qm:
        per_token += dim
    return tokens * per_token


def _modulation_macs(dim, tokens, level, window, factor):
    return receptive.modulation_cost(dim, tokens, 1, level, window, factor)["macs"]


_MOD_CASES = [
    ("C = 96, N = 3136, L = 3, window 3 (FocalNet-T LRF stage 1)", (96, 3136, 3, 3, 2)),
    ("C = 64, N = 196, L = 2, window 3", (64, 196, 2, 3, 2)),
    ("C = 32, N = 49, L = 1, window 5", (32, 49, 1, 5, 2)),
    ("C = 16, N = 100, L = 4, window 3, focal_factor 4", (16, 100, 4, 3, 4)),
]
_MOD_MISTAKES = [
    ("you forgot the depthwise convolutions: level l costs N C k_l^2",
     lambda *a: _modulation_variant(*a, dw=False)),
    ("a depthwise k x k kernel costs k^2 MACs per token and channel, not k",
     lambda *a: _modulation_variant(*a, square=False)),
    ("f has 2C + L + 1 outputs (one gate per level, the global one included); you used L gates",
     lambda *a: _modulation_variant(*a, gates=a[2])),
    ("you forgot the gating products: each of the L + 1 levels is multiplied by its gate (N C (L + 1))",
     lambda *a: _modulation_variant(*a, gating=False)),
    ("you left out one of the two C x C linear maps: h (the 1x1 convolution on the aggregated context) "
     "and the output projection proj cost N C^2 each", lambda *a: _modulation_variant(*a, h=False)),
    ("you left out both h and proj, two C x C linear maps (2 N C^2)",
     lambda *a: _modulation_variant(*a, h=False, proj=False)),
    ("you forgot q * M, the element-wise modulation (N C)", lambda *a: _modulation_variant(*a, qm=False)),
    ("a depthwise convolution filters each channel on its own: N C k^2, not N C^2 k^2",
     lambda c, n, lv, w, f: _modulation_macs(c, n, lv, w, f)
     + n * c * (c - 1) * sum(k * k for k in receptive.kernel_sizes(lv, w, f))),
]


def modulation_macs(fn):
    """Checks ``fn(dim, tokens, focal_level, focal_window, focal_factor) -> int``, a ``FocalModulation``'s MACs."""
    return compare("modulation_macs", fn, _modulation_macs, _MOD_CASES, _MOD_MISTAKES, atol=0.5, rtol=1e-9)


# --- the crossover ---------------------------------------------------------------------


def _first_above(dim, level, window, factor, attention, focal, limit=1_000_000):
    """Smallest N >= 1 with attention(N) > focal(N), by bisection (attention - focal grows with N)."""
    if attention(1) > focal(1):
        return 1
    lo, hi = 1, 2
    while attention(hi) <= focal(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return -1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if attention(mid) > focal(mid) else (mid, hi)
    return hi


def _crossover(dim, level, window, factor):
    return _first_above(dim, level, window, factor,
                        lambda n: _attention_macs(dim, n), lambda n: _modulation_macs(dim, n, level, window, factor))


def _crossover_no_projections(dim, level, window, factor):
    return _first_above(dim, level, window, factor,
                        lambda n: 2 * n * n * dim, lambda n: _modulation_macs(dim, n, level, window, factor))


def _crossover_at_least(dim, level, window, factor):
    # attention >= focal instead of >
    n = _crossover(dim, level, window, factor)
    return n - 1 if n > 1 and _attention_macs(dim, n - 1) == _modulation_macs(dim, n - 1, level, window, factor) else n


def _crossover_real(dim, level, window, factor):
    # the real root of 2 N^2 C + 4 N C^2 = N * per_token, not rounded to a whole token count
    per_token = _modulation_macs(dim, 1, level, window, factor)
    return (per_token - 4 * dim * dim) / (2 * dim)


_CROSS_CASES = [
    ("C = 96, L = 2, window 3 (FocalNet-T SRF)", (96, 2, 3, 2)),
    ("C = 96, L = 3, window 3 (FocalNet-T LRF)", (96, 3, 3, 2)),
    ("C = 64, L = 4, window 5, focal_factor 4", (64, 4, 5, 4)),
]
_CROSS_MISTAKES = [
    ("you compared focal modulation with attention's 2 N^2 C alone: attention's projections (4 N C^2) "
     "count too, and they almost cancel focal modulation's linear maps", _crossover_no_projections),
    ("you returned the N where both are equal (>=); ask for strictly more (>)", _crossover_at_least),
    ("that is the real root of the two cost curves; the answer is a whole token count, the smallest N "
     "at which attention costs strictly more (floor of the root, plus 1)", _crossover_real),
    ("that is one token too early or a rounding of the root: return the smallest whole N where "
     "attention's MACs are strictly larger", lambda *a: _crossover(*a) - 1),
    ("one token too late: at N - 1 attention already costs more", lambda *a: _crossover(*a) + 1),
]


def crossover_tokens(fn):
    """Checks ``fn(dim, focal_level, focal_window, focal_factor) -> int``, the attention crossover.

    The smallest ``N`` at which attention costs more MACs than focal modulation.
    """
    return compare("crossover_tokens", fn, _crossover, _CROSS_CASES, _CROSS_MISTAKES, atol=1e-9, rtol=0)


# --- fitting a power law -------------------------------------------------------------------


def _slope_reference(n, cost):
    slope, _ = np.polyfit(np.log(n), np.log(cost), 1)
    return slope


def _slope_linear(n, cost):
    return np.polyfit(n, cost, 1)[0]


def _slope_semilog(n, cost):
    return np.polyfit(n, np.log(cost), 1)[0]


def _slope_swapped(n, cost):
    return np.polyfit(np.log(cost), np.log(n), 1)[0]


def _slope_endpoints_linear(n, cost):
    return (cost[-1] - cost[0]) / (n[-1] - n[0])


def _slope_endpoints_loglog(n, cost):
    return np.log(cost[-1] / cost[0]) / np.log(n[-1] / n[0])


def _slope_ratio_log(n, cost):
    return np.log(cost[-1] / cost[0]) / (n[-1] - n[0])


_N = np.array([256.0, 1024.0, 4096.0, 16384.0])
_rng = np.random.default_rng(9)
_SLOPE_CASES = [
    ("exactly quadratic: cost = 3e-9 N^2", (_N, 3e-9 * _N**2)),
    ("noisy linear timings with an offset",
     (_N, 2e-6 * _N * np.exp(_rng.normal(scale=0.05, size=4)) + 1e-4)),
    ("six sizes, cost = 0.5 N^1.5 with noise",
     (np.geomspace(64, 65536, 6), 0.5 * np.geomspace(64, 65536, 6) ** 1.5 * np.exp(_rng.normal(scale=0.1, size=6)))),
]
_SLOPE_MISTAKES = [
    ("you fitted a straight line to cost against N; the exponent is the slope of log(cost) against log(N)",
     _slope_linear),
    ("you took the log of the cost only: the exponent is the slope of log(cost) against log(N)", _slope_semilog),
    ("you fitted log(N) against log(cost): that gives 1/p; put log(N) on the x axis", _slope_swapped),
    ("that is the slope of the straight line through the end points, in linear units; "
     "take logs of both N and cost", _slope_endpoints_linear),
    ("take the log of N too: the exponent is log(c_last/c_first) / log(N_last/N_first) "
     "(or a least-squares fit in log-log space)", _slope_ratio_log),
    ("you used only the first and last points; fit all of them by least squares in log-log space "
     "(e.g. np.polyfit(np.log(n), np.log(cost), 1)), so one noisy timing does not decide the slope",
     _slope_endpoints_loglog),
]


def power_law_slope(fn):
    """Checks ``fn(n, cost) -> float``: the least-squares log-log exponent ``p`` of ``cost = a * n**p``."""
    return compare("power_law_slope", fn, _slope_reference, _SLOPE_CASES, _SLOPE_MISTAKES, atol=1e-6, rtol=1e-6)


# --- window attention -------------------------------------------------------------------


def _window_macs(dim, height, width, window_size):
    from focaledu.cost import window_attention_cost

    return window_attention_cost(dim, height, width, window_size)["macs"]


def _window_unshrunk(dim, height, width, window_size):
    n = height * width
    return 4 * n * dim * dim + 2 * n * window_size * window_size * dim


_WINDOW_CASES = [
    ("C = 96, 56 x 56 map, M = 7 (Swin-T stage 1)", (96, 56, 56, 7)),
    ("C = 384, 14 x 14 map, M = 7 (Swin-T stage 3)", (384, 14, 14, 7)),
    ("C = 32, 12 x 12 map, M = 4", (32, 12, 12, 4)),
    ("C = 64, 4 x 4 map, M = 7 (the map is smaller than one window)", (64, 4, 4, 7)),
]
_WINDOW_MISTAKES = [
    ("that is global attention (2 N^2 C): in window attention a token meets only the M^2 tokens of its "
     "window, 2 N M^2 C", lambda c, h, w, m: receptive.attention_cost(c, h, w)["macs"]),
    ("a window holds M^2 tokens, not M: Q K^T and A V cost 2 N M^2 C",
     lambda c, h, w, m: 4 * h * w * c * c + 2 * h * w * min(m, h) * c),
    ("you left out the projections: qkv and proj cost 4 N C^2, as in global attention",
     lambda c, h, w, m: _window_macs(c, h, w, m) - 4 * h * w * c * c),
    ("you counted one window's attention (2 M^4 C) instead of all N / M^2 windows (2 N M^2 C)",
     lambda c, h, w, m: 4 * h * w * c * c + 2 * min(m, h) ** 4 * c),
    ("a map smaller than the window is one window of all its tokens (Swin shrinks the window): a token "
     "cannot meet more than the N tokens there are", _window_unshrunk),
    ("you counted three projections (q, k, v); the output projection adds N C^2 (4 N C^2 in all)",
     lambda c, h, w, m: _window_macs(c, h, w, m) - h * w * c * c),
]


def window_attention_macs(fn):
    """Checks ``fn(dim, height, width, window_size) -> int``: the MACs of Swin's window attention."""
    return compare("window_attention_macs", fn, _window_macs, _WINDOW_CASES, _WINDOW_MISTAKES, atol=0.5, rtol=1e-9)


#: The prediction exercise's setting: width, window, map side.
PREDICTION_SETTING = {"dim": 96, "window_size": 7, "side": 63}


def window_prediction(same_up_to, ratio_at_63):
    """Checks a prediction made before measuring (C = 96, M = 7, square maps).

    Args:
        same_up_to: the largest token count at which window attention equals global attention.
        ratio_at_63: global over window attention MACs on a 63 x 63 map (within 10 %).
    """
    from focaledu.checks._core import CheckResult

    name = "window_prediction"
    c, m, side = PREDICTION_SETTING["dim"], PREDICTION_SETTING["window_size"], PREDICTION_SETTING["side"]
    n = side * side
    ratio = receptive.attention_cost(c, side, side)["macs"] / _window_macs(c, side, side, m)
    for label, value in (("same_up_to", same_up_to), ("ratio_at_63", ratio_at_63)):
        if value is None or value is ...:
            return CheckResult(name, False, f"make your prediction first: `{label}` is still {value!r}.")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return CheckResult(name, False, f"`{label}` must be a number; received {value!r}.")
    problems = []
    if same_up_to == m:
        problems.append(f"{m} is the side of the window; count tokens: a {m} x {m} window holds {m * m}")
    elif same_up_to != m * m:
        problems.append(f"same_up_to={same_up_to!r}: window attention is global attention while the whole "
                        f"map fits in one window, i.e. up to {m} x {m} = {m * m} tokens on a square map")
    if not 0.9 * ratio <= ratio_at_63 <= 1.1 * ratio:
        pairwise = n / (m * m)
        if abs(ratio_at_63 - pairwise) <= 0.1 * pairwise:
            problems.append(f"ratio_at_63={ratio_at_63:.3g} is N / M^2 = {pairwise:.0f}, the ratio of the pairwise "
                            "terms alone; both layers also pay 4 N C^2 for their projections, which dilutes it")
        else:
            problems.append(f"ratio_at_63={ratio_at_63:.3g}: divide (4 N C^2 + 2 N^2 C) by (4 N C^2 + 2 N M^2 C); "
                            "N C cancels, leaving (4 C + 2 N) / (4 C + 2 M^2)")
    if problems:
        return CheckResult(name, False, "; ".join(problems) + ".")
    return CheckResult(name, True, f"right: the same computation up to {m * m} tokens, and "
                                   f"(4C + 2N) / (4C + 2M^2) = {ratio:.1f} times the MACs at {side} x {side}.")


__all__ = ["attention_macs", "crossover_tokens", "modulation_macs", "power_law_slope", "window_attention_macs",
           "window_prediction"]
