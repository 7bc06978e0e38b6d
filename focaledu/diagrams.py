"""Schematic diagrams of focal modulation, drawn from real layers, blocks and models.

Every function returns a new matplotlib ``Figure`` (no ``plt.show()``); levels use ``figures.LEVEL_COLORS``.
"""

import math
import numbers

import keras
import matplotlib.pyplot as plt
from keras import ops
from matplotlib import patches

from focaledu import receptive
from focaledu.attention import MultiHeadSelfAttention, merge_heads, split_heads, window_plan
from focaledu.layers import FocalModulation, FocalNetBlock
from focaledu.model import FocalNet
from focaledu.figures import LEVEL_COLORS

GLOBAL_COLOR = "black"
QUERY_COLOR = "#1f78b4"
INK = "#333333"
FILL = "#f4f4f4"
OFF = "#9a9a9a"


# --------------------------------------------------------------------------
# Drawing helpers; canvases are in inches, so sizes and gaps read directly.
# --------------------------------------------------------------------------


def _canvas(width, height, title):
    """A figure of ``width`` x ``height`` inches whose data coordinates are inches."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set(xticks=[], yticks=[])  # no hidden tick labels hanging past the edges
    ax.axis("off")
    ax.text(width / 2, height - 0.28, title, ha="center", va="center", fontsize=12, weight="bold")
    return fig, ax


def _box(ax, x, y, w, h, text, edge=INK, fill=FILL, fontsize=10, dashed=False):
    """A rounded box centred on ``(x, y)`` with ``text`` in it."""
    ax.add_patch(patches.FancyBboxPatch(
        (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.07", facecolor=fill,
        edgecolor=edge, linewidth=1.4, linestyle="--" if dashed else "-",
    ))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=OFF if dashed else INK,
            linespacing=1.3)


def _circle(ax, x, y, symbol, radius=0.16, edge=INK):
    """An operator node (``+``, ``x``, a sum) centred on ``(x, y)``."""
    ax.add_patch(patches.Circle((x, y), radius, facecolor="white", edgecolor=edge, linewidth=1.4, zorder=3))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=11, zorder=4)


def _arrow(ax, start, end, color=INK, lw=1.3):
    """A straight arrow from ``start`` to ``end`` (points in data coordinates)."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(
        arrowstyle="-|>", color=color, lw=lw, shrinkA=0, shrinkB=0, mutation_scale=11))


def _rim(start, center, radius):
    """The point of the circle ``(center, radius)`` that faces ``start``."""
    dx, dy = start[0] - center[0], start[1] - center[1]
    norm = (dx * dx + dy * dy) ** 0.5
    return center[0] + radius * dx / norm, center[1] + radius * dy / norm


def _line(ax, points, color=INK, lw=1.3, **kw):
    xs, ys = zip(*points)
    ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="round", **kw)


def _grid(ax, height, width):
    """A ``height`` x ``width`` token grid on ``ax``; token ``(row, col)`` is the unit square at ``(col, row)``."""
    for row in range(height + 1):
        ax.plot([-0.5, width - 0.5], [row - 0.5, row - 0.5], color="#d0d0d0", lw=0.6)
    for col in range(width + 1):
        ax.plot([col - 0.5, col - 0.5], [-0.5, height - 0.5], color="#d0d0d0", lw=0.6)
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(height - 0.3, -0.7)
    ax.set_aspect("equal")
    ax.set(xticks=[], yticks=[])
    ax.axis("off")


def _region(ax, top, left, height, width, color, fill=True, lw=2.0, dashed=False):
    """Outlines (and lightly fills) the tokens ``[top, top + height) x [left, left + width)``."""
    corner = (left - 0.5, top - 0.5)
    if fill:
        ax.add_patch(patches.Rectangle(corner, width, height, facecolor=color, alpha=0.16, edgecolor="none"))
    ax.add_patch(patches.Rectangle(corner, width, height, fill=False, edgecolor=color, lw=lw,
                                   linestyle="--" if dashed else "-"))


def _query(ax, row, col):
    ax.add_patch(patches.Rectangle((col - 0.5, row - 0.5), 1, 1, facecolor=QUERY_COLOR, edgecolor="none", zorder=3))


def _focal_levels(ax, layer, height, width):
    """A token grid with the receptive field of every level of ``layer`` around the centre token."""
    row, col = height // 2, width // 2
    masks = receptive.receptive_field_mask(height, width, (row, col), layer.focal_level, layer.focal_window,
                                           layer.focal_factor)
    _grid(ax, height, width)
    for level in range(layer.focal_level, 0, -1):  # largest first, so the smaller ones stay visible
        rows, cols = masks[level - 1].nonzero()
        _region(ax, rows.min(), cols.min(), rows.max() - rows.min() + 1, cols.max() - cols.min() + 1,
                _level_color(level, layer.focal_level))
    if _switch(layer, "global_context"):
        _region(ax, 0, 0, height, width, GLOBAL_COLOR, fill=False, lw=2.5, dashed=True)
    _query(ax, row, col)


def _switch(layer, name):
    """An ablation switch of a ``focaledu.ablation_layers`` layer; the official layers have it on."""
    return layer.get_config().get(name, True)


def _level_color(level, levels):
    """Colour of level ``level`` (1-based) of a layer with ``levels`` convolutional levels."""
    return GLOBAL_COLOR if level > levels else LEVEL_COLORS[(level - 1) % len(LEVEL_COLORS)]


def _shape(*sizes):
    return "(" + ", ".join(str(s) for s in sizes) + ")"


# --------------------------------------------------------------------------
# Argument checks.
# --------------------------------------------------------------------------


def _modulation(name, layer):
    if not isinstance(layer, FocalModulation):
        hint = " (for a FocalNetBlock, pass block.modulation)" if isinstance(layer, FocalNetBlock) else ""
        raise TypeError(
            f"`{name}` must be a focaledu.FocalModulation layer{hint}; received {type(layer).__name__}."
        )
    return layer


