"""Checks for the exercises of chapters 3-5: contextualization, gated aggregation, the focal block.

    >>> from focaledu import checks
    >>> checks.kernel_sizes(my_kernel_sizes)
"""

import numpy as np
from keras import ops

from focaledu import receptive
from focaledu.ablation_layers import AblatedFocalModulation
from focaledu.checks._core import compare, unanswered
from focaledu.layers import FocalModulation, FocalNetBlock

__all__ = [
    "kernel_sizes",
    "receptive_fields",
    "hierarchical_context",
    "split_projection",
    "gated_aggregation",
    "modulate",
    "focal_modulation",
    "focal_block",
    "modulation_params",
    "receptive_field_prediction",
    "softmax_gated_aggregation",
    "scale_exponents",
]


def _rng(seed):
    return np.random.default_rng(seed)


def _randomize(layer, seed):
    """Replaces every weight of a built layer with seeded random values (biases and norms included)."""
    rng = _rng(seed)
    for variable in layer.weights:
        shape = tuple(variable.shape)
        if len(shape) == 1:  # biases, LayerNorm offsets; LayerNorm scales around 1
            value = rng.normal(0.0, 0.2, size=shape) + (1.0 if variable.name == "gamma" else 0.0)
        else:  # Dense (fan_in, out) or depthwise (k, k, C, 1) kernels
            fan_in = shape[0] * shape[1] if len(shape) == 4 else shape[0]
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=shape)
        variable.assign(value.astype(variable.dtype))
    return layer


def _layer(seed, dim=4, focal_level=2, focal_window=3, focal_factor=2, size=(6, 7), **kwargs):
    """A built FocalModulation with seeded random weights and a matching seeded input."""
    layer = FocalModulation(dim, focal_window, focal_level, focal_factor, **kwargs)
    x = _rng(seed + 100).normal(size=(2, *size, dim)).astype("float32")
    layer(x)
    return _randomize(layer, seed), x


def _as_array(fn):
    """Lists of sizes compared as 1-D arrays, so a difference is reported by index."""

    def wrapped(*args):
        return np.asarray(fn(*args), dtype="float64")

    return wrapped


def _compare_sizes(name, fn, reference, cases, mistakes):
    if not callable(fn):
        return compare(name, fn, reference, cases)
    return compare(name, _as_array(fn), _as_array(reference), cases,
                   [(message, _as_array(wrong)) for message, wrong in mistakes])


def _gelu(x, approximate=False):
    return ops.gelu(x, approximate=approximate)


# --------------------------------------------------------------------------
# Chapter 3: hierarchical contextualization.
# --------------------------------------------------------------------------

_KERNEL_CASES = [
    ("focal_level=3, focal_window=3, focal_factor=2", (3, 3, 2)),
    ("focal_level=2, focal_window=3, focal_factor=2", (2, 3, 2)),
    ("focal_level=4, focal_window=5, focal_factor=4", (4, 5, 4)),
    ("focal_level=1, focal_window=7, focal_factor=2", (1, 7, 2)),
    ("focal_level=3, focal_window=1, focal_factor=0", (3, 1, 0)),
]


def _size_cases(cases):
    """The default inputs, or ``cases`` (``(focal_level, focal_window, focal_factor)`` triples, validated) labelled."""
    if cases is None:
        return _KERNEL_CASES
    labelled = []
    for case in cases:
        if not isinstance(case, (tuple, list)) or len(case) != 3:
            raise ValueError(f"cases must be (focal_level, focal_window, focal_factor) triples; got {case!r}")
        receptive.kernel_sizes(*case)
        labelled.append(("focal_level={}, focal_window={}, focal_factor={}".format(*case), tuple(case)))
    if not labelled:
        raise ValueError("cases must hold at least one (focal_level, focal_window, focal_factor) triple, got none")
    return labelled


