"""Exercise checks of chapters 3-5: the reference solutions pass and each typical
mistake, written the way a learner would write it, is recognised by name."""

import numpy as np
import pytest
from keras import ops

from focaledu import checks

pytestmark = pytest.mark.backends


def gelu(x, approximate=False):
    return ops.gelu(x, approximate=approximate)


# ---------------------------------------------------------------- solutions


def kernel_sizes(focal_level, focal_window, focal_factor):
    return [focal_factor * l + focal_window for l in range(focal_level)]


def receptive_fields(focal_level, focal_window, focal_factor):
    sizes, size = [], 1
    for k in kernel_sizes(focal_level, focal_window, focal_factor):
        size += k - 1
        sizes.append(size)
    return sizes


def hierarchical_context(z0, kernels, *, act=gelu, global_act=gelu, parallel=False, use_global=True,
                         global_from_z0=False, keepdims=True):
    z, levels = z0, []
    for kernel in kernels:
        z = act(ops.depthwise_conv(z0 if parallel else z, kernel, strides=1, padding="same"))
        levels.append(z)
    if use_global:
        levels.append(global_act(ops.mean(z0 if global_from_z0 else z, axis=(1, 2), keepdims=keepdims)))
    return levels


def split_projection(x, kernel, bias, focal_level, *, order="qzg", gate_act=None, use_bias=True):
    p = x @ kernel + (bias if use_bias else 0)
    c = x.shape[-1]
    widths = {"q": c, "z": c, "g": focal_level + 1}
    parts, start = {}, 0
    for name in order:
        parts[name] = p[..., start : start + widths[name]]
        start += widths[name]
    gates = parts["g"] if gate_act is None else gate_act(parts["g"])
    return parts["q"], parts["z"], gates


def gated_aggregation(levels, gates, normalize=False, *, gate_act=None, last=None, use_gates=True,
                      always_divide=None):
    if gate_act is not None:
        # Back to NumPy, as the levels are: torch does not multiply a NumPy array by a tensor.
        gates = ops.convert_to_numpy(gate_act(gates))
    used = levels if last is None else levels[:last]
    out = sum((z * gates[..., l : l + 1] if use_gates else z) for l, z in enumerate(used))
    divide = normalize if always_divide is None else always_divide
    return out / len(levels) if divide else out


def modulate(q, z_out, h_kernel, h_bias):
    return q * (z_out @ h_kernel + h_bias)


def focal_modulation(layer, x, *, gate_act=None, act=gelu, global_act=gelu, parallel=False, use_global=True,
                     use_proj=True, add=False, normalize=None):
    q, z0, gates = ops.split(layer.f(x), [layer.dim, 2 * layer.dim], axis=-1)
    if gate_act is not None:
        gates = gate_act(gates)
    z, total = z0, 0
    for l, conv in enumerate(layer.focal_layers):
        z = act(conv(z0 if parallel else z))
        total = total + z * gates[..., l : l + 1]
    if use_global:
        total = total + global_act(ops.mean(z, axis=(1, 2), keepdims=True)) * gates[..., layer.focal_level :]
    if layer.normalize_modulator if normalize is None else normalize:
        total = total / (layer.focal_level + 1)
    m = layer.h(total)
    y = q + m if add else q * m
    return layer.proj(y) if use_proj else y


def focal_block(block, x):
    x = x + block.modulation(block.norm1(x))
    return x + block.mlp(block.norm2(x))


def modulation_params(dim, focal_level, focal_window, focal_factor):
    f = dim * (2 * dim + focal_level + 1) + 2 * dim + focal_level + 1
    dw = dim * sum(k * k for k in kernel_sizes(focal_level, focal_window, focal_factor))
    return f + dw + 2 * (dim * dim + dim)


SOLUTIONS = [
    kernel_sizes, receptive_fields, hierarchical_context, split_projection, gated_aggregation,
    modulate, focal_modulation, focal_block, modulation_params,
]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda f: f.__name__)
def test_reference_solution_passes(solution):
    result = getattr(checks, solution.__name__)(solution)
    assert result, str(result)
    assert "matches the reference" in result.message


def test_checks_are_exported():
    for solution in SOLUTIONS:
        assert solution.__name__ in checks.__all__


# ---------------------------------------------------------------- mistakes