def _grid_size(name, grid):
    """``grid`` as ``(height, width)`` from an int or a pair of positive ints."""
    pair = (grid, grid) if isinstance(grid, numbers.Integral) else grid
    try:
        height, width = pair
    except (TypeError, ValueError):
        height = width = None
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in (height, width)):
        raise ValueError(
            f"`{name}` must be a positive int or a (height, width) pair of positive ints; received {name}={grid!r}."
        )
    return int(height), int(width)


def _fields(layer):
    """``(kernels, fields)`` of a ``FocalModulation``'s convolutional levels, from ``focaledu.receptive``."""
    fields = receptive.receptive_fields(layer.focal_level, layer.focal_window, layer.focal_factor)[:-1]
    return list(layer.kernel_sizes), fields


# --------------------------------------------------------------------------
# The diagrams.
# --------------------------------------------------------------------------


def attention_vs_modulation():
    """Self-attention (interaction, then aggregation) beside focal modulation (aggregation, then interaction)."""
    fig, ax = _canvas(10, 4.9, "Self-attention and focal modulation: same job, opposite order")
    tokens, query, step = 7, 3, 0.36
    y_tokens, y_mid, y_out = 0.75, 2.25, 3.65

    def cell(x, y, color, alpha=1.0):
        ax.add_patch(patches.Rectangle((x - 0.12, y - 0.12), 0.24, 0.24, facecolor=color, alpha=alpha,
                                       edgecolor=INK, lw=0.8, zorder=3))

    def caption(x, y, head, body, color=INK):
        ax.text(x, y + 0.12, head, ha="left", va="bottom", fontsize=10, weight="bold")
        ax.text(x, y + 0.04, body, ha="left", va="top", fontsize=9, linespacing=1.4, color=color)

    for x0, name, order in ((2.45, "Self-attention", "interaction, then aggregation"),
                            (7.55, "Focal modulation", "aggregation, then interaction")):
        ax.text(x0, 4.22, f"{name}:\n{order}", ha="center", va="center", fontsize=11, weight="bold")
    ax.plot([5.05, 5.05], [0.3, 4.6], color="#d0d0d0", lw=1)
    for x0 in (0.55, 5.6):
        for j in range(tokens):
            cell(x0 + j * step, y_tokens, QUERY_COLOR if j == query else "#bdbdbd")
        ax.text(x0 - 0.25, y_tokens, "$x$", ha="right", va="center", fontsize=10)
        ax.text(x0 + query * step, y_tokens - 0.2, "$x_i$", ha="center", va="top", fontsize=10, color=QUERY_COLOR)
        _box(ax, x0 + query * step, y_out, 0.5, 0.32, "$y_i$", edge=QUERY_COLOR)
    # Self-attention: query x_i meets every key, then a weighted sum of all values.
    x0 = 0.55
    xq = x0 + query * step
    weights = (0.05, 0.1, 0.3, 0.25, 0.15, 0.1, 0.05)
    for j in range(tokens):
        xj = x0 + j * step
        _line(ax, [(xq, y_tokens + 0.12), (xj, y_mid - 0.12)], color=QUERY_COLOR, lw=1.0)
        _line(ax, [(xj, y_tokens + 0.12), (xj, y_mid - 0.12)], color="#9e9e9e", lw=0.8)
        cell(xj, y_mid, QUERY_COLOR, alpha=0.15 + 2.5 * weights[j])
        _line(ax, [(xj, y_mid + 0.12), (xq, y_out - 0.16)], color=INK, lw=0.6 + 6 * weights[j])
    ax.text(x0 - 0.25, y_mid, "$a_{ij}$", ha="right", va="center", fontsize=10)
    x_text = x0 + 2.45
    caption(x_text, y_mid - 0.55, "1. interaction",
            "query $q_i$ meets every\nkey $k_j$: scores $a_{ij}$ =\nsoftmax$_j(q_i \\cdot k_j)$;\n"
            "all queries: N x N scores")
    caption(x_text, y_out + 0.05, "2. aggregation", "$y_i = \\Sigma_j\\, a_{ij}\\, v_j$:\nall N values, weighted")
    # Focal modulation: context gathered around every position, then q_i * m_i.
    x0 = 5.6
    xq = x0 + query * step
    for j in range(tokens):
        xj = x0 + j * step
        if j != query:
            for n in (j - 1, j, j + 1):
                if 0 <= n < tokens:
                    _line(ax, [(x0 + n * step, y_tokens + 0.12), (xj, y_mid - 0.12)], color="#c8c8c8", lw=0.7)
        cell(xj, y_mid, "#cfe3f3" if j == query else "#eeeeee")
    for level, reach in ((2, 2), (1, 1)):
        for n in range(query - reach, query + reach + 1):
            _line(ax, [(x0 + n * step, y_tokens + 0.12), (xq, y_mid - 0.12)], color=LEVEL_COLORS[level - 1],
                  lw=1.5)
    ax.text(x0 - 0.25, y_mid, "$m$", ha="right", va="center", fontsize=10)
    y_mul = y_out - 0.65
    _arrow(ax, (xq, y_mid + 0.12), (xq, y_mul - 0.15))
    _circle(ax, xq, y_mul, "$\\odot$", radius=0.15)
    _arrow(ax, (xq, y_mul + 0.15), (xq, y_out - 0.16))
    _box(ax, xq + 0.95, y_mul, 0.55, 0.3, "$q_i$", edge=QUERY_COLOR)
    _arrow(ax, (xq + 0.675, y_mul), (xq + 0.15, y_mul), color=QUERY_COLOR)
    x_text = x0 + 2.45
    caption(x_text, y_mid - 0.55, "1. aggregation",
            "context $m_j$ gathered\naround every position,\nbefore any query meets it:")
    for index, text in enumerate(("level 1: nearest tokens", "level 2: a wider window")):
        ax.text(x_text, y_mid - 1.3 - 0.22 * index, text, ha="left", va="top", fontsize=9, color=LEVEL_COLORS[index])
    ax.text(x_text, y_mid - 1.74, "global: all tokens", ha="left", va="top", fontsize=9)
    caption(x_text, y_out + 0.05, "2. interaction", "$y_i = q_i \\odot m_i$: each query\nmeets only its own\ncontext, element-wise")
    return fig