def kernel_sizes(fn, *, cases=None):
    """Checks ``fn(focal_level, focal_window, focal_factor) -> [k_1, ..., k_L]``.

    ``cases`` replaces the default inputs.
    """
    mistakes = [
        (
            "your levels start at 1 in the formula: the first kernel is focal_window itself, "
            "k = focal_factor * l + focal_window with l = 0, 1, ..., L - 1 as in the code",
            lambda L, w, f: [f * (k + 1) + w for k in range(L)],
        ),
        (
            "you swapped focal_window and focal_factor: k = focal_factor * l + focal_window",
            lambda L, w, f: [w * k + f for k in range(L)],
        ),
        (
            "you returned L + 1 kernels: the global level L + 1 is an average, it has no kernel",
            lambda L, w, f: [f * k + w for k in range(L + 1)],
        ),
        (
            "your kernels do not grow: each level adds focal_factor to the kernel size",
            lambda L, w, f: [w] * L,
        ),
        (
            "your kernels grow geometrically (focal_window * focal_factor**l); they grow linearly, "
            "by focal_factor per level",
            lambda L, w, f: [w * f**k for k in range(L)],
        ),
    ]
    return _compare_sizes("kernel_sizes", fn, receptive.kernel_sizes, _size_cases(cases), mistakes)


def receptive_fields(fn, *, cases=None):
    """Checks ``fn(focal_level, focal_window, focal_factor) -> [r_1, ..., r_L]``.

    ``cases`` as for :func:`kernel_sizes`.
    """

    def reference(L, w, f):
        return receptive.receptive_fields(L, w, f)[:-1]

    def cumulative(L, w, f, step):
        sizes, size = [], 1
        for k in receptive.kernel_sizes(L, w, f):
            size = step(size, k)
            sizes.append(size)
        return sizes

    mistakes = [
        (
            "you added the kernel sizes themselves: stacking a k x k convolution widens the "
            "window by k - 1, so r_l = 1 + sum_{i<=l} (k_i - 1)",
            lambda L, w, f: cumulative(L, w, f, lambda r, k: r + k if r > 1 else k),
        ),
        (
            "you used each level's own kernel only, as if every level convolved Z^0 in parallel: "
            "the levels run in sequence, so their reaches add up",
            lambda L, w, f: receptive.kernel_sizes(L, w, f),
        ),
        (
            "you multiplied the kernel sizes: the reaches add up, r_l = 1 + sum_{i<=l} (k_i - 1)",
            lambda L, w, f: cumulative(L, w, f, lambda r, k: r * k),
        ),
        (
            "you forgot the + 1 for the centre: r_l = 1 + sum_{i<=l} (k_i - 1)",
            lambda L, w, f: [r - 1 for r in reference(L, w, f)],
        ),
        (
            "you included the global level: return the L convolutional levels only",
            lambda L, w, f: receptive.receptive_fields(L, w, f),
        ),
    ]
    return _compare_sizes("receptive_fields", fn, reference, _size_cases(cases), mistakes)


def _levels_variant(
    z0,
    kernels,
    conv_gelu=True,
    global_gelu=True,
    parallel=False,
    use_global=True,
    global_from_z0=False,
    approximate=False,
    keepdims=True,
):
    """Hierarchical contextualization with one switch per typical mistake."""
    z0 = ops.convert_to_tensor(z0)
    z, levels = z0, []
    for kernel in kernels:
        z = ops.depthwise_conv(z0 if parallel else z, ops.convert_to_tensor(kernel), 1, padding="same")
        if conv_gelu:
            z = _gelu(z, approximate)
        levels.append(z)
    if use_global:
        pooled = ops.mean(z0 if global_from_z0 else z, axis=(1, 2), keepdims=keepdims)
        levels.append(_gelu(pooled, approximate) if global_gelu else pooled)
    return levels


def _context_cases():
    cases = []
    for seed, (batch, height, width, dim, sizes) in enumerate(
        [(2, 6, 7, 4, (3, 5)), (1, 9, 8, 4, (3, 5, 7)), (1, 5, 6, 4, (1, 3))]
    ):
        layer, _ = _layer(seed, dim=dim, focal_level=len(sizes), focal_window=sizes[0],
                          focal_factor=(sizes[1] - sizes[0]) if len(sizes) > 1 else 2, size=(height, width))
        z0 = _rng(seed + 200).normal(size=(batch, height, width, dim)).astype("float32")
        kernels = [ops.convert_to_numpy(conv.kernel) for conv in layer.focal_layers]
        label = f"Z^0 of shape {z0.shape}, kernels {list(sizes)}"
        cases.append((label, (z0, kernels), layer))
    return cases