def tanh_gelu(x):
    return gelu(x, approximate=True)


def identity(x):
    return x


def softmax(g):
    return ops.softmax(g, axis=-1)


def np_softmax(g):
    e = np.exp(g - g.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


MISTAKES = [
    # chapter 3
    ("kernel_sizes", lambda L, w, f: [f * l + w for l in range(1, L + 1)], "levels start at 1"),
    ("kernel_sizes", lambda L, w, f: [w * l + f for l in range(L)], "swapped"),
    ("kernel_sizes", lambda L, w, f: [f * l + w for l in range(L + 1)], "L + 1 kernels"),
    ("kernel_sizes", lambda L, w, f: [w for _ in range(L)], "do not grow"),
    ("kernel_sizes", lambda L, w, f: [w * f**l for l in range(L)], "geometrically"),
    ("receptive_fields", lambda L, w, f: list(np.cumsum(kernel_sizes(L, w, f))), "added the kernel sizes"),
    ("receptive_fields", kernel_sizes, "in parallel"),
    ("receptive_fields", lambda L, w, f: list(np.cumprod(kernel_sizes(L, w, f))), "multiplied"),
    ("receptive_fields", lambda L, w, f: [r - 1 for r in receptive_fields(L, w, f)], "+ 1"),
    ("receptive_fields", lambda L, w, f: receptive_fields(L, w, f) + [float("inf")], "global level"),
    ("hierarchical_context", lambda z, k: hierarchical_context(z, k, act=identity), "forgot the GELU"),
    ("hierarchical_context", lambda z, k: hierarchical_context(z, k, global_act=identity), "global level has no GELU"),
    ("hierarchical_context", lambda z, k: hierarchical_context(z, k, parallel=True), "in parallel"),
    ("hierarchical_context", lambda z, k: hierarchical_context(z, k, use_global=False), "forgot the global level"),
    ("hierarchical_context", lambda z, k: hierarchical_context(z, k, global_from_z0=True), "averages Z^0"),
    ("hierarchical_context", lambda z, k: hierarchical_context(z, k, act=tanh_gelu, global_act=tanh_gelu), "tanh"),
    ("hierarchical_context", lambda z, k: hierarchical_context(z, k, keepdims=False), "(B, 1, 1, C)"),
    # chapter 4
    ("split_projection", lambda *a: split_projection(*a, order="zqg"), "swapped q and Z^0"),
    ("split_projection", lambda *a: split_projection(*a, order="gqz"), "from the front"),
    ("split_projection", lambda *a: split_projection(*a, gate_act=np_softmax), "softmax"),
    ("split_projection", lambda *a: split_projection(*a, gate_act=lambda g: 1 / (1 + np.exp(-g))), "sigmoid"),
    ("split_projection", lambda *a: split_projection(*a, use_bias=False), "bias"),
    ("gated_aggregation", lambda l, g, n=False: gated_aggregation(l, g, n, gate_act=softmax), "softmax"),
    ("gated_aggregation", lambda l, g, n=False: gated_aggregation(l, g, n, gate_act=ops.sigmoid), "sigmoid"),
    ("gated_aggregation", lambda l, g, n=False: gated_aggregation(l, g, n, last=-1), "forgot the global level"),
    ("gated_aggregation", lambda l, g, n=False: gated_aggregation(l, g, n, use_gates=False), "ignored the gates"),
    ("gated_aggregation", lambda l, g, n=False: gated_aggregation(l, g, n, always_divide=True), "it is off here"),
    ("gated_aggregation", lambda l, g, n=False: gated_aggregation(l, g, n, always_divide=False), "normalize=True"),
    ("gated_aggregation", lambda l, g, n=False: gated_aggregation(l, g[..., ::-1], n), "reverse order"),
    ("modulate", lambda q, z, k, b: q + z @ k + b, "added"),
    ("modulate", lambda q, z, k, b: q * z, "forgot h"),
    ("modulate", lambda q, z, k, b: q * (z @ k), "bias of h"),
    ("modulate", lambda q, z, k, b: z @ k + b, "returned the modulator"),
    ("modulate", lambda q, z, k, b: q * ops.convert_to_numpy(ops.sigmoid(z @ k + b)), "sigmoid"),
    ("modulate", lambda q, z, k, b: q * (z @ k.T + b), "transposed"),
    # chapter 5
    ("focal_modulation", lambda m, x: focal_modulation(m, x, gate_act=softmax), "softmax"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, act=identity), "forgot the GELU"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, global_act=identity), "global level has no GELU"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, parallel=True), "in parallel"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, use_global=False), "forgot the global level"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, use_proj=False), "output projection"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, add=True), "added q"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, normalize=False), "ignored layer.normalize_modulator"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, normalize=True), "although layer.normalize_modulator"),
    ("focal_modulation", lambda m, x: focal_modulation(m, x, act=tanh_gelu, global_act=tanh_gelu), "tanh"),
    ("focal_block", lambda b, x: (lambda y: y + b.mlp(b.norm2(y)))(x + b.modulation(x)), "keras.io tutorial"),
    ("focal_block", lambda b, x: (lambda y: y + b.norm2(b.mlp(y)))(x + b.norm1(b.modulation(x))), "post-norm"),
    ("focal_block", lambda b, x: (lambda y: y + b.mlp(b.norm2(y)))(b.modulation(b.norm1(x))), "around the modulation"),
    ("focal_block", lambda b, x: b.mlp(b.norm2(x + b.modulation(b.norm1(x)))), "around the MLP"),
    ("focal_block", lambda b, x: (lambda y: y + b.mlp(b.norm1(y)))(x + b.modulation(b.norm1(x))), "used norm1"),
    ("focal_block", lambda b, x: (lambda y: y + b.mlp(y))(x + b.modulation(b.norm1(x))), "no LayerNorm before the MLP"),
    ("modulation_params", lambda C, L, w, f: modulation_params(C, L, w, f) - C * sum(
        k * k for k in kernel_sizes(L, w, f)), "depthwise kernels"),
    ("modulation_params", lambda C, L, w, f: modulation_params(C, L, w, f) + C * L, "biases"),
    ("modulation_params", lambda C, L, w, f: modulation_params(C, L, w, f) - C - 1, "L gates"),
    ("modulation_params", lambda C, L, w, f: modulation_params(C, L, w, f) - C * C - C, "proj"),
    ("modulation_params", lambda C, L, w, f: modulation_params(C, L, w, f) - (2 * C + L + 1) - 2 * C,
     "biases of f, h and proj"),
    ("modulation_params", lambda C, L, w, f: modulation_params(C, L, w, f) - C * sum(
        k * k - k for k in kernel_sizes(L, w, f)), "k^2"),
]