def _attention_layer(name, layer):
    if not isinstance(layer, MultiHeadSelfAttention):
        hint = (" (for a SelfAttentionBlock or FocalNetBlock(mixer=\"attention\"), pass block.attn)"
                if isinstance(getattr(layer, "attn", None), MultiHeadSelfAttention) else "")
        raise TypeError(f"`{name}` must be a focaledu.attention.MultiHeadSelfAttention layer{hint}; "
                        f"received {type(layer).__name__}.")
    return layer


def _attention_shapes(layer, tokens):
    """Per-image shapes of every tensor of ``layer`` on ``tokens`` tokens, traced symbolically (nothing runs)."""
    if not layer.built:
        config = dict(layer.get_config(), relative_position_bias=False)
        copy = MultiHeadSelfAttention.from_config(config)
        copy.build((None, tokens, layer.dim))
        layer = copy
    x = keras.KerasTensor((1, tokens, layer.dim))
    q, k, v = (keras.KerasTensor(dense.compute_output_shape(x.shape)) for dense in (layer.q, layer.k, layer.v))
    heads = [split_heads(t, layer.num_heads) for t in (q, k, v)]
    scores = ops.matmul(heads[0], ops.swapaxes(heads[1], -1, -2))
    mixed = ops.matmul(scores, heads[2])
    merged = merge_heads(mixed)
    y = layer.proj.compute_output_shape(merged.shape)
    shapes = dict(x=x.shape, q=q.shape, Q=heads[0].shape, K=heads[1].shape, V=heads[2].shape,
                  scores=scores.shape, mixed=mixed.shape, merged=merged.shape, y=y)
    units = {name: getattr(layer, name).units for name in ("q", "k", "v", "proj")}
    return {name: tuple(shape[1:]) for name, shape in shapes.items()}, units