def hierarchical_context(fn):
    """Checks ``fn(z0, kernels) -> [Z^1, ..., Z^L, Z^{L+1}]`` for ``z0`` ``(B, H, W, C)`` and depthwise ``kernels``."""
    cases = _context_cases()
    layers = {id(args[0]): layer for _, args, layer in cases}

    def reference(z0, kernels):
        return receptive.levels_from_context(layers[id(z0)], ops.convert_to_tensor(z0))

    mistakes = [
        ("you forgot the GELU after each depthwise convolution: Z^l = GELU(DWConv_l(Z^(l-1)))",
         lambda z, k: _levels_variant(z, k, conv_gelu=False)),
        ("your global level has no GELU: Z^(L+1) = GELU(mean_hw Z^L)",
         lambda z, k: _levels_variant(z, k, global_gelu=False)),
        ("you applied the levels in parallel, each to Z^0: they run in sequence, level l "
         "convolves Z^(l-1)", lambda z, k: _levels_variant(z, k, parallel=True)),
        ("you forgot the global level Z^(L+1) = GELU(mean_hw Z^L) at the end of the list",
         lambda z, k: _levels_variant(z, k, use_global=False)),
        ("your global level averages Z^0: it averages the last level Z^L",
         lambda z, k: _levels_variant(z, k, global_from_z0=True)),
        ("you used the tanh approximation of GELU (keras.ops.gelu's default): the official "
         "code uses the exact form, keras.ops.gelu(x, approximate=False)",
         lambda z, k: _levels_variant(z, k, approximate=True)),
        ("your global level lost its spatial axes: keep them, shape (B, 1, 1, C) "
         "(keepdims=True), so it broadcasts over every position",
         lambda z, k: _levels_variant(z, k, keepdims=False)),
    ]
    return compare("hierarchical_context", fn, reference, [c[:2] for c in cases], mistakes)


# --------------------------------------------------------------------------
# Chapter 4: gated aggregation.
# --------------------------------------------------------------------------


def _projection_cases():
    cases = []
    for seed, (dim, level) in enumerate([(4, 2), (4, 3), (4, 1)]):
        layer, x = _layer(seed, dim=dim, focal_level=level)
        kernel, bias = (ops.convert_to_numpy(w) for w in (layer.f.kernel, layer.f.bias))
        label = f"x of shape {x.shape}, focal_level={level}"
        cases.append((label, (x, kernel, bias, level), layer))
    return cases


