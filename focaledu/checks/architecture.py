"""Checks for the exercises of chapter 6: the FocalNet architecture (references: ``focaledu.flops``).

    >>> from focaledu import checks
    >>> checks.stage_shapes(my_stage_shapes)
"""

from focaledu import flops
from focaledu.checks._core import compare
from focaledu.receptive import block_cost, modulation_cost

__all__ = ["stage_shapes", "stage_shapes_of_preset", "block_params", "stem_macs"]


def _stage_shapes(image_size, patch_size, embed_dim, num_stages, first_down=False, double=True, stride=None):
    shapes, size, dim = [], image_size // (stride or patch_size), embed_dim
    for i in range(num_stages):
        if i > 0 or first_down:
            size //= 2
        if i > 0 and double:
            dim *= 2
        shapes.append((size, size, dim))
    return shapes


def _config(image_size, patch_size, embed_dim, num_stages):
    return dict(image_size=image_size, patch_size=patch_size, embed_dim=embed_dim, depths=[1] * num_stages,
                focal_levels=[2] * num_stages, focal_windows=[3] * num_stages)


_SHAPE_CASES = [
    ("224 px, patch 4, embed 96, 4 stages", (224, 4, 96, 4)),
    ("32 px, patch 4, embed 64, 3 stages", (32, 4, 64, 3)),
    ("48 px, patch 4, embed 256, 3 stages", (48, 4, 256, 3)),
    ("224 px, patch 16, embed 192, 1 stage", (224, 16, 192, 1)),
]


def stage_shapes(fn):
    """Checks ``fn(image_size, patch_size, embed_dim, num_stages) -> [(H, W, C), ...]``, each stage's output shape."""

    def reference(*args):
        parts = flops.flops_breakdown(_config(*args))
        return [parts[f"stage_{i}"]["shape"] for i in range(args[3])]

    mistakes = [
        ("the first stage has no downsampling: only stages 1, 2, ... halve the resolution",
         lambda *a: _stage_shapes(*a, first_down=True)),
        ("the width doubles at every downsampling: stage i has embed_dim * 2**i channels",
         lambda *a: _stage_shapes(*a, double=False)),
        ("the stem's stride is patch_size, not 4 for every model",
         lambda *a: _stage_shapes(*a, stride=4)),
    ]
    return compare("stage_shapes", fn, reference, _SHAPE_CASES, mistakes)


def _block_params(dim, level, window, mlp_ratio, norms=True, mlp_biases=True, hidden=None, dw=True):
    mixer = modulation_cost(dim, 1, 1, level, window)["params"]
    if not dw:
        mixer -= dim * sum((2 * k + window) ** 2 for k in range(level))
    hidden = int(dim * mlp_ratio) if hidden is None else hidden
    return mixer + (4 * dim if norms else 0) + 2 * dim * hidden + (hidden + dim if mlp_biases else 0)


_BLOCK_CASES = [
    ("dim=96, L=2, window 3, mlp_ratio 4", (96, 2, 3, 4.0)),
    ("dim=128, L=3, window 3, mlp_ratio 4", (128, 3, 3, 4.0)),
    ("dim=64, L=1, window 5, mlp_ratio 2", (64, 1, 5, 2.0)),
]


def block_params(fn):
    """Checks ``fn(dim, focal_level, focal_window, mlp_ratio) -> int``, a default ``FocalNetBlock``'s parameters."""

    def reference(dim, level, window, mlp_ratio):
        # Equal to FocalNetBlock(...).count_params() (tested in tests/test_receptive.py).
        return block_cost(modulation_cost(dim, 1, 1, level, window), dim, 1, 1, mlp_ratio)["params"]

    mistakes = [
        ("you forgot the two LayerNorms (norm1, norm2): 2 * dim parameters each",
         lambda *a: _block_params(*a, norms=False)),
        ("you forgot the biases of the MLP (hidden + dim)", lambda *a: _block_params(*a, mlp_biases=False)),
        ("the MLP's hidden width is int(dim * mlp_ratio), not dim",
         lambda *a: _block_params(*a, hidden=a[0])),
        ("you forgot the depthwise kernels of the modulation (dim * k^2 per level)",
         lambda *a: _block_params(*a, dw=False)),
    ]
    return compare("block_params", fn, reference, _BLOCK_CASES, mistakes)