@pytest.mark.parametrize(
    "check, learner, phrase", MISTAKES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(MISTAKES)]
)
def test_mistake_is_recognised(check, learner, phrase):
    result = getattr(checks, check)(learner)
    assert not result
    assert phrase in result.message, result.message
    assert "(input:" in result.message


def test_size_checks_on_other_cases():
    """``cases=`` (the hidden check of chapter 3) catches an answer that only knows the default inputs."""
    known = {(3, 3, 2): [3, 7, 13], (2, 3, 2): [3, 7], (4, 5, 4): [5, 13, 25, 41], (1, 7, 2): [7], (3, 1, 0): [1, 1, 1]}

    def memorised(*args):
        return known.get(args, [1])

    cases = [(6, 3, 2), (2, 9, 4)]
    assert checks.receptive_fields(memorised) and checks.receptive_fields(receptive_fields, cases=cases)
    result = checks.receptive_fields(memorised, cases=cases)
    assert not result and "(input: focal_level=6, focal_window=3, focal_factor=2)" in result.message, result
    assert checks.kernel_sizes(kernel_sizes, cases=cases).message == "matches the reference on 2 inputs."
    for bad, phrase in [([(3, 3)], "triples"), ([(3, 4, 2)], "focal_window"), ([], "at least one")]:
        with pytest.raises(ValueError, match=phrase):
            checks.kernel_sizes(kernel_sizes, cases=bad)


def test_unrecognised_error_and_stub_are_reported():
    result = checks.kernel_sizes(lambda L, w, f: [7] * L)
    assert not result and "values differ" in result.message

    def stub(*args):
        raise NotImplementedError("use keras.ops.depthwise_conv")

    result = checks.hierarchical_context(stub)
    assert not result and "not implemented yet" in result.message and "depthwise_conv" in result.message