def split_projection(fn):
    """Checks ``fn(x, kernel, bias, focal_level) -> (q, z0, gates)``, the split output of the linear layer ``f``."""
    cases = _projection_cases()
    layers = {id(args[0]): layer for _, args, layer in cases}

    def reference(x, kernel, bias, level):
        return list(receptive.split_projection(layers[id(x)], x))

    def variant(x, kernel, bias, level, order=("q", "z", "g"), use_bias=True, gate_fn=None):
        p = np.asarray(x) @ kernel + (bias if use_bias else 0)
        dim = x.shape[-1]
        sizes = {"q": dim, "z": dim, "g": level + 1}
        parts, start = {}, 0
        for name in order:
            parts[name] = p[..., start : start + sizes[name]]
            start += sizes[name]
        if gate_fn is not None:
            parts["g"] = gate_fn(parts["g"])
        return [parts["q"], parts["z"], parts["g"]]

    def softmax(g):
        e = np.exp(g - g.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    mistakes = [
        ("you swapped q and Z^0: f(x) splits into [q, Z^0, gates] = [C, C, L + 1] channels",
         lambda *a: variant(*a, order=("z", "q", "g"))),
        ("you took the gates from the front: f(x) splits into [q, Z^0, gates], gates last",
         lambda *a: variant(*a, order=("g", "q", "z"))),
        ("you applied a softmax to the gates: the official gates are the raw outputs of f",
         lambda *a: variant(*a, gate_fn=softmax)),
        ("you applied a sigmoid to the gates: the official gates are the raw outputs of f",
         lambda *a: variant(*a, gate_fn=lambda g: 1 / (1 + np.exp(-g)))),
        ("you forgot the bias of f", lambda *a: variant(*a, use_bias=False)),
    ]
    return compare("split_projection", fn, reference, [c[:2] for c in cases], mistakes)


def _aggregate(levels, gates, normalize=False, gate_fn=None, use_global=True, use_gates=True,
               reverse=False, divide=None):
    gates = ops.convert_to_tensor(gates)
    if gate_fn is not None:
        gates = gate_fn(gates)
    count = len(levels)
    total = 0
    for index, level in enumerate(levels if use_global else levels[:-1]):
        g = count - 1 - index if reverse else index
        weight = gates[..., g : g + 1] if use_gates else 1.0
        total = total + ops.convert_to_tensor(level) * weight
    divide = normalize if divide is None else divide
    return total / count if divide else total


def _aggregation_cases():
    cases = []
    for seed, (dim, level, normalize) in enumerate([(4, 2, False), (4, 3, False), (4, 2, True), (4, 1, True)]):
        layer, x = _layer(seed, dim=dim, focal_level=level, normalize_modulator=normalize)
        # h = identity and no bias, so the layer's "modulator" output is Z^out itself.
        layer.h.set_weights([np.eye(dim, dtype="float32"), np.zeros(dim, "float32")])
        _, _, gates = receptive.split_projection(layer, x)
        levels = [ops.convert_to_numpy(z) for z in receptive.context_levels(layer, x)]
        label = f"{level + 1} levels of shape {levels[0].shape}, normalize={normalize}"
        cases.append((label, (levels, ops.convert_to_numpy(gates), normalize), (layer, x)))
    return cases


def gated_aggregation(fn):
    """Checks ``fn(levels, gates, normalize=False) -> sum_l G^l * Z^l`` (divided by ``L + 1`` when ``normalize``)."""
    cases = _aggregation_cases()
    inputs = {id(args[1]): layer_x for _, args, layer_x in cases}

    def reference(levels, gates, normalize):
        layer, x = inputs[id(gates)]
        return layer(x, return_modulation=True)[1]["modulator"]

    mistakes = [
        ("you applied a softmax to the gates: the official code multiplies by the raw gates "
         "(a softmax would force the levels to compete and sum to 1)",
         lambda l, g, n: _aggregate(l, g, n, gate_fn=lambda t: ops.softmax(t, axis=-1))),
        ("you applied a sigmoid to the gates: the official gates are raw, unbounded numbers",
         lambda l, g, n: _aggregate(l, g, n, gate_fn=ops.sigmoid)),
        ("you forgot the global level: the sum runs over l = 1, ..., L + 1",
         lambda l, g, n: _aggregate(l, g, n, use_global=False)),
        ("you ignored the gates: each level is multiplied by its own gate G^l before the sum",
         lambda l, g, n: _aggregate(l, g, n, use_gates=False)),
        ("you divided by L + 1: that is what normalize_modulator=True does, and it is off here",
         lambda l, g, n: _aggregate(l, g, n, divide=True)),
        ("you did not divide by L + 1 although normalize=True (normalize_modulator)",
         lambda l, g, n: _aggregate(l, g, n, divide=False)),
        ("your gates are in reverse order: gate l (channel l - 1) weights level l, the last "
         "gate weights the global level", lambda l, g, n: _aggregate(l, g, n, reverse=True)),
    ]
    return compare("gated_aggregation", fn, reference, [c[:2] for c in cases], mistakes)


def _modulate_cases():
    cases = []
    for seed, dim in enumerate([4, 4, 4]):
        layer, x = _layer(seed, dim=dim)
        q, _, _ = receptive.split_projection(layer, x)
        z_out = _rng(seed + 300).normal(size=x.shape).astype("float32")
        kernel, bias = (ops.convert_to_numpy(w) for w in (layer.h.kernel, layer.h.bias))
        label = f"q and Z_out of shape {x.shape}"
        cases.append((label, (ops.convert_to_numpy(q), z_out, kernel, bias), layer))
    return cases


def modulate(fn):
    """Checks ``fn(q, z_out, h_kernel, h_bias) -> q * h(z_out)``, ``h`` the linear layer."""
    cases = _modulate_cases()
    layers = {id(args[0]): layer for _, args, layer in cases}

    def reference(q, z_out, kernel, bias):
        # The cases are NumPy; the layer returns a backend tensor, which torch does not multiply with NumPy.
        return q * ops.convert_to_numpy(layers[id(q)].h(z_out))

    mistakes = [
        ("you added the modulator to the query: focal modulation multiplies, y = q * M",
         lambda q, z, k, b: q + (z @ k + b)),
        ("you forgot h: the modulator is M = h(Z_out) = Z_out W + b, a channel-mixing linear map",
         lambda q, z, k, b: q * z),
        ("you forgot the bias of h", lambda q, z, k, b: q * (z @ k)),
        ("you returned the modulator M: the output is q * M", lambda q, z, k, b: z @ k + b),
        ("you squashed the modulator with a sigmoid: the official code uses M as it is",
         lambda q, z, k, b: q / (1 + np.exp(-(z @ k + b)))),
        ("you multiplied by the transposed kernel: h(z) = z @ kernel + bias",
         lambda q, z, k, b: q * (z @ k.T + b)),
    ]
    return compare("modulate", fn, reference, [c[:2] for c in cases], mistakes)


# --------------------------------------------------------------------------
# Chapter 5: the focal modulation block.
# --------------------------------------------------------------------------


def _modulation_variant(
    layer,
    x,
    gate_fn=None,
    conv_gelu=True,
    global_gelu=True,
    parallel=False,
    use_global=True,
    use_proj=True,
    combine="multiply",
    normalize=None,
    approximate=False,
):
    """A FocalModulation forward pass through the layer's own sub-layers, one switch per mistake."""
    q, z0, gates = receptive.split_projection(layer, ops.convert_to_tensor(x))
    if gate_fn is not None:
        gates = gate_fn(gates)
    z, total = z0, 0
    for index, conv in enumerate(layer.focal_layers):
        z = conv(z0 if parallel else z)
        if conv_gelu:
            z = _gelu(z, approximate)
        total = total + z * gates[..., index : index + 1]
    if use_global:
        pooled = ops.mean(z, axis=(1, 2), keepdims=True)
        pooled = _gelu(pooled, approximate) if global_gelu else pooled
        total = total + pooled * gates[..., layer.focal_level :]
    normalize = layer.normalize_modulator if normalize is None else normalize
    if normalize:
        total = total / (layer.focal_level + 1)
    modulator = layer.h(total)
    y = q * modulator if combine == "multiply" else q + modulator
    if layer.ln is not None:
        y = layer.ln(y)
    return layer.proj(y) if use_proj else y


def _modulation_cases():
    configs = [
        dict(dim=4, focal_level=2, focal_window=3, focal_factor=2),
        dict(dim=4, focal_level=3, focal_window=3, focal_factor=2, size=(9, 8)),
        dict(dim=4, focal_level=2, focal_window=3, focal_factor=2, normalize_modulator=True),
        dict(dim=4, focal_level=1, focal_window=5, focal_factor=4, bias=False),
    ]
    cases = []
    for seed, config in enumerate(configs):
        layer, x = _layer(seed, **config)
        described = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("dim", "size"))
        cases.append((f"FocalModulation(dim={layer.dim}, {described}) on x of shape {x.shape}", (layer, x)))
    return cases


