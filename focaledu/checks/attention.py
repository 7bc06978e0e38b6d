"""Checks for the exercises of Chapters 1 (self-attention) and 2 (interaction vs aggregation).

``REFERENCES`` and ``MISTAKES`` hold each check's reference and the ``(message, wrong_function)`` pairs.
"""

import numpy as np

from focaledu import attention, cost
from focaledu.checks._core import CheckResult, _numpy, compare, unanswered

# --- helpers shared by the wrong variants -------------------------------------------


def _softmax(x, axis=-1):
    x = np.asarray(x, dtype="float64")
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sdpa(q, k, v, scale=None, axis=-1, softmax=True):
    q, k, v = (np.asarray(t, dtype="float64") for t in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    return (_softmax(scores, axis) if softmax else scores) @ v


def _with_errors(fn):
    """Runs ``fn`` with NumPy's overflow and invalid-value warnings silenced (wrong variants overflow)."""

    def wrapped(*args):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return fn(*args)

    return wrapped


# --- Chapter 1 ------------------------------------------------------------------------


def _softmax_reference(x):
    return _softmax(x)


def _naive_softmax(x):
    e = np.exp(np.asarray(x, dtype="float32"))  # float32, like most learners' arrays
    return e / e.sum(axis=-1, keepdims=True)


def _global_max_softmax(x):
    x = np.asarray(x, dtype="float32")
    e = np.exp(x - x.max())
    return e / e.sum(axis=-1, keepdims=True)


_rng = np.random.default_rng(2022)
_SOFTMAX_CASES = [
    ("a (2, 3, 5) batch of score matrices", (_rng.normal(size=(2, 3, 5)).astype("float32"),)),
    ("a 3x4 matrix", (_rng.normal(size=(3, 4)).astype("float32"),)),
    ("large logits [[1000, 999, 998], [3, 2, 1]]", (np.array([[1000, 999, 998], [3, 2, 1]], "float32"),)),
    ("rows on different scales [[100, 99, 98], [-100, -101, -103]]",
     (np.array([[100, 99, 98], [-100, -101, -103]], "float32"),)),
]
_SOFTMAX_MISTAKES = [
    ("you normalised over the first axis: the weights along the last axis (each row) "
     "must sum to 1, e.g. `axis=-1`", lambda x: _softmax(x, axis=0)),
    ("you normalised over the columns (the second-to-last axis): each row, the last axis, "
     "must sum to 1, e.g. `axis=-1`", lambda x: _softmax(x, axis=-2)),
    ("exp overflowed to inf (nan in the output): subtract each row's maximum before exp; "
     "softmax does not change when a constant is subtracted from a row", _naive_softmax),
    ("you subtracted the maximum of the whole array, so a row far below it underflows to "
     "0/0: subtract each row's own maximum (`max(axis=-1, keepdims=True)`)", _global_max_softmax),
    ("the rows do not sum to 1: divide by the sum of the exponentials along the last axis",
     lambda x: np.exp(x - np.max(x, axis=-1, keepdims=True))),
    ("you divided by the sum over the whole array; divide each row by its own sum "
     "(`sum(axis=-1, keepdims=True)`)",
     lambda x: np.exp(x - np.max(x, axis=-1, keepdims=True))
     / np.exp(x - np.max(x, axis=-1, keepdims=True)).sum()),
]


def _sdpa_reference(q, k, v):
    return attention.scaled_dot_product_attention(q, k, v)


def _qkv(shape_q, shape_k, d_v, seed):
    rng = np.random.default_rng(seed)
    # Logits of a few units, so the softmax is neither uniform nor one-hot and
    # every variant below gives a visibly different answer.
    q = rng.normal(scale=1.5, size=shape_q).astype("float32")
    k = rng.normal(scale=1.5, size=shape_k).astype("float32")
    v = rng.normal(size=shape_k[:-1] + (d_v,)).astype("float32")
    return q, k, v


_SDPA_CASES = [
    ("4 tokens, d_k = d_v = 8", _qkv((4, 8), (4, 8), 8, seed=0)),
    ("3 queries, 5 keys, d_k = 4, d_v = 6", _qkv((3, 4), (5, 4), 6, seed=1)),
    ("a (2, 2, 5, 8) batch of heads", _qkv((2, 2, 5, 8), (2, 2, 5, 8), 8, seed=2)),
]
_SDPA_MISTAKES = [
    ("you forgot to divide the scores by sqrt(d_k)", lambda q, k, v: _sdpa(q, k, v, scale=1.0)),
    ("you divided by d_k instead of sqrt(d_k)", lambda q, k, v: _sdpa(q, k, v, scale=1 / q.shape[-1])),
    ("you multiplied by sqrt(d_k) instead of dividing", lambda q, k, v: _sdpa(q, k, v, scale=np.sqrt(q.shape[-1]))),
    ("you scaled by sqrt(d_v), the width of the values; the scale comes from the width of "
     "the queries and keys, d_k", lambda q, k, v: _sdpa(q, k, v, scale=1 / np.sqrt(v.shape[-1]))),
    ("your softmax runs over the queries (axis -2); each query's weights over the keys "
     "must sum to 1: softmax over the last axis", lambda q, k, v: _sdpa(q, k, v, axis=-2)),
    ("you computed K Q^T instead of Q K^T (the score matrix is transposed)",
     lambda q, k, v: _softmax(k @ np.swapaxes(q, -1, -2) / np.sqrt(q.shape[-1])) @ v),
    ("you left out the softmax: the raw scores are not weights", lambda q, k, v: _sdpa(q, k, v, softmax=False)),
    ("you returned the attention weights; multiply them by V",
     lambda q, k, v: _softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))),
]