def self_attention(layer, num_tokens=None):
    """A ``MultiHeadSelfAttention`` step by step, with the per-image shape of every tensor for ``num_tokens`` tokens.

    Args:
        layer: a ``focaledu.attention.MultiHeadSelfAttention``, built or not.
        num_tokens: ``N``; default the layer's grid if it has a relative position bias and is built, else 196.
    """
    layer = _attention_layer("layer", layer)
    grid = getattr(layer, "_bias_grid", None) if layer.built and layer.relative_position_bias else None
    grid_tokens = grid[0] * grid[1] if grid else None
    if num_tokens is None:
        num_tokens = grid_tokens or 14 * 14
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, numbers.Integral) or num_tokens < 1:
        raise ValueError(f"`num_tokens` must be a positive int (N, e.g. 14 * 14 = 196 for a 14×14 map); "
                         f"received num_tokens={num_tokens!r}.")
    if grid_tokens and num_tokens != grid_tokens:
        raise ValueError(f"`num_tokens` must be {grid_tokens}: this layer's position bias was built for a "
                         f"{grid[0]}×{grid[1]} grid; received num_tokens={num_tokens!r}.")
    shapes, units = _attention_shapes(layer, int(num_tokens))
    N, C = shapes["x"]
    h, d = layer.num_heads, layer.head_dim
    fig, ax = _canvas(10, 6.8, f"Multi-head self-attention: N = {N} tokens of C = {C} channels, "
                               f"{h} head{'s' if h > 1 else ''} of d = {d}")

    def linear(name, extra=""):
        return f"{name}: Linear\n{C} → {units[name]}{extra}"

    # The score matrix (front square: one head; the heads behind it), with Q on its left and K^T on top,
    # all to scale: N tokens span the side S, d channels span S * d / N.
    xm, ym, S, offset = 4.6, 1.35, 2.3, 0.07
    behind = min(h, 6) - 1
    thick = S * d / N
    to_scale = 0.05 <= thick <= 0.45
    thick = min(max(thick, 0.05), 0.45)
    for i in range(behind, -1, -1):
        ax.add_patch(patches.Rectangle((xm + i * offset, ym + i * offset), S, S, facecolor="#e3eef9",
                                       edgecolor=INK, lw=1.0 if i else 1.4, zorder=2))
    row = ym + S - 0.3  # one query's row: its scores against all N keys
    ax.add_patch(patches.Rectangle((xm, row), S, 0.1, facecolor=QUERY_COLOR, alpha=0.35, edgecolor="none", zorder=2))
    ax.text(xm + S / 2, row - 0.06, "row i: query i against all N keys", ha="center", va="top", fontsize=9,
            color=QUERY_COLOR, zorder=3)
    stack_right, stack_top = xm + S + behind * offset, ym + S + behind * offset
    lines = [f"scores S = Q Kᵀ / √{d}", _shape(*shapes["scores"])]
    if layer.relative_position_bias:
        lines.append("+ relative position bias")
    lines += ["softmax over each row:", "weights A, same shape"]
    if layer.attn_drop_rate:
        lines.append(f"dropout {layer.attn_drop_rate:g} on A")
    ax.text(xm + S / 2, ym + S / 2 - 0.1, "\n".join(lines), ha="center", va="center", fontsize=10,
            linespacing=1.4, zorder=3)
    scale = "drawn to scale against Q and Kᵀ" if to_scale else "Q and Kᵀ not to scale"
    ax.text(xm + S / 2, ym - 0.12, f"{N} × {N} per head: {N * N:,} scores; {scale}", ha="center", va="top",
            fontsize=9)
    x_q = xm - 0.12 - thick
    ax.add_patch(patches.Rectangle((x_q, ym), thick, S, facecolor=QUERY_COLOR, alpha=0.5, edgecolor=INK, lw=1.0))
    y_k = stack_top + 0.15
    ax.add_patch(patches.Rectangle((xm, y_k), S, thick, facecolor="#bdbdbd", edgecolor=INK, lw=1.0))

    # x and the three projections; q feeds Q (left of S), k feeds K^T (above S), v runs below S.
    y_x, y_row_k, y_v = ym + S / 2, y_k + thick / 2, 0.6
    _box(ax, 0.75, y_x, 1.0, 0.55, f"x\n{_shape(*shapes['x'])}")
    x_proj = 2.3
    for name, y in (("q", y_x), ("k", y_row_k), ("v", y_v)):
        _box(ax, x_proj, y, 1.2, 0.52, linear(name), fontsize=9)
        if y == y_x:
            _arrow(ax, (1.25, y), (x_proj - 0.6, y))
        else:
            edge = y_x + (0.275 if y > y_x else -0.275)
            _line(ax, [(0.75, edge), (0.75, y)])
            _arrow(ax, (0.75, y), (x_proj - 0.6, y))
    _arrow(ax, (x_proj + 0.6, y_x), (x_q, y_x), color=QUERY_COLOR)
    ax.text(x_q - 0.08, y_x + 0.08, f"Q {_shape(*shapes['Q'])}", ha="right", va="bottom", fontsize=9,
            color=QUERY_COLOR)
    _arrow(ax, (x_proj + 0.6, y_row_k), (xm, y_row_k))
    ax.text(xm + S / 2, y_k + thick + 0.06, f"Kᵀ {_shape(*shapes['K'][:-2], *shapes['K'][:-3:-1])}",
            ha="center", va="bottom", fontsize=9)
    split = (f"split into {h} head{'s' if h > 1 else ''} of {d} channels:\n"
             f"{_shape(*shapes['q'])} → {_shape(N, h, d)} → {_shape(*shapes['Q'])}")
    if not layer.qkv_bias:
        split += "\nq, k, v without biases (qkv_bias=False)"
    ax.text(1.25, ym + 0.5, split, ha="left", va="top", fontsize=9, linespacing=1.4)

    # Weighted sum of V, merge heads, proj, y: up the right column.
    x_out = 8.9
    _box(ax, x_out, y_x, 1.7, 0.55, f"weighted sum A V\n{_shape(*shapes['mixed'])}", fontsize=9)
    _arrow(ax, (stack_right, y_x), (x_out - 0.85, y_x))
    ax.text((stack_right + x_out - 0.85) / 2, y_x + 0.06, "A", ha="center", va="bottom", fontsize=9)
    _line(ax, [(x_proj + 0.6, y_v), (x_out, y_v)])
    _arrow(ax, (x_out, y_v), (x_out, y_x - 0.275))
    ax.text(x_proj + 0.75, y_v + 0.06, f"V {_shape(*shapes['V'])}", ha="left", va="bottom", fontsize=9)
    proj_drop = f"\n+ dropout {layer.proj_drop_rate:g}" if layer.proj_drop_rate else ""
    steps = [(f"merge heads\n{_shape(*shapes['merged'])}", 0.55), (linear("proj", proj_drop), 0.55 + 0.2 * bool(proj_drop)),
             (f"y\n{_shape(*shapes['y'])}", 0.55)]
    y, top = y_x, y_x + 0.275
    for text, box_h in steps:
        y = top + 0.35 + box_h / 2
        _arrow(ax, (x_out, top), (x_out, y - box_h / 2))
        _box(ax, x_out, y, 1.4, box_h, text, fontsize=9)
        top = y + box_h / 2

    # How many numbers each tensor holds, per image: the scores dominate and grow as N^2.
    counts = [("x", math.prod(shapes["x"])), ("Q, K, V", 3 * math.prod(shapes["Q"])),
              ("scores S", math.prod(shapes["scores"]))]
    biggest = max(count for _, count in counts)
    y_panel = 6.2
    ax.text(0.3, y_panel, "numbers held per image", ha="left", va="center", fontsize=10, weight="bold")
    for index, (name, count) in enumerate(counts):
        y = y_panel - 0.3 - 0.26 * index
        ax.text(0.3, y, name, ha="left", va="center", fontsize=9)
        ax.add_patch(patches.Rectangle((1.2, y - 0.08), max(2.0 * count / biggest, 0.02), 0.16,
                                       facecolor=QUERY_COLOR if name == "scores S" else "#bdbdbd"))
        ax.text(1.2 + max(2.0 * count / biggest, 0.02) + 0.08, y, f"{count:,}", ha="left", va="center", fontsize=9)
    ratio = counts[2][1] / counts[0][1]
    ax.text(0.3, y_panel - 1.12, f"S holds {ratio:.3g}× as many as x; twice the tokens: 2× x, 4× S",
            ha="left", va="center", fontsize=9)
    return fig