def focal_modulation(fn):
    """Checks ``fn(layer, x) -> layer(x)`` for a ``FocalModulation`` rebuilt from its sub-layers."""

    def reference(layer, x):
        return layer(x)

    def mistake(**switches):
        return lambda layer, x: _modulation_variant(layer, x, **switches)

    mistakes = [
        ("you applied a softmax to the gates: the official gates are raw",
         mistake(gate_fn=lambda g: ops.softmax(g, axis=-1))),
        ("you forgot the GELU after each depthwise convolution", mistake(conv_gelu=False)),
        ("your global level has no GELU: Z^(L+1) = GELU(mean_hw Z^L)", mistake(global_gelu=False)),
        ("you applied the levels in parallel to Z^0: level l convolves Z^(l-1)", mistake(parallel=True)),
        ("you forgot the global level", mistake(use_global=False)),
        ("you forgot the output projection proj after q * M", mistake(use_proj=False)),
        ("you added q and the modulator: focal modulation multiplies, q * M", mistake(combine="add")),
        ("you ignored layer.normalize_modulator: when it is True, divide the aggregated context by L + 1",
         mistake(normalize=False)),
        ("you divided by L + 1 although layer.normalize_modulator is False", mistake(normalize=True)),
        ("you used the tanh approximation of GELU: use keras.ops.gelu(x, approximate=False)",
         mistake(approximate=True)),
    ]
    return compare("focal_modulation", fn, reference, _modulation_cases(), mistakes)


