"""Diagrams: each draws for several configs, prints the object's own numbers, keeps its text readable, rejects bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402
from matplotlib import patches  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from focaledu import FocalModulation, FocalNet, FocalNetBlock, diagrams, receptive  # noqa: E402
from focaledu.ablation_layers import AblatedFocalModulation, AblatedFocalNetBlock  # noqa: E402
from focaledu.attention import MultiHeadSelfAttention, SelfAttentionBlock, split_heads, window_plan  # noqa: E402

pytestmark = pytest.mark.backends

LAYERS = [
    dict(dim=96, focal_level=2, focal_window=3),
    dict(dim=64, focal_level=3, focal_window=3),
    dict(dim=32, focal_level=4, focal_window=5),
    dict(dim=32, focal_level=2, focal_window=3, focal_factor=4),
]
VARIANTS = [
    dict(dim=32, focal_level=1, focal_window=3, gating=False, normalize_modulator=True),
    dict(dim=32, focal_level=2, focal_window=3, global_context=False, use_postln_in_modulation=True),
]
SWITCHES = {"gating", "global_context", "pre_norm"}


def build(official, ablated, config):
    """The official layer, or Chapter 10's ablated one when ``config`` sets an ablation switch."""
    return (ablated if SWITCHES & set(config) else official)(**config)


def switch(layer, name):
    return layer.get_config().get(name, True)  # the official layers have every switch on


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(fig):
    return [t.get_text() for t in fig.findobj(Text)]


def joined(fig):
    return "\n".join(texts(fig))


def shown(fig):
    """The Text artists a reader sees: titles and labels, not the hidden tick labels of grid axes."""
    artists = list(fig.texts)
    for ax in fig.axes:
        artists += [t for t in ax.texts + [ax.title] if t.get_text().strip()]
    return artists