def receptive_fields(layer, grid=None):
    """Each level of a ``FocalModulation`` on a token grid: kernel size and receptive field around one query.

    Args:
        layer: a ``focaledu.FocalModulation``.
        grid: an int or ``(height, width)``; default the last level's receptive field plus one token each side.
    """
    layer = _modulation("layer", layer)
    kernels, fields = _fields(layer)
    height, width = _grid_size("grid", fields[-1] + 2 if grid is None else grid)
    fig, ax = _canvas(9.5, 5.2, f"Hierarchical contextualization: {layer.focal_level} levels on a grid "
                                f"of {height}×{width} tokens")
    _focal_levels(fig.add_axes((0.02, 0.03, 0.46, 0.84)), layer, height, width)

    x, y = 4.9, 4.2
    ax.add_patch(patches.Rectangle((x, y - 0.1), 0.2, 0.2, facecolor=QUERY_COLOR))
    ax.text(x + 0.35, y, "query token", va="center", fontsize=10)
    rows = [(f"level {l + 1}", f"kernel {k}×{k}", f"sees {r}×{r} tokens", _level_color(l + 1, len(kernels)))
            for l, (k, r) in enumerate(zip(kernels, fields))]
    if _switch(layer, "global_context"):
        rows.append((f"level {layer.focal_level + 1}", "global mean", f"sees all {height}×{width}", GLOBAL_COLOR))
    for index, (name, kernel, field, color) in enumerate(rows):
        y = 3.6 - 0.45 * index
        ax.add_patch(patches.Rectangle((x, y - 0.1), 0.2, 0.2, facecolor=color, alpha=0.6, edgecolor=color))
        ax.text(x + 0.35, y, name, va="center", fontsize=10, weight="bold", color=color)
        ax.text(x + 1.2, y, kernel, va="center", fontsize=10)
        ax.text(x + 2.65, y, field, va="center", fontsize=10)
    notes = ["Each level convolves the previous one, so a level's",
             "field is the previous field plus its kernel minus 1:",
             "$r_l = r_{l-1} + k_l - 1$ (stacked small kernels)."]
    if fields[-1] > min(height, width):
        notes.append(f"The {height}×{width} grid cuts the largest field at the border.")
    ax.text(x, 3.6 - 0.45 * len(rows) - 0.1, "\n".join(notes), va="top", fontsize=9, linespacing=1.5, color=INK)
    return fig


def modulation_flow(layer, input_shape):
    """The data flow of a ``FocalModulation`` with the tensor shape at every step.

    Args:
        layer: a ``focaledu.FocalModulation``.
        input_shape: ``(H, W, C)`` of one input, ``C`` the layer's ``dim``.
    """
    layer = _modulation("layer", layer)
    try:
        valid = len(input_shape) == 3 and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in input_shape)
    except TypeError:
        valid = False
    if not valid or input_shape[-1] != layer.dim:
        raise ValueError(
            f"`input_shape` must be (H, W, C) with positive ints and C equal to the layer's dim={layer.dim}; "
            f"received input_shape={input_shape!r}."
        )
    height, width, C = (int(s) for s in input_shape)
    kernels, _ = _fields(layer)
    L, levels = layer.focal_level, layer.num_levels
    full = _shape(height, width, C)
    gate_channels = layer.f.units - 2 * C
    row_h = 0.72
    top = 0.6 + row_h * (levels + 1) + (0.6 if _switch(layer, "gating") else 0)
    fig, ax = _canvas(10, top + 0.75, f"Focal modulation: data flow for an input of shape {full}, L = {L}")
    y_q = top
    y_level = [top - row_h * (i + 1) for i in range(levels + 1)]  # Z^0 .. Z^{L(+1)}
    y_mid = (y_level[1] + y_level[-1]) / 2
    y_f = y_level[0]
    x_chain, x_op, x_sum, x_h, x_out = 4.5, 6.2, 6.95, 8.15, 9.4
    # Input, f, and its three outputs: q along the top, Z^0 into the chain, the gates below.
    _box(ax, 0.72, y_f, 1.1, 0.55, f"input x\n{full}")
    _arrow(ax, (1.27, y_f), (1.62, y_f))
    _box(ax, 2.3, y_f, 1.35, 0.55, f"f: Linear\n{C} → {layer.f.units}")
    split = f"= {C} + {C} + {gate_channels}" if gate_channels else f"= {C} + {C}"
    ax.text(2.3, y_f - 0.34, split, ha="center", va="top", fontsize=9)
    _line(ax, [(2.3, y_f + 0.28), (2.3, y_q)], color=QUERY_COLOR)
    _arrow(ax, (2.3, y_q), (x_h - 0.16, y_q), color=QUERY_COLOR)
    ax.text(2.45, y_q + 0.07, f"query q {full}", ha="left", va="bottom", fontsize=10, color=QUERY_COLOR)
    _arrow(ax, (2.98, y_f), (x_chain - 0.8, y_f))
    _box(ax, x_chain, y_f, 1.6, 0.42, f"$Z^0$ {full}")
    if _switch(layer, "gating"):
        y_bus = y_level[-1] - 0.6
        _arrow(ax, (2.3, y_f - 0.55), (2.3, y_bus + 0.25))
        _box(ax, 2.3, y_bus, 1.35, 0.5, f"gates G\n{_shape(height, width, gate_channels)}")
        _line(ax, [(2.98, y_bus), (x_op, y_bus), (x_op, y_level[-1])], color=OFF, linestyle="--", lw=1.1)
        _line(ax, [(x_op, y_level[1]), (x_op, y_level[-1])], color=OFF, linestyle="--", lw=1.1)
        ax.text(4.2, y_bus - 0.06, "channel l of G is the gate $g^l$", ha="center", va="top", fontsize=9)
    for level in range(1, levels + 1):
        y, color = y_level[level], _level_color(level, L)
        if level <= L:
            label, shape = f"DWConv {kernels[level - 1]}×{kernels[level - 1]} + GELU", full
        else:
            label, shape = "mean over H, W + GELU", _shape(1, 1, C)
        _arrow(ax, (x_chain, y_level[level - 1] - 0.21), (x_chain, y + 0.21), color=color)
        ax.text(x_chain - 0.08, (y_level[level - 1] + y) / 2, label, ha="right", va="center", fontsize=9,
                color=color)
        _box(ax, x_chain, y, 1.6, 0.42, f"$Z^{{{level}}}$ {shape}", edge=color)
        start = (x_chain + 0.8, y)
        if _switch(layer, "gating"):
            _arrow(ax, start, (x_op - 0.14, y), color=color)
            _circle(ax, x_op, y, "$\\times$", radius=0.14, edge=color)
            ax.text(x_op - 0.16, y + 0.05, f"$g^{{{level}}}$", ha="right", va="bottom", fontsize=9, color=color)
            start = (x_op + 0.14, y)
        _arrow(ax, start, _rim(start, (x_sum, y_mid), 0.17), color=color, lw=1.0)
    _circle(ax, x_sum, y_mid, "$\\Sigma$", radius=0.17)
    sum_note = f"sum {full}" + (f"\n/ {levels} levels" if layer.normalize_modulator else "")
    ax.text(x_sum + 0.05, y_mid - 0.3, sum_note, ha="left", va="top", fontsize=9)
    # h, then q * M on the query line, then (LayerNorm,) proj and the output down the right column.
    _arrow(ax, (x_sum + 0.17, y_mid), (x_h - 0.55, y_mid))
    _box(ax, x_h, y_mid, 1.1, 0.5, f"h: Linear\n{C} → {layer.h.units}")
    _arrow(ax, (x_h, y_mid + 0.25), (x_h, y_q - 0.16))
    ax.text(x_h - 0.08, y_q - 0.3, f"modulator M\n{full}", ha="right", va="top", fontsize=9)
    _circle(ax, x_h, y_q, "$\\odot$")
    ax.text(x_h, y_q + 0.2, "q $\\odot$ M", ha="center", va="bottom", fontsize=9)
    _line(ax, [(x_h + 0.16, y_q), (x_out, y_q)])
    steps = (["LayerNorm"] if layer.use_postln_in_modulation else []) + [
        f"proj: Linear\n{C} → {layer.proj.units}", f"output y\n{full}"]
    y = y_q
    for text in steps:
        _arrow(ax, (x_out, y), (x_out, y - 0.45))
        y -= 0.7
        _box(ax, x_out, y, 1.0, 0.5, text, fontsize=9)
        y -= 0.25
    return fig