def _block_cases():
    cases = []
    for seed, (dim, level, size) in enumerate([(4, 2, (6, 6)), (4, 3, (8, 5))]):
        block = FocalNetBlock(dim, focal_level=level, mlp_ratio=2.0)
        # A backend tensor, as a block receives in a model: on torch, a NumPy `x` plus a
        # sub-layer's output (the learner's `x + block.modulation(...)`) raises.
        x = ops.convert_to_tensor(_rng(seed + 400).normal(size=(2, *size, dim)).astype("float32"))
        block(x)
        _randomize(block, seed)
        cases.append((f"FocalNetBlock(dim={dim}, focal_level={level}) on x of shape {tuple(x.shape)}", (block, x)))
    return cases


def _block_variant(block, x, pre_norm=True, post_norm=False, residual_1=True, residual_2=True,
                   mlp_norm="norm2"):
    shortcut = ops.convert_to_tensor(x)
    y = block.norm1(shortcut) if pre_norm else shortcut
    y = block.modulation(y)
    if post_norm:
        y = block.norm1(y)
    x = shortcut + y if residual_1 else y
    if post_norm:
        branch = block.norm2(block.mlp(x))
    else:
        norm = {"norm2": block.norm2, "norm1": block.norm1, None: lambda t: t}[mlp_norm]
        branch = block.mlp(norm(x))
    return x + branch if residual_2 else branch


def focal_block(fn):
    """Checks ``fn(block, x) -> block(x)`` for a pre-norm ``FocalNetBlock`` (no layer scale, no dropout)."""

    def reference(block, x):
        return block(x)

    mistakes = [
        ("there is no LayerNorm before the modulation, as in the keras.io tutorial: the "
         "official block normalises before both branches, x + modulation(norm1(x))",
         lambda b, x: _block_variant(b, x, pre_norm=False)),
        ("you normalised after each branch (post-norm, use_postln=True): the default block is "
         "pre-norm, x + modulation(norm1(x))", lambda b, x: _block_variant(b, x, pre_norm=False, post_norm=True)),
        ("you forgot the residual connection around the modulation",
         lambda b, x: _block_variant(b, x, residual_1=False)),
        ("you forgot the residual connection around the MLP",
         lambda b, x: _block_variant(b, x, residual_2=False)),
        ("you used norm1 before the MLP: each branch has its own LayerNorm, norm2 for the MLP",
         lambda b, x: _block_variant(b, x, mlp_norm="norm1")),
        ("there is no LayerNorm before the MLP: x + mlp(norm2(x))",
         lambda b, x: _block_variant(b, x, mlp_norm=None)),
    ]
    return compare("focal_block", fn, reference, _block_cases(), mistakes, atol=1e-4, rtol=1e-4)


_PARAM_CASES = [
    ("dim=96, focal_level=2, focal_window=3, focal_factor=2", (96, 2, 3, 2)),
    ("dim=64, focal_level=3, focal_window=3, focal_factor=2", (64, 3, 3, 2)),
    ("dim=32, focal_level=1, focal_window=5, focal_factor=4", (32, 1, 5, 4)),
    ("dim=128, focal_level=4, focal_window=3, focal_factor=2", (128, 4, 3, 2)),
]


def _params_variant(dim, level, window, factor, dw=True, dw_bias=False, gates=None, proj=True,
                    biases=True, square=True):
    kernels = receptive.kernel_sizes(level, window, factor)
    gates = level + 1 if gates is None else gates
    f_out = 2 * dim + gates
    total = dim * f_out + dim * dim + (dim * dim if proj else 0)
    if biases:
        total += f_out + dim + (dim if proj else 0)
    if dw:
        total += dim * sum(k * k if square else k for k in kernels) + (dim * level if dw_bias else 0)
    return total