def _split_heads_reference(x, num_heads):
    return attention.split_heads(x, num_heads)


_SPLIT_CASES = [
    ("x of shape (1, 3, 4), 2 heads", (np.arange(12, dtype="float32").reshape(1, 3, 4), 2)),
    ("x of shape (2, 5, 6), 3 heads", (np.arange(60, dtype="float32").reshape(2, 5, 6), 3)),
]


def _heads_mistake(order):
    def wrong(x, num_heads):
        b, n, c = x.shape
        return order(np.asarray(x), b, n, c, num_heads)

    return wrong


_SPLIT_MISTAKES = [
    ("you reshaped straight to (B, heads, N, d): that cuts the token axis into heads and "
     "mixes tokens; reshape to (B, N, heads, d), then transpose to (B, heads, N, d)",
     _heads_mistake(lambda x, b, n, c, h: x.reshape(b, h, n, c // h))),
    ("you returned (B, N, heads, d): transpose it to (B, heads, N, d), e.g. with axes (0, 2, 1, 3)",
     _heads_mistake(lambda x, b, n, c, h: x.reshape(b, n, h, c // h))),
    ("your heads take every heads-th channel (interleaved); head h must own the contiguous "
     "channels [h*d, (h+1)*d): reshape to (B, N, heads, d), not (B, N, d, heads)",
     _heads_mistake(lambda x, b, n, c, h: x.reshape(b, n, c // h, h).transpose(0, 3, 1, 2))),
]


def _score_bytes_reference(batch, heads, tokens):
    return cost.score_matrix_bytes(batch, heads, tokens)


_BYTES_CASES = [
    ("batch 1, 1 head, 10 tokens", (1, 1, 10)),
    ("batch 2, 4 heads, 196 tokens", (2, 4, 196)),
    ("batch 8, 12 heads, 3136 tokens", (8, 12, 3136)),
]
_BYTES_MISTAKES = [
    ("every head has its own N x N matrix: multiply by the number of heads", lambda b, h, n: 4 * b * n * n),
    ("every image in the batch has its own matrices: multiply by the batch size", lambda b, h, n: 4 * h * n * n),
    ("a score matrix has N x N entries (one per query-key pair), not N", lambda b, h, n: 4 * b * h * n),
    ("that is the number of values; a float32 value takes 4 bytes", lambda b, h, n: b * h * n * n),
    ("float32 takes 4 bytes per value, not 8", lambda b, h, n: 8 * b * h * n * n),
]

# --- Chapter 2 ------------------------------------------------------------------------


def _toy_case(n, c, d_k, d_v, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c)).astype("float32")
    return x, *(rng.normal(size=(c, d)).astype("float32") for d in (d_k, d_k, d_v))


#: The hand-computed example of Chapter 2: 5 tokens with 2 channels, identity projections.
HAND_X = np.array([[1, 0], [0, 1], [1, 1], [2, 0], [1, 2]], dtype="float32")
_EYE2 = np.eye(2, dtype="float32")

_ATTN_1D_CASES = [
    ("the chapter's 5x2 example with identity projections", (HAND_X, _EYE2, _EYE2, _EYE2)),
    ("6 tokens, C = 4, d_k = 3, d_v = 2", _toy_case(6, 4, 3, 2, seed=3)),
]


def _attn_1d_reference(x, wq, wk, wv):
    return attention.self_attention_1d(x, wq, wk, wv)


def _attn_1d(scale=None, axis=-1, values="v", softmax=True, swap_qk=False):
    def wrong(x, wq, wk, wv):
        q, k, v = x @ wq, x @ wk, x @ wv
        if swap_qk:
            q, k = k, q
        s = 1 / np.sqrt(wq.shape[-1]) if scale is None else scale
        scores = q @ k.T * s
        weights = _softmax(scores, axis) if softmax else scores
        return weights @ {"v": v, "x": x}[values]

    return wrong


_ATTN_1D_MISTAKES = [
    ("you forgot to divide the scores by sqrt(d_k)", _attn_1d(scale=1.0)),
    ("your softmax runs down the columns; each query's (row's) weights must sum to 1", _attn_1d(axis=0)),
    ("you aggregated the tokens x instead of the values v = x W_v", _attn_1d(values="x")),
    ("you left out the softmax: the raw scores are not weights", _attn_1d(softmax=False)),
    ("you computed K Q^T instead of Q K^T (the score matrix is transposed)", _attn_1d(swap_qk=True)),
]


def _focal_1d_reference(x, wq, wz, kernel):
    return attention.focal_modulation_1d(x, wq, wz, kernel)


def _focal_1d(combine="mul", glob="local", flip=False, circular=False, query="q", aggregate="z", out="y"):
    def wrong(x, wq, wz, kernel):
        x, wq, wz = (np.asarray(t, dtype="float64") for t in (x, wq, wz))
        kernel = np.asarray(kernel, dtype="float64")
        kernel = kernel[:, None] if kernel.ndim == 1 else kernel
        if flip:
            kernel = kernel[::-1]
        q, z = x @ wq, {"z": x @ wz, "x": x}[aggregate]
        n, half = len(z), len(kernel) // 2
        if circular:
            local = sum(kernel[t] * np.roll(z, half - t, axis=0) for t in range(len(kernel)))
        else:
            padded = np.pad(z, ((half, half), (0, 0)))
            local = sum(kernel[t] * padded[t : t + n] for t in range(len(kernel)))
        context = {"local": local.mean(0), "z": z.mean(0), "none": 0.0}[glob]
        m = local + context
        q = {"q": q, "x": x}[query]
        return {"y": q * m if combine == "mul" else q + m, "m": m}[out]

    return wrong


_FOCAL_1D_CASES = [
    ("the chapter's 5x2 example, identity projections, kernel [1/4, 1/2, 1/4]",
     (HAND_X, _EYE2, _EYE2, np.array([0.25, 0.5, 0.25], "float32"))),
    ("7 tokens, C = D = 3, asymmetric kernel [0.1, 0.3, 0.6]",
     _toy_case(7, 3, 3, 3, seed=4)[:3] + (np.array([0.1, 0.3, 0.6], "float32"),)),
    ("6 tokens, C = 2, D = 3, a depthwise (5, 3) kernel",
     _toy_case(6, 2, 3, 3, seed=5)[:3] + (np.random.default_rng(6).normal(size=(5, 3)).astype("float32"),)),
]
_FOCAL_1D_MISTAKES = [
    ("you added the query and the modulator; focal modulation multiplies them element-wise",
     _focal_1d(combine="add")),
    ("you returned the modulator m; the output is q * m", _focal_1d(out="m")),
    ("the global context is missing: add the average of the local context over all tokens",
     _focal_1d(glob="none")),
    ("your global context averages z; it must average the aggregated local context "
     "(the last level), as in the paper", _focal_1d(glob="z")),
    ("your kernel is flipped: apply it as a cross-correlation, m_i = sum_t kernel[t] z[i + t - K//2], "
     "like Keras' DepthwiseConv1D", _focal_1d(flip=True)),
    ("your context wraps around the ends (circular padding, e.g. np.roll); pad with zeros",
     _focal_1d(circular=True)),
    ("you modulated x instead of the query q = x W_q", _focal_1d(query="x")),
    ("you aggregated x instead of the context z = x W_z", _focal_1d(aggregate="x")),
]


def _matrix_reference(n, kernel):
    return attention.focal_aggregation_matrix(n, kernel)


def _band(n, kernel):
    kernel = np.asarray(kernel, dtype="float64")
    band = np.zeros((n, n))
    for i in range(n):
        for t, w in enumerate(kernel):
            j = i + t - len(kernel) // 2
            if 0 <= j < n:
                band[i, j] = w
    return band


_MATRIX_CASES = [
    ("n = 5, kernel [1/4, 1/2, 1/4]", (5, np.array([0.25, 0.5, 0.25], "float32"))),
    ("n = 6, kernel [0.1, 0.3, 0.6]", (6, np.array([0.1, 0.3, 0.6], "float32"))),
    ("n = 7, kernel of size 5", (7, np.array([0.05, 0.1, 0.2, 0.25, 0.4], "float32"))),
]
_MATRIX_MISTAKES = [
    ("the global term is missing: add the column means of the band, (1/n) 1 1^T B",
     lambda n, k: _band(n, k)),
    ("your global term averages z itself ((1/n) 1 1^T); it averages the local context: (1/n) 1 1^T B",
     lambda n, k: _band(n, k) + 1.0 / n),
    ("your band is transposed: row i holds the weights of output i, so A[i, i + t - K//2] = kernel[t]",
     lambda n, k: _band(n, k).T + _band(n, k).T.mean(0, keepdims=True)),
    ("your global term uses row means; the global context is the same for every i, "
     "so every row gets the column means of the band",
     lambda n, k: _band(n, k) + _band(n, k).mean(1, keepdims=True)),
]

REFERENCES = {
    "softmax": _softmax_reference,
    "scaled_dot_product_attention": _sdpa_reference,
    "split_heads": _split_heads_reference,
    "score_matrix_bytes": _score_bytes_reference,
    "self_attention_1d": _attn_1d_reference,
    "focal_modulation_1d": _focal_1d_reference,
    "focal_aggregation_matrix": _matrix_reference,
}
CASES = {
    "softmax": _SOFTMAX_CASES,
    "scaled_dot_product_attention": _SDPA_CASES,
    "split_heads": _SPLIT_CASES,
    "score_matrix_bytes": _BYTES_CASES,
    "self_attention_1d": _ATTN_1D_CASES,
    "focal_modulation_1d": _FOCAL_1D_CASES,
    "focal_aggregation_matrix": _MATRIX_CASES,
}
MISTAKES = {
    "softmax": _SOFTMAX_MISTAKES,
    "scaled_dot_product_attention": _SDPA_MISTAKES,
    "split_heads": _SPLIT_MISTAKES,
    "score_matrix_bytes": _BYTES_MISTAKES,
    "self_attention_1d": _ATTN_1D_MISTAKES,
    "focal_modulation_1d": _FOCAL_1D_MISTAKES,
    "focal_aggregation_matrix": _MATRIX_MISTAKES,
}

# nan and inf cannot be compared with allclose; these stand-ins let a wrong
# variant that overflows in the same places as the learner's be recognised.
_NAN, _POSINF, _NEGINF = -1234.5, 9876.5, -9876.5
_NO_MATCH = np.zeros((0, 0, 0, 0, 0, 0))  # a shape no answer has


def _run(name, learner):
    nonfinite = []

    def label_of(args):
        return next(label for label, case in CASES[name] if all(a is b for a, b in zip(case, args)))

    def finite(fn, learner=False):
        def wrapped(*args):
            try:
                out = _numpy(_with_errors(fn)(*args))
            except Exception:
                if learner:
                    raise  # compare reports the learner's exception
                return _NO_MATCH  # a wrong variant that does not apply to this input
            if isinstance(out, list):
                return out
            if learner and not np.isfinite(out).all():
                nonfinite.append(label_of(args))
            return np.nan_to_num(out, nan=_NAN, posinf=_POSINF, neginf=_NEGINF)

        return wrapped

    mistakes = [(message, finite(wrong)) for message, wrong in MISTAKES[name]]
    result = compare(name, finite(learner, learner=True), REFERENCES[name], CASES[name], mistakes)
    recognised = any(result.message.startswith(message) for message, _ in MISTAKES[name])
    if not result and nonfinite and not recognised:
        return CheckResult(
            name, False,
            f"your output contains nan or inf (input: {nonfinite[0]}): look for an exp that "
            "overflows or a division by zero.",
        )
    return result


def softmax(fn):
    """Checks ``fn(x)``: a numerically stable softmax over the last axis."""
    return _run("softmax", fn)


def scaled_dot_product_attention(fn):
    """Checks ``fn(q, k, v)``: ``softmax(q k^T / sqrt(d_k)) v`` over the last two axes."""
    return _run("scaled_dot_product_attention", fn)


def split_heads(fn):
    """Checks ``fn(x, num_heads)``: ``(B, N, C)`` -> ``(B, num_heads, N, C // num_heads)``."""
    return _run("split_heads", fn)


def score_matrix_bytes(fn):
    """Checks ``fn(batch, heads, tokens)``: bytes of the float32 attention weights."""
    return _run("score_matrix_bytes", fn)


def self_attention_1d(fn):
    """Checks ``fn(x, wq, wk, wv)``: single-head self-attention on one ``(N, C)`` sequence."""
    return _run("self_attention_1d", fn)


def focal_modulation_1d(fn):
    """Checks ``fn(x, wq, wz, kernel)``: the toy focal modulation of Chapter 2."""
    return _run("focal_modulation_1d", fn)


def focal_aggregation_matrix(fn):
    """Checks ``fn(n, kernel)``: the matrix ``A`` with ``modulator = A @ z``."""
    return _run("focal_aggregation_matrix", fn)


# --- Predictions: the learner writes down numbers or token indices, then measures -----


def _prediction(name, parts):
    """``parts``: ``[(label, passed, message_if_wrong), ...]`` -> one ``CheckResult``."""
    wrong = [f"{label}: {message}" for label, passed, message in parts if not passed]
    if wrong:
        return CheckResult(name, False, " | ".join(wrong))
    return CheckResult(name, True, "all predictions agree with the measurement.")


def _factor_message(predicted, true, messages, default):
    for value, message in messages:
        if np.isclose(predicted, value):
            return message
    return default.format(predicted=predicted, true=true)


def attention_growth(output_factor, weights_factor, params_factor):
    """Checks a prediction: how a ``MultiHeadSelfAttention``'s output, weights and parameters grow when N -> 4N."""
    blank = unanswered("attention_growth", output_factor, weights_factor, params_factor)
    if blank is not None:
        return blank
    try:
        output_factor, weights_factor, params_factor = (
            float(value) for value in (output_factor, weights_factor, params_factor)
        )
    except (TypeError, ValueError):
        return CheckResult("attention_growth", False, "give three numbers, e.g. `attention_growth(2, 4, 8)`.")
    side, tokens = 2.0, 4.0  # the side doubles, so the number of tokens N = side^2 grows 4x
    parts = [
        ("output", np.isclose(output_factor, tokens), _factor_message(output_factor, tokens, [
            (side, "the side doubles, but the grid has side^2 tokens, so N grows 4x, and y holds "
                   "one C-vector per token: 4x"),
            (tokens**2, "y holds one C-vector per token, (B, N, C): it grows like N (4x); only the "
                        "attention weights hold a number per pair of tokens"),
        ], "predicted {predicted:g}x; y holds one C-vector per token and N grows {true:g}x")),
        ("weights", np.isclose(weights_factor, tokens**2), _factor_message(weights_factor, tokens**2, [
            (tokens, "4x is the growth of N; the weights hold one number per query-key pair, "
                     "N^2 of them per head, so they grow 4^2 = 16x"),
            (side, "the side doubles, N = side^2 grows 4x and the N x N weights 16x"),
            (side**3, "the weights are N x N per head with N = side^2: (2^2)^2 = 16x, not 2^3"),
        ], "predicted {predicted:g}x; the weights are N x N per head and N grows 4x, so {true:g}x")),
        ("parameters", np.isclose(params_factor, 1.0),
         "the parameters are the four C x C projections W_q, W_k, W_v, W_o (and their biases), "
         "applied to every token with the same weights: they do not depend on N, and the same "
         "layer runs on any grid (1x)"),
    ]
    return _prediction("attention_growth", parts)


#: Chapter 2's perturbation experiment: 9 tokens with 2 positive channels, identity
#: projections, the kernel [1/4, 1/2, 1/4]; token REACH_TOKEN gets REACH_DELTA added.
REACH_X = np.round(np.random.default_rng(7).uniform(0.5, 1.5, size=(9, 2)), 1).astype("float32")
REACH_KERNEL = np.array([0.25, 0.5, 0.25], dtype="float32")
REACH_TOKEN = 4
REACH_DELTA = np.array([1.0, 0.0], dtype="float32")


def reach_measurement(x=None, token=REACH_TOKEN, delta=REACH_DELTA, kernel=REACH_KERNEL):
    """Runs Chapter 2's perturbation experiment: ``(attention_changed, focal_changed, focal_local)``."""
    x = REACH_X if x is None else np.asarray(x, dtype="float32")
    moved = x.copy()
    moved[token] += delta
    eye = np.eye(x.shape[1], dtype="float32")

    def attn(t):
        return _numpy(attention.self_attention_1d(t, eye, eye, eye))

    def focal(t):
        y, m = attention.focal_modulation_1d(t, eye, eye, kernel, return_modulator=True)
        m = _numpy(m)
        # m = local + mean(local), so mean(m) = 2 mean(local): the local context is m - mean(m) / 2
        return _numpy(y), m - m.mean(axis=0, keepdims=True) / 2

    def changed(a, b):
        return sorted(int(i) for i in np.flatnonzero(np.abs(a - b).max(axis=-1) > 1e-6))

    (y0, local0), (y1, local1) = focal(x), focal(moved)
    return changed(attn(x), attn(moved)), changed(y0, y1), changed(local0, local1)


def _indices(value):
    if isinstance(value, (int, np.integer)):
        return [int(value)]
    return sorted({int(i) for i in value})


def perturbation_reach(attention_changed, focal_changed, focal_local):
    """Checks a prediction: which tokens feel a change of token 4 of ``REACH_X``?

    Args:
        attention_changed: outputs of single-head self-attention that change.
        focal_changed: outputs of the toy focal modulation that change.
        focal_local: tokens whose local context (without the global average) changes.
    """
    blank = unanswered("perturbation_reach", attention_changed, focal_changed, focal_local)
    if blank is not None:
        return blank
    try:
        attention_changed, focal_changed, focal_local = (
            _indices(v) for v in (attention_changed, focal_changed, focal_local)
        )
    except (TypeError, ValueError):
        return CheckResult("perturbation_reach", False,
                           "give three lists of token indices (0 to 8), e.g. `[3, 4, 5]`.")
    true_attn, true_focal, true_local = reach_measurement()
    n, j = len(REACH_X), REACH_TOKEN
    everyone = list(range(n))
    window = [j - 1, j, j + 1]

    def say(predicted, true, messages, default):
        for value, message in messages:
            if predicted == value:
                return message
        return default

    parts = [
        ("self-attention", attention_changed == true_attn, say(attention_changed, true_attn, [
            ([j], "token 4 is also a key and a value of every other query: its score a_i4 and "
                  "the softmax's normaliser change in every row, so every output changes"),
            (window, "attention has no neighbourhood: every query compares itself with token 4, "
                     "near or far, so every output changes"),
        ], f"every query's weights include token 4, so the outputs that change are {true_attn}")),
        ("focal modulation", focal_changed == true_focal, say(focal_changed, true_focal, [
            (window, "the kernel's neighbours change, but the global level averages the local "
                     "context over all tokens, so every modulator, and every output, shifts"),
            ([j], "the kernel of 3 reaches tokens 3 and 5, and the global average reaches everyone"),
        ], f"the global average carries the change to every token: {true_focal}")),
        ("local context", focal_local == true_local, say(focal_local, true_local, [
            (everyone, "the shift that every token receives is the global level's; the local "
                       "context only changes where the 3-tap kernel window covers token 4"),
            ([j], "tokens 3 and 5 also have token 4 in their 3-tap window"),
        ], f"the local context of token i changes when its window i-1..i+1 covers token 4: {true_local}")),
    ]
    return _prediction("perturbation_reach", parts)


__all__ = [
    "REACH_X",
    "attention_growth",
    "focal_aggregation_matrix",
    "focal_modulation_1d",
    "perturbation_reach",
    "reach_measurement",
    "scaled_dot_product_attention",
    "score_matrix_bytes",
    "self_attention_1d",
    "softmax",
    "split_heads",
]