def assert_readable(fig):
    """Every visible text lies inside the figure and no two texts overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in shown(fig)]
    for text, box in boxes:
        assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, f"{text!r} is cut at the side"
        assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1, f"{text!r} is cut at the top or bottom"
    for index, (text, box) in enumerate(boxes):
        for other, other_box in boxes[index + 1:]:
            width = min(box.x1, other_box.x1) - max(box.x0, other_box.x0)
            height = min(box.y1, other_box.y1) - max(box.y0, other_box.y0)
            assert width <= 1 or height <= 1, f"{text!r} overlaps {other!r}"
    width, height = fig.get_size_inches()
    assert 6 <= width <= 10.5 and height <= 8


def sizes_of(fig):
    return {t.get_fontsize() for t in shown(fig)}


def test_attention_vs_modulation_shows_the_two_orders():
    fig = diagrams.attention_vs_modulation()
    assert isinstance(fig, Figure)
    assert_readable(fig)
    assert min(sizes_of(fig)) >= 9
    steps = {t.get_text(): t.get_position()[0] for t in shown(fig) if t.get_text()[:2] in ("1.", "2.")}
    # Left panel (self-attention): interaction first; right panel (focal modulation): aggregation first.
    assert steps["1. interaction"] < 5 < steps["1. aggregation"]
    assert steps["2. aggregation"] < 5 < steps["2. interaction"]


ATTENTION = [
    (dict(dim=64, num_heads=4), 14 * 14),
    (dict(dim=96, num_heads=3), 32 * 32),
    (dict(dim=64, num_heads=1), 16),
    (dict(dim=256, num_heads=8, qkv_bias=False, attn_drop=0.1, proj_drop=0.1), 64),
    (dict(dim=48, num_heads=6), 7),
]


@pytest.mark.parametrize("config, tokens", ATTENTION)
def test_self_attention_prints_the_layers_shapes(config, tokens):
    layer = MultiHeadSelfAttention(**config)
    unbuilt = joined(diagrams.self_attention(layer, num_tokens=tokens))
    assert not layer.built  # drawing an unbuilt layer leaves it unbuilt
    x = np.zeros((1, tokens, layer.dim), "float32")
    y, weights = layer(x, return_attention_scores=True)
    fig = diagrams.self_attention(layer, num_tokens=tokens)
    assert_readable(fig)
    all_text = joined(fig)
    assert all_text == unbuilt
    # Every shape printed is the shape of the tensor the layer computes, per image (batch axis dropped).
    per_image = lambda t: str(tuple(t.shape[1:]))  # noqa: E731
    q, k, v = (split_heads(dense(x), layer.num_heads) for dense in (layer.q, layer.k, layer.v))
    assert f"x\n{per_image(x)}" in all_text
    assert f"y\n{per_image(y)}" in all_text and y.shape == x.shape
    assert f"Q {per_image(q)}" in all_text
    assert f"Kᵀ {per_image(ops.swapaxes(k, -1, -2))}" in all_text
    assert f"V {per_image(v)}" in all_text
    assert f"scores S = Q Kᵀ / √{layer.head_dim}\n{per_image(weights)}" in all_text
    assert f"weighted sum A V\n{per_image(ops.matmul(weights, v))}" in all_text
    assert f"merge heads\n{per_image(x)}" in all_text
    for name in ("q", "k", "v", "proj"):
        assert f"{name}: Linear\n{layer.dim} → {getattr(layer, name).units}" in all_text
    assert f"split into {layer.num_heads} head" in all_text
    assert f"{tokens} × {tokens} per head: {tokens * tokens:,} scores" in all_text
    assert f"N = {tokens} tokens of C = {layer.dim} channels" in all_text
    for tensor in (x, weights):
        assert f"{np.size(ops.convert_to_numpy(tensor)):,}" in texts(fig)  # np.size of a torch tensor is its method
    assert f"{3 * np.size(ops.convert_to_numpy(q)):,}" in texts(fig)
    assert ("qkv_bias=False" in all_text) == (not layer.qkv_bias)
    assert (f"dropout {layer.attn_drop_rate:g} on A" in all_text) == bool(layer.attn_drop_rate)
    assert (f"+ dropout {layer.proj_drop_rate:g}" in all_text) == bool(layer.proj_drop_rate)
    # The score matrix is the biggest thing drawn; where Q fits to scale, Q is N x d against S's N x N.
    rects = [p for p in fig.axes[0].patches if type(p) is patches.Rectangle]
    side = max(p.get_width() for p in rects)
    assert max(p.get_width() * p.get_height() for p in fig.axes[0].patches
               if isinstance(p, (patches.Rectangle, patches.FancyBboxPatch))) == pytest.approx(side * side)
    if "drawn to scale" in all_text:
        assert any(p.get_height() == pytest.approx(side) and p.get_width() == pytest.approx(
            side * layer.head_dim / tokens) for p in rects)


def test_self_attention_reads_the_grid_of_a_position_bias():
    layer = MultiHeadSelfAttention(32, num_heads=2, relative_position_bias=True)
    layer(np.zeros((1, 6, 8, 32), "float32"))
    all_text = joined(diagrams.self_attention(layer))  # N defaults to the 6 x 8 grid
    assert "N = 48 tokens" in all_text and "+ relative position bias" in all_text
    with pytest.raises(ValueError, match="`num_tokens` must be 48.*6×8"):
        diagrams.self_attention(layer, num_tokens=49)
    assert "N = 196 tokens" in joined(diagrams.self_attention(MultiHeadSelfAttention(32)))


def _every_diagram():
    modulation = FocalModulation(96, focal_window=3, focal_level=3)
    yield diagrams.attention_vs_modulation()
    yield diagrams.self_attention(MultiHeadSelfAttention(64, num_heads=4), 196)
    yield diagrams.receptive_fields(modulation)
    yield diagrams.modulation_flow(modulation, (56, 56, 96))
    yield diagrams.gated_aggregation(modulation)
    yield diagrams.focalnet_block(FocalNetBlock(96, focal_level=2))
    yield diagrams.network(FocalNet.from_preset("focalnet_cifar_tiny", num_classes=10))
    yield diagrams.window_vs_focal(modulation, 14, 7)


@pytest.mark.parametrize("dpi", [72, 100, 200])
def test_every_diagram_fits_its_own_canvas(dpi):
    """Saved with a plain fig.savefig (no bbox_inches="tight"), no text may run past an edge."""
    for fig in _every_diagram():
        fig.set_dpi(dpi)
        fig.canvas.draw()
        for text in fig.findobj(Text):  # every text, hidden axes' tick labels included
            if not text.get_text():
                continue
            box = text.get_window_extent()
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, f"{text.get_text()!r} runs past a side"
            assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1, f"{text.get_text()!r} runs past the top/bottom"
        plt.close(fig)


@pytest.mark.parametrize("config", LAYERS + VARIANTS)
def test_receptive_fields_labels_every_level_with_the_layers_numbers(config):
    layer = build(FocalModulation, AblatedFocalModulation, config)
    fig = diagrams.receptive_fields(layer)
    assert_readable(fig)
    fields = receptive.receptive_fields(layer.focal_level, layer.focal_window, layer.focal_factor)[:-1]
    side = fields[-1] + 2  # the default grid
    all_text = texts(fig)
    for kernel, field in zip(layer.kernel_sizes, fields):
        assert f"kernel {kernel}×{kernel}" in all_text
        assert f"sees {field}×{field} tokens" in all_text
    assert (f"sees all {side}×{side}" in all_text) == switch(layer, "global_context")
    assert f"{side}×{side} tokens" in joined(fig)
    # The outlines drawn on the grid are the fields themselves (plus the whole map for the global level).
    grid_ax = fig.axes[1]
    outlines = sorted(p.get_width() for p in grid_ax.patches if not p.get_fill())
    assert outlines == sorted(fields + ([side] if switch(layer, "global_context") else []))


def test_receptive_fields_on_a_small_grid_says_the_border_cuts():
    layer = FocalModulation(32, focal_window=3, focal_level=3)
    fig = diagrams.receptive_fields(layer, grid=(9, 11))
    assert "9×11 tokens" in joined(fig)
    assert "cuts the largest field" in joined(fig)
    outlines = sorted((p.get_width(), p.get_height()) for p in fig.axes[1].patches if not p.get_fill())
    assert outlines == [(3, 3), (7, 7), (11, 9), (11, 9)]  # level 3 (13 x 13) clipped by the 9 x 11 map


@pytest.mark.parametrize("config", LAYERS + VARIANTS)
@pytest.mark.parametrize("input_shape", [(32, 32), (7, 9)])
def test_modulation_flow_prints_the_layers_shapes(config, input_shape):
    layer = build(FocalModulation, AblatedFocalModulation, config)
    height, width = input_shape
    C = layer.dim
    fig = diagrams.modulation_flow(layer, (height, width, C))
    assert_readable(fig)
    all_text = joined(fig)
    full = f"({height}, {width}, {C})"
    assert f"input x\n{full}" in all_text
    assert f"f: Linear\n{C} → {layer.f.units}" in all_text
    gate_channels = layer.f.units - 2 * C
    assert gate_channels == (layer.num_levels if switch(layer, "gating") else 0)
    assert f"query q {full}" in all_text
    assert f"$Z^0$ {full}" in all_text
    for level, kernel in enumerate(layer.kernel_sizes, start=1):
        assert f"DWConv {kernel}×{kernel} + GELU" in all_text
        assert f"$Z^{{{level}}}$ {full}" in all_text
    global_box = f"$Z^{{{layer.focal_level + 1}}}$ (1, 1, {C})"
    assert (global_box in all_text) == switch(layer, "global_context")
    assert (f"gates G\n({height}, {width}, {layer.num_levels})" in all_text) == switch(layer, "gating")
    assert all_text.count("$\\times$") == (layer.num_levels if switch(layer, "gating") else 0)
    assert f"h: Linear\n{C} → {layer.h.units}" in all_text
    assert f"proj: Linear\n{C} → {layer.proj.units}" in all_text
    assert f"output y\n{full}" in all_text
    assert ("LayerNorm" in texts(fig)) == layer.use_postln_in_modulation
    assert (f"/ {layer.num_levels} levels" in all_text) == layer.normalize_modulator


@pytest.mark.parametrize("config", LAYERS + VARIANTS)
def test_gated_aggregation_shows_one_gate_per_level(config):
    layer = build(FocalModulation, AblatedFocalModulation, config)
    fig = diagrams.gated_aggregation(layer)
    assert_readable(fig)
    all_text = joined(fig)
    fields = receptive.receptive_fields(layer.focal_level, layer.focal_window, layer.focal_factor)[:-1]
    for level, (kernel, field) in enumerate(zip(layer.kernel_sizes, fields), start=1):
        assert f"$Z^{{{level}}}$ (H, W, {layer.dim})\nkernel {kernel}×{kernel}, sees {field}×{field}" in all_text
    assert (f"$Z^{{{layer.focal_level + 1}}}$ (1, 1, {layer.dim})" in all_text) == switch(layer, "global_context")
    gates = [t for t in texts(fig) if t.startswith("× ")]
    assert len(gates) == layer.num_levels
    assert all(("(H, W, 1)" in g) == switch(layer, "gating") for g in gates)
    assert f"h: Linear\n{layer.dim} → {layer.h.units}" in all_text
    assert f"^{{{layer.num_levels}}}" in all_text  # the sum in the equation runs to L + 1 (or L)


BLOCKS = [
    dict(dim=96, focal_level=2),
    dict(dim=64, focal_level=3, focal_window=5, drop_path=0.1, use_layerscale=True, layerscale_value=1e-5),
    dict(dim=128, use_postln=True, mlp_ratio=3.0, drop_path=0.25),
    dict(dim=64, pre_norm=False),
    dict(dim=64, mixer="attention"),
    dict(dim=64, mixer="dwconv", focal_level=3),
    dict(dim=64, mixer="window", window_size=4, shift_size=2),
]


@pytest.mark.parametrize("config", BLOCKS)
def test_focalnet_block_prints_the_blocks_numbers(config):
    block = build(FocalNetBlock, AblatedFocalNetBlock, config)
    fig = diagrams.focalnet_block(block)
    assert_readable(fig)
    all_text = joined(fig)
    C, hidden = block.dim, block.mlp.hidden_dim
    assert hidden == int(C * block.mlp_ratio)
    assert f"Mlp: Linear {C} → {hidden}, GELU,\nLinear {hidden} → {C}" in all_text
    assert f"x (H, W, {C})" in all_text
    assert all_text.count(f"drop path, rate {block.drop_path_rate:g}") == 2
    if block.use_layerscale:
        assert all_text.count(f"layerscale, init {block.layerscale_value:g}") == 2
    else:
        assert all_text.count("layerscale: off") == 2
    assert f"norm2: LayerNorm (ε {block.norm2.epsilon:g})" in all_text
    assert ("norm1: none" in all_text) == (not switch(block, "pre_norm"))
    mixer = block.token_mixer
    assert type(mixer).__name__ in all_text
    if block.mixer in ("focal", "dwconv"):
        assert ", ".join(f"{k}×{k}" for k in mixer.kernel_sizes) in all_text
    if block.mixer == "window":
        assert f"{mixer.window_size}×{mixer.window_size} windows, shift {mixer.shift_size}" in all_text
    # Pre-norm: the norm is above (before) the mixer; post-norm: below it.
    y = {t.get_text().split(":")[0].split("\n")[0]: t.get_position()[1] for t in shown(fig)}
    if block.norm1 is not None:
        assert (y["norm1"] > y[type(mixer).__name__]) == (not block.use_postln)
    assert (y["norm2"] > y["Mlp"]) == (not block.use_postln)


def _stage_maps(model):
    """``(H, W, C)`` of each stage, read from the model's stem and downsampling layers."""
    names = ["stem"] + [f"layers_{i}_downsample" for i in range(1, len(model.depths))]
    return [tuple(model.get_layer(name).output.shape[1:]) for name in names]