def modulation_params(fn):
    """Checks ``fn(dim, focal_level, focal_window, focal_factor) -> int``, the parameters of a ``FocalModulation``."""

    def reference(dim, level, window, factor):
        # Equal to FocalModulation(dim, window, level, factor).count_params() (tested).
        return receptive.modulation_cost(dim, 1, 1, level, window, factor)["params"]

    mistakes = [
        ("you forgot the depthwise kernels: dim * k_l^2 weights per level",
         lambda *a: _params_variant(*a, dw=False)),
        ("you gave the depthwise convolutions biases: the official ones have none (bias=False)",
         lambda *a: _params_variant(*a, dw_bias=True)),
        ("f has 2 * dim + L + 1 outputs (one gate per level, global included); you used L gates",
         lambda *a: _params_variant(*a, gates=a[1])),
        ("you forgot the output projection proj (dim * dim + dim)",
         lambda *a: _params_variant(*a, proj=False)),
        ("you forgot the biases of f, h and proj", lambda *a: _params_variant(*a, biases=False)),
        ("a depthwise k x k kernel has k^2 weights per channel, not k",
         lambda *a: _params_variant(*a, square=False)),
    ]
    return compare("modulation_params", fn, reference, _PARAM_CASES, mistakes)


def receptive_field_prediction(side, focal_level=3, focal_window=5, focal_factor=2):
    """Checks a prediction: the side, in tokens, of the square level ``focal_level`` of a ``FocalModulation`` sees."""
    blank = unanswered("receptive_field_prediction", side)
    if blank is not None:
        return blank
    from focaledu.checks._core import CheckResult  # added with this check; the module imports only compare

    name = "receptive_field_prediction"
    try:
        side = float(side)
    except (TypeError, ValueError):
        return CheckResult(name, False, "give one number, the side of the square in tokens, e.g. 11.")
    kernels = receptive.kernel_sizes(focal_level, focal_window, focal_factor)
    true = receptive.receptive_fields(focal_level, focal_window, focal_factor)[focal_level - 1]  # [-1] is the global level
    shown = ", ".join(str(k) for k in kernels)
    if np.isclose(side, true):
        return CheckResult(name, True, f"kernels {shown}: 1 + " + " + ".join(f"{k - 1}" for k in kernels)
                           + f" = {true} tokens, as the gradients measure.")
    late = receptive.kernel_sizes(focal_level + 1, focal_window, focal_factor)[1:]
    mistakes = [
        (sum(kernels), "you added the kernel sizes; a k x k kernel widens the view by k - 1 "
                       "(its centre is the position already seen): r = 1 + sum(k - 1)"),
        (sum(kernels) - focal_level, "you forgot the centre token itself: r = 1 + sum(k - 1)"),
        (kernels[-1], "that is the last level's kernel alone; the levels run in sequence, each "
                      "convolving the previous one, so their reaches add up"),
        ((true - 1) / 2, "that is the radius (r - 1) / 2, the reach on each side; the side is "
                         "2 * radius + 1"),
        (1 + focal_level * (focal_window - 1), "you kept every kernel at focal_window; each level's "
                                               "kernel is focal_factor larger than the previous one"),
        (1 + sum(k - 1 for k in late), "your first kernel is focal_window + focal_factor; the first "
                                       "level's kernel is focal_window itself (the loop index starts at 0)"),
        (true**2, "that is the number of positions, r^2; the question asks for the side r"),
    ]
    named = [message for value, message in mistakes if np.isclose(side, value)]
    if named:
        return CheckResult(name, False, ". Or: ".join(named) + ".")
    return CheckResult(name, False, f"predicted {side:g}; the kernels are {shown}, and each widens the "
                                    "view by k - 1: add them up from 1.")


# --------------------------------------------------------------------------
# Chapter 4, experiment: softmax gates instead of raw ones.
# --------------------------------------------------------------------------


def softmax_gated_aggregation(fn):
    """Checks ``fn(levels, gates) -> sum_l softmax(G)^l * Z^l``, the softmax over each position's ``L + 1`` gates."""
    cases = [(label.split(", normalize")[0], (levels, gates)) for label, (levels, gates, _), _ in _aggregation_cases()]

    def over(axis):
        return lambda levels, gates: _aggregate(levels, gates, gate_fn=lambda t: ops.softmax(t, axis=axis))

    def first_levels_only(levels, gates):
        gates = ops.convert_to_tensor(gates)
        weights = ops.concatenate([ops.softmax(gates[..., :-1], axis=-1), gates[..., -1:]], axis=-1)
        return _aggregate(levels, weights)

    mistakes = [
        ("these are the raw gates: apply ops.softmax(gates, axis=-1) first", lambda l, g: _aggregate(l, g)),
        ("your softmax runs over the rows of the map (axis 1): it must run over the L + 1 levels, axis=-1",
         over(1)),
        ("your softmax runs over the columns of the map (axis 2): it must run over the L + 1 levels, axis=-1",
         over(2)),
        ("the global level's gate is left out of the softmax: all L + 1 gates compete, the last one included",
         first_levels_only),
        ("you used a sigmoid: each sigmoid weight lies in (0, 1) but they do not sum to 1 over the levels",
         lambda l, g: _aggregate(l, g, gate_fn=ops.sigmoid)),
        ("you divided by L + 1: the softmax weights already sum to 1",
         lambda l, g: _aggregate(l, g, gate_fn=lambda t: ops.softmax(t, axis=-1), divide=True)),
    ]
    return compare("softmax_gated_aggregation", fn, over(-1), cases, mistakes)