def gated_aggregation(layer):
    """How a ``FocalModulation`` (``layer``) weighs its levels: each ``Z^l`` times its gate, summed, into ``h``."""
    layer = _modulation("layer", layer)
    kernels, fields = _fields(layer)
    L, C, levels = layer.focal_level, layer.dim, layer.num_levels
    row_h = 0.72
    height = 1.6 + row_h * levels
    fig, ax = _canvas(9.5, height, f"Gated aggregation: {levels} levels weighed at every position, then h")
    y_rows = [height - 1.0 - row_h * i for i in range(levels)]
    y_mid = (y_rows[0] + y_rows[-1]) / 2
    x_z, x_gate, x_sum, x_h, x_m = 1.3, 3.45, 4.95, 6.4, 8.3
    for level, y in enumerate(y_rows, start=1):
        color = _level_color(level, L)
        if level <= L:
            k, r = kernels[level - 1], fields[level - 1]
            context = f"$Z^{{{level}}}$ (H, W, {C})\nkernel {k}×{k}, sees {r}×{r}"
        else:
            context = f"$Z^{{{level}}}$ (1, 1, {C})\nglobal: the whole map"
        _box(ax, x_z, y, 2.0, 0.56, context, edge=color, fontsize=9)
        _arrow(ax, (x_z + 1.0, y), (x_gate - 0.5, y), color=color)
        gate = f"× $g^{{{level}}}$\n(H, W, 1)" if _switch(layer, "gating") else "× 1"
        _box(ax, x_gate, y, 1.0, 0.5, gate, edge=color, fill="white", fontsize=9)
        start = (x_gate + 0.5, y)
        _arrow(ax, start, _rim(start, (x_sum, y_mid), 0.18), color=color, lw=1.1)
    _circle(ax, x_sum, y_mid, "$\\Sigma$", radius=0.18)
    if layer.normalize_modulator:
        ax.text(x_sum, y_mid - 0.25, f"/ {levels}", ha="center", va="top", fontsize=9)
    _arrow(ax, (x_sum + 0.18, y_mid), (x_h - 0.6, y_mid))
    ax.text((x_sum + x_h - 0.42) / 2, y_mid + 0.06, f"(H, W, {C})", ha="center", va="bottom", fontsize=9)
    _box(ax, x_h, y_mid, 1.2, 0.5, f"h: Linear\n{C} → {layer.h.units}")
    _arrow(ax, (x_h + 0.6, y_mid), (x_m - 0.7, y_mid))
    _box(ax, x_m, y_mid, 1.4, 0.5, f"modulator M\n(H, W, {layer.h.units})")
    sum_text = "\\frac{1}{%d}\\sum" % levels if layer.normalize_modulator else "\\sum"
    gate_text = "g^l \\cdot " if _switch(layer, "gating") else ""
    y_text = y_rows[-1] - 0.65
    ax.text(0.3, y_text, f"$M = h\\left({sum_text}_{{l=1}}^{{{levels}}} {gate_text}Z^l\\right)$", ha="left",
            va="center", fontsize=11)
    if _switch(layer, "gating"):
        note = (f"The gates are the last {levels} channels of f(x): one raw number (no softmax)\n"
                f"per position and level, shared by all {C} channels of $Z^l$.")
    else:
        note = "gating=False: every level counts with weight 1."
    ax.text(3.4, y_text, note, ha="left", va="center", fontsize=9, linespacing=1.5)
    return fig


def _mixer_text(block):
    """Two lines naming a block's token mixer and its size."""
    mixer = block.token_mixer
    name = type(mixer).__name__
    if block.mixer == "focal":
        kernels = ", ".join(f"{k}×{k}" for k in mixer.kernel_sizes)
        return f"{name}\nL = {mixer.focal_level}, kernels {kernels}"
    if block.mixer == "dwconv":
        return f"{name}\nkernels " + ", ".join(f"{k}×{k}" for k in mixer.kernel_sizes)
    if block.mixer == "window":
        return f"{name}\n{mixer.window_size}×{mixer.window_size} windows, shift {mixer.shift_size}"
    return f"{name}\n{mixer.num_heads} heads over all tokens"