@pytest.mark.parametrize("preset, overrides", [
    ("focalnet_cifar_tiny", dict(num_classes=10)),
    ("focalnet_cifar_small", {}),
    ("focalnet_tiny_srf", {}),
    ("focalnet_cifar_tiny", dict(num_classes=0, use_conv_embed=True)),
])
def test_network_prints_each_stage(preset, overrides):
    model = FocalNet.from_preset(preset, **overrides)
    fig = diagrams.network(model)
    assert_readable(fig)
    all_text = joined(fig)
    maps = _stage_maps(model)
    for i, ((h, w, c), depth) in enumerate(zip(maps, model.depths)):
        # The same numbers from the config: the stem divides by patch_size, each stage halves and doubles.
        stride = model.patch_size * 2**i
        assert (h, w, c) == (model.image_size[0] // stride, model.image_size[1] // stride, model.embed_dim * 2**i)
        kernels = ", ".join(str(k) for k in receptive.kernel_sizes(model.focal_levels[i], model.focal_windows[i]))
        assert f"stage {i}\n{depth} blocks\n{h}×{w}×{c}\nL {model.focal_levels[i]}, k {kernels}" in all_text
        assert f"{h * w} tokens" in all_text
        if i:
            assert f"{maps[i - 1][2]}→{c}" in all_text
    stem = model.get_layer("stem")
    k = stem.proj.kernel_size[0]
    assert f"{k}×{k}, stride {model.patch_size}\n{model.in_chans} → {model.embed_dim}" in all_text
    last = maps[-1][2]
    head = f"Linear {last} → {model.num_classes}" if model.num_classes else f"{last} features"
    assert head in all_text
    assert "-".join(str(d) for d in model.depths) in all_text


@pytest.mark.parametrize("config", LAYERS[:3])
@pytest.mark.parametrize("grid, window_size", [(14, 7), ((8, 12), 4), (6, 7), (16, 4)])
def test_window_vs_focal_counts_what_the_query_sees(config, grid, window_size):
    layer = build(FocalModulation, AblatedFocalModulation, config)
    fig = diagrams.window_vs_focal(layer, grid, window_size)
    assert_readable(fig)
    height, width = (grid, grid) if isinstance(grid, int) else grid
    window_h, window_w, shift = window_plan(height, width, window_size, window_size // 2)
    all_text = joined(fig)
    assert f"{height}×{width} tokens" in all_text
    assert f"{window_h}×{window_w} windows" in all_text
    assert f"attends to the {window_h * window_w} tokens" in all_text
    assert f"shift {shift}" in all_text
    fields = receptive.receptive_fields(layer.focal_level, layer.focal_window, layer.focal_factor)[:-1]
    for level, field in enumerate(fields, start=1):
        assert f"level {level}: {field}×{field}" in all_text
    assert f"level {layer.focal_level + 1}: all {height * width}" in all_text
    # The shaded window of the first panel holds the query and exactly one window of tokens.
    window = [p for p in fig.axes[1].patches if p.get_fill() and p.get_width() > 1]
    assert [(p.get_width(), p.get_height()) for p in window] == [(window_w, window_h)]


def test_bad_arguments_raise_and_name_the_argument():
    layer = FocalModulation(32, focal_window=3, focal_level=2)
    block = FocalNetBlock(32)
    for draw in (diagrams.receptive_fields, diagrams.gated_aggregation):
        with pytest.raises(TypeError, match="`layer` must be a focaledu.FocalModulation.*block.modulation"):
            draw(block)
    with pytest.raises(TypeError, match="`layer`"):
        diagrams.modulation_flow("focal", (8, 8, 32))
    for bad_grid in (0, -3, (8,), (8, 0), "8", 2.5, True):
        with pytest.raises(ValueError, match="`grid` must be a positive int"):
            diagrams.receptive_fields(layer, grid=bad_grid)
    for bad_shape in ((8, 8), (8, 8, 16), (8, 0, 32), (8, 8.0, 32), None, (1, 8, 8, 32)):
        with pytest.raises(ValueError, match="`input_shape` must be \\(H, W, C\\).*dim=32"):
            diagrams.modulation_flow(layer, bad_shape)
    with pytest.raises(TypeError, match="`block` must be a focaledu.FocalNetBlock"):
        diagrams.focalnet_block(layer)
    with pytest.raises(TypeError, match="`model` must be a focaledu.FocalNet"):
        diagrams.network(block)
    for bad_window in (0, -7, 2.5, True, None):
        with pytest.raises(ValueError, match="`window_size` must be a positive int"):
            diagrams.window_vs_focal(layer, 14, bad_window)
    with pytest.raises(ValueError, match="window_size"):
        diagrams.window_vs_focal(layer, 14, 4)  # 4 x 4 windows do not tile 14 x 14 tokens
    with pytest.raises(ValueError, match="`grid`"):
        diagrams.window_vs_focal(layer, (14, -1), 7)
    with pytest.raises(TypeError, match="`layer`"):
        diagrams.window_vs_focal(block, 14, 7)
    attention_block = SelfAttentionBlock(32, num_heads=2)
    for bad_layer, hint in ((layer, ""), (attention_block, ".*block.attn"), (FocalNetBlock(32, mixer="attention"),
                                                                           ".*block.attn"), ("attention", "")):
        with pytest.raises(TypeError, match="`layer` must be a focaledu.attention.MultiHeadSelfAttention" + hint):
            diagrams.self_attention(bad_layer)
    for bad_tokens in (0, -196, 2.5, True, "196", (14, 14)):
        with pytest.raises(ValueError, match="`num_tokens` must be a positive int"):
            diagrams.self_attention(attention_block.attn, num_tokens=bad_tokens)