# --------------------------------------------------------------------------
# Chapter 5, prediction: how each mixer's output grows with the input scale.
# --------------------------------------------------------------------------

_SCALE_MIXERS = {
    "focal modulation": (
        dict(),
        "q, the gate and the context level each grow like s, and focal modulation multiplies all three "
        "(q * h(sum_l G^l Z^l)): p = 3",
    ),
    "gating=False": (
        dict(gating=False),
        "without gates only q and the context level grow with s: p = 2",
    ),
    "use_postln_in_modulation=True": (
        dict(use_postln_in_modulation=True),
        "the LayerNorm on q * M divides out whatever scale it has, and proj only sees normalised values: p = 0",
    ),
    "self-attention": (
        None,
        "q k^T grows like s^2, but the softmax keeps every weight in [0, 1] (it saturates towards one key); "
        "only the values v grow with s: p = 1",
    ),
}


def _scale_slopes(scales=(4.0, 8.0, 16.0, 32.0, 64.0), dim=16, seed=0):
    """The fitted exponent p of ``rms(mixer(s x)) ~ s^p`` for each mixer of ``_SCALE_MIXERS``."""
    from focaledu.attention import MultiHeadSelfAttention

    x = _rng(seed + 500).normal(size=(2, 8, 8, dim)).astype("float32")
    slopes = {}
    for name, (flags, _) in _SCALE_MIXERS.items():
        mixer = MultiHeadSelfAttention(dim, 1) if flags is None else AblatedFocalModulation(dim, 3, 2, **flags)
        mixer(x)
        _randomize(mixer, seed)
        rms = [np.sqrt(np.mean(np.square(ops.convert_to_numpy(mixer(x * s)).astype("float64")))) for s in scales]
        slopes[name] = float(np.polyfit(np.log(scales), np.log(rms), 1)[0])
    return slopes


def scale_exponents(predicted):
    """Checks predicted exponents ``p`` (output RMS ~ ``s^p`` for input ``s * x``) of chapter 5's four mixers."""
    from focaledu.checks._core import CheckResult  # the module's top imports only compare

    name = "scale_exponents"
    if not isinstance(predicted, dict):
        return CheckResult(name, False, f"expected a dict of predictions, got {type(predicted).__name__}.")
    missing = [key for key in _SCALE_MIXERS if predicted.get(key) is None]
    if missing:
        return CheckResult(name, False, "not predicted yet: " + ", ".join(repr(k) for k in missing) + ".")
    unknown = sorted(set(predicted) - set(_SCALE_MIXERS))
    if unknown:
        return CheckResult(name, False, f"unknown keys {unknown}; use {list(_SCALE_MIXERS)}.")
    slopes = _scale_slopes()
    wrong = []
    for key, (_, why) in _SCALE_MIXERS.items():
        try:
            guess = float(predicted[key])
        except (TypeError, ValueError):
            return CheckResult(name, False, f"the prediction for {key!r} is not a number: {predicted[key]!r}.")
        if abs(guess - slopes[key]) >= 0.5:
            wrong.append(f"{key}: you predicted {guess:g}, measured {round(slopes[key], 1) + 0.0:.1f}; {why}")
    measured = ", ".join(f"{key} {round(value, 1) + 0.0:.1f}" for key, value in slopes.items())
    if wrong:
        return CheckResult(name, False, f"{len(wrong)} of 4 off. " + " | ".join(wrong) + ".")
    return CheckResult(name, True, f"all four predictions match the measured slopes ({measured}).")