_STEM_CASES = [
    ("224 px, patch 4, 3 -> 96 channels", (224, 4, 3, 96)),
    ("32 px, patch 4, 3 -> 64 channels", (32, 4, 3, 64)),
    ("224 px, patch 16, 3 -> 192 channels", (224, 16, 3, 192)),
    ("48 px, patch 2, 1 -> 8 channels", (48, 2, 1, 8)),
]


def stem_macs(fn):
    """Checks ``fn(image_size, patch_size, in_chans, embed_dim) -> int``, the stem convolution's MACs."""

    def reference(image_size, patch_size, in_chans, embed_dim):
        config = dict(image_size=image_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                      depths=[1], focal_levels=[2], focal_windows=[3])
        return flops.model_flops(config, per_stage=True)["stem"]

    mistakes = [
        ("one output per patch, not per pixel: there are (image_size / patch_size)^2 tokens",
         lambda s, p, c, e: s * s * p * p * c * e),
        ("each output sums over a patch_size x patch_size x in_chans window: you left out the kernel area",
         lambda s, p, c, e: (s // p) ** 2 * c * e),
        ("you left out the input channels", lambda s, p, c, e: (s // p) ** 2 * p * p * e),
        ("you counted the bias as one more MAC per output", lambda s, p, c, e: (s // p) ** 2 * (p * p * c + 1) * e),
    ]
    return compare("stem_macs", fn, reference, _STEM_CASES, mistakes)


def _built_stage_shapes(preset):
    """``[(H, W, C), ...]`` at the output of each stage of the preset's model, read off its Keras tensors."""
    from focaledu.model import FocalNet

    model = FocalNet.from_preset(preset)
    shapes = []
    for i, depth in enumerate(model.depths):
        output = model.get_layer(f"layers_{i}_blocks_{depth - 1}").output
        output = output[0] if isinstance(output, (list, tuple)) else output
        shapes.append(tuple(int(n) for n in output.shape[1:]))
    return shapes, model


def stage_shapes_of_preset(preset, predicted):
    """Checks ``predicted`` ``(H, W, C)`` per stage against the built ``FocalNet.from_preset(preset)``."""
    from focaledu.checks._core import CheckResult

    name = "stage_shapes_of_preset"
    expected, model = _built_stage_shapes(preset)
    try:
        guess = [tuple(int(n) for n in shape) for shape in predicted]
    except TypeError:
        return CheckResult(name, False, "fill in one (H, W, C) tuple per stage, e.g. (16, 16, 64).")
    if guess == expected:
        return CheckResult(name, True, f"{preset}: stages {expected}, as the built model has them.")
    if len(guess) != len(expected):
        return CheckResult(name, False, f"{preset} has {len(expected)} stage(s) (depths {list(model.depths)}); "
                                        f"you gave {len(guess)} shapes.")
    size, patch, dim = model.image_size[0], model.patch_size, model.embed_dim
    args = (size, patch, dim, len(expected))
    mistakes = [
        (f"the stem's stride is the patch size, {patch} here, not 4", _stage_shapes(*args, stride=4)),
        ("the first stage has no downsampling: only stages 1, 2, ... halve the grid",
         _stage_shapes(*args, first_down=True)),
        ("the width doubles at every downsampling: stage i has embed_dim * 2**i channels",
         _stage_shapes(*args, double=False)),
        (f"the stem divides the image side by the patch size: {size} // {patch} = {size // patch} tokens per side",
         _stage_shapes(*args, stride=1)),
    ]
    named = [message for message, shapes in mistakes if guess == shapes and shapes != expected]
    if named:
        return CheckResult(name, False, ". Or: ".join(named) + f" (the model has {expected}).")
    wrong = next(i for i, (g, e) in enumerate(zip(guess, expected)) if g != e)
    return CheckResult(name, False, f"stage {wrong}: you predicted {guess[wrong]}, the model has {expected[wrong]}.")