def focalnet_block(block):
    """A ``FocalNetBlock`` (``block``) around its mixer and its MLP; unused parts are drawn dashed."""
    if not isinstance(block, FocalNetBlock):
        raise TypeError(f"`block` must be a focaledu.FocalNetBlock; received {type(block).__name__}.")
    C, rate = block.dim, block.drop_path_rate
    height = 5.7
    y_in = height - 1.15
    norm = "post-norm" if block.use_postln else "pre-norm" if _switch(block, "pre_norm") else "no norm before the mixer"
    fig, ax = _canvas(9.5, height, f"FocalNetBlock: dim {C}, {norm}")

    def branch(x, norm, body, gamma):
        layer = getattr(block, norm)
        if not isinstance(layer, keras.layers.LayerNormalization):  # AblatedFocalNetBlock(pre_norm=False)
            norm_step = (f"{norm}: none (pre_norm=False)", True, FILL)
        else:
            norm_step = (f"{norm}: LayerNorm (ε {layer.epsilon:g})", False, FILL)
        steps = [body, norm_step] if block.use_postln else [norm_step, body]
        if block.use_layerscale:
            steps.append((f"× {gamma}: layerscale, init {block.layerscale_value:g}", False, FILL))
        else:
            steps.append(("layerscale: off", True, FILL))
        steps.append((f"drop path, rate {rate:g}", rate == 0, FILL))
        y = y_in - 0.8
        _arrow(ax, (x, y_in - 0.23), (x, y + 0.24))
        for index, (text, off, fill) in enumerate(steps):
            _box(ax, x, y, 2.9, 0.48, text, dashed=off, fill=fill, fontsize=9)
            y -= 0.8
            _arrow(ax, (x, y + 0.56), (x, y + (0.16 if index == len(steps) - 1 else 0.24)))
        _circle(ax, x, y, "+")
        # The residual: from the branch input, around the left of the boxes, into the sum.
        y_split = y_in - 0.36
        _line(ax, [(x, y_split), (x - 1.75, y_split), (x - 1.75, y)])
        ax.plot(x, y_split, "o", color=INK, markersize=4)
        _arrow(ax, (x - 1.75, y), (x - 0.16, y))
        ax.text(x - 1.82, (y_split + y) / 2, "residual", rotation=90, ha="right", va="center", fontsize=9)
        return y

    mixer = (_mixer_text(block), False, "#e3eef9")
    hidden = block.mlp.hidden_dim
    mlp = (f"Mlp: Linear {C} → {hidden}, GELU,\nLinear {hidden} → {C}  (mlp_ratio {block.mlp_ratio:g})", False,
           "#fdebd9")
    x_left, x_right, x_link = 2.75, 7.4, 5.1
    for x, title in ((x_left, "token mixing"), (x_right, "channel mixing")):
        ax.text(x, height - 0.68, title, ha="center", va="center", fontsize=10, weight="bold")
    _box(ax, x_left, y_in, 1.6, 0.45, f"x (H, W, {C})")
    y_end = branch(x_left, "norm1", mixer, "$\\gamma_1$")
    _line(ax, [(x_left, y_end - 0.16), (x_left, y_end - 0.4), (x_link, y_end - 0.4), (x_link, y_in)])
    _arrow(ax, (x_link, y_in), (x_right - 0.8, y_in))
    _box(ax, x_right, y_in, 1.6, 0.45, f"(H, W, {C})")
    y_end = branch(x_right, "norm2", mlp, "$\\gamma_2$")
    _arrow(ax, (x_right + 0.16, y_end), (9.3, y_end))
    ax.text(9.3, y_end + 0.12, f"output\n(H, W, {C})", ha="right", va="bottom", fontsize=9)
    return fig


def _conv_text(embed):
    """``"k×k, stride s"`` of a ``PatchEmbedding``'s convolution."""
    k, stride = embed.proj.kernel_size[0], embed.proj.strides[0]
    return f"{k}×{k}, stride {stride}"


def network(model):
    """A ``FocalNet`` (``model``): stem, stages, downsampling and head, every number read from the model's layers."""
    if not isinstance(model, FocalNet):
        raise TypeError(f"`model` must be a focaledu.FocalNet; received {type(model).__name__}.")
    stages = {}
    for name in model.block_names:  # layers_{stage}_blocks_{index}
        stages.setdefault(int(name.split("_")[1]), []).append(model.get_layer(name))
    entries = [model.get_layer("stem")] + [model.get_layer(f"layers_{i}_downsample") for i in list(stages)[1:]]
    maps = [tuple(layer.output.shape[1:]) for layer in entries]  # (H, W, C) each stage works on
    n = len(stages)
    w_stage, gap, w_ds = 1.2, 0.32, 0.7
    width = 0.2 + 0.8 + gap + 1.15 + gap + n * w_stage + (n - 1) * w_ds + 0.2
    height = 4.6
    width = max(width, 6.0)
    image_h, image_w = model.image_size
    depths = "-".join(str(len(b)) for b in stages.values())
    fig, ax = _canvas(width, height, f"FocalNet on {image_h}×{image_w} images: " + (
        f"{n} stages, depths {depths}" if n > 1 else f"1 stage of {depths} blocks"))
    y = 2.65
    x = 0.2 + 0.4
    _box(ax, x, y, 0.8, 0.8, f"image\n{image_h}×{image_w}\n×{model.in_chans}", fontsize=9)
    _arrow(ax, (x + 0.4, y), (x + 0.4 + gap, y))
    x += 0.4 + gap + 0.575
    stem = entries[0]
    _box(ax, x, y, 1.15, 1.0, f"stem\n{_conv_text(stem)}\n{model.in_chans} → {stem.embed_dim}"
         + ("\n+ LayerNorm" if stem.use_norm else ""), fontsize=9)
    x += 0.575
    first = maps[0][0]
    for index, (stage, blocks) in enumerate(stages.items()):
        h, w, c = maps[index]
        if index:
            down = entries[index]
            _arrow(ax, (x, y), (x + w_ds, y))
            k = down.proj.kernel_size[0]
            ax.text(x + w_ds / 2, y + 0.08, f"{k}×{k} /{down.proj.strides[0]}", ha="center", va="bottom", fontsize=9)
            ax.text(x + w_ds / 2, y - 0.08, f"{maps[index - 1][2]}→{c}", ha="center", va="top", fontsize=9)
            x += w_ds
        else:
            _arrow(ax, (x, y), (x + gap, y))
            x += gap
        block = blocks[0]
        if block.mixer == "focal":
            kernels = ", ".join(str(k) for k in block.modulation.kernel_sizes)
            mixer = f"L {block.focal_level}, k {kernels}"
        else:
            mixer = block.mixer
        box_h = 1.15 + 1.0 * h / first
        _box(ax, x + w_stage / 2, y, w_stage, box_h, f"stage {stage}\n{len(blocks)} blocks\n{h}×{w}×{c}\n{mixer}",
             fill="#e3eef9", fontsize=9)
        ax.text(x + w_stage / 2, y - box_h / 2 - 0.08, f"{h * w} tokens", ha="center", va="top", fontsize=9)
        x += w_stage
    last = maps[-1][2]
    head = (f"LayerNorm, avg pool\nLinear {last} → {model.num_classes}" if model.num_classes
            else f"LayerNorm, avg pool\n{last} features")
    x_stage = x - w_stage / 2
    x_head = min(x_stage, width - 1.0)
    _line(ax, [(x_stage, y - box_h / 2 - 0.35), (x_stage, 1.25), (x_head, 1.25)])
    _arrow(ax, (x_head, 1.25), (x_head, 0.95))
    _box(ax, x_head, 0.7, 1.6, 0.5, head, fontsize=9)
    notes = ["L: focal levels, k: their kernel sizes."]
    if n > 1:
        norm = " and a LayerNorm" if entries[1].use_norm else ""
        notes += ["k×k /s between stages: PatchEmbedding downsampling, a k×k", f"convolution of stride s{norm}: "
                  "H and W halve, the width doubles."]
    ax.text(0.2, 0.7, "\n".join(notes), ha="left", va="center", fontsize=9, linespacing=1.4)
    return fig


def window_vs_focal(layer, grid, window_size):
    """What the centre query sees: Swin's window attention, its shifted windows, and the focal levels of ``layer``.

    Args:
        layer: a ``focaledu.FocalModulation``.
        grid: the token grid, an int or ``(height, width)``.
        window_size: side of Swin's square windows; divides the grid or covers it.
    """
    layer = _modulation("layer", layer)
    height, width = _grid_size("grid", grid)
    if isinstance(window_size, bool) or not isinstance(window_size, numbers.Integral) or window_size < 1:
        raise ValueError(f"`window_size` must be a positive int; received window_size={window_size!r}.")
    window_h, window_w, shift = window_plan(height, width, window_size, window_size // 2)
    row, col = height // 2, width // 2
    _, fields = _fields(layer)
    fig, ax = _canvas(10, 4.6, f"What one query sees on a grid of {height}×{width} tokens")
    panels = [fig.add_axes((0.015 + 0.33 * i, 0.22, 0.3, 0.64)) for i in range(3)]

    def windows(panel, offset, title):
        _grid(panel, height, width)
        bounds = []
        for axis, (size, extent, centre) in enumerate(((window_h, height, row), (window_w, width, col))):
            cuts = sorted({0, extent} | {c for c in range(offset % size, extent, size) if 0 < c < extent})
            for cut in cuts[1:-1]:
                if axis == 0:  # a cut between rows
                    _line(panel, [(-0.5, cut - 0.5), (width - 0.5, cut - 0.5)], lw=1.6)
                else:
                    _line(panel, [(cut - 0.5, -0.5), (cut - 0.5, height - 0.5)], lw=1.6)
            start = max(c for c in cuts if c <= centre)
            bounds.append((start, min(c for c in cuts if c > centre) - start))
        (top, rows), (left, cols) = bounds
        _region(panel, top, left, rows, cols, QUERY_COLOR)
        _query(panel, row, col)
        panel.set_title(title, fontsize=10)
        return rows * cols

    seen = windows(panels[0], 0, f"window attention, {window_h}×{window_w} windows")
    captions = [[f"the query attends to the {seen} tokens", "of its window, wherever it sits in it"]]
    seen = windows(panels[1], shift, f"shifted windows (shift {shift})")
    if shift:
        captions.append([f"next block: {seen} tokens of its shifted", "window (Swin masks wrapped parts)"])
    else:
        captions.append(["no shift: a window that covers", "the whole map needs none"])
    _focal_levels(panels[2], layer, height, width)
    panels[2].set_title(f"focal modulation, {layer.focal_level} levels"
                        + (" + global" if _switch(layer, "global_context") else ""), fontsize=10)
    for index, lines in enumerate(captions):
        ax.text(1.5 + 3.3 * index, 0.75, "\n".join(lines), ha="center", va="top", fontsize=9, linespacing=1.4)
    items = [(f"level {l + 1}: {r}×{r}", _level_color(l + 1, layer.focal_level)) for l, r in enumerate(fields)]
    if _switch(layer, "global_context"):
        items.append((f"level {layer.focal_level + 1}: all {height * width}", GLOBAL_COLOR))
    for index, (text, color) in enumerate(items):
        ax.text(6.95 + 1.55 * (index % 2), 0.75 - 0.25 * (index // 2), text, ha="left", va="top", fontsize=9,
                color=color)
    return fig
