"""ipywidgets explorers for chapters 3 and 4, thin wrappers over plain functions.

* ``receptive_field_explorer``: sliders for ``focal_level``, ``focal_window``,
  ``focal_factor`` and the pixel; draws ``plots.receptive_field_figure``.
* ``gate_explorer``: one slider per gate; draws the modulator that
  ``modulator_with_gates`` recomputes with the gates scaled.

The plain functions work without ipywidgets; ipywidgets is imported only
when an explorer is built.
"""

import numpy as np
from keras import ops

from focaledu import plots, receptive
from focaledu.samples import sample_image


def modulator_with_gates(layer, x, gate_weights):
    """The modulator of ``layer`` on ``x`` with gate ``l`` multiplied by ``gate_weights[l]``.

    ``M = h(sum_l w_l * G^l * Z^l)`` (divided by ``L + 1`` when the layer has
    ``normalize_modulator``). All weights 1 give the layer's own modulator;
    a weight 0 removes that level.

    Args:
        layer: a ``focaledu.FocalModulation``.
        x: its input ``(B, H, W, C)``.
        gate_weights: ``L + 1`` numbers, level 1 first and the global level last.

    Returns:
        The modulator ``(B, H, W, C)`` as a backend tensor.
    """
    weights = [float(w) for w in np.ravel(np.asarray(gate_weights, dtype="float64"))]
    if len(weights) != layer.focal_level + 1:
        raise ValueError(
            f"`gate_weights` needs one weight per gate, i.e. focal_level + 1 = {layer.focal_level + 1} "
            f"numbers (level 1 first, the global level last); received {len(weights)}."
        )
    _, context, gates = receptive.split_projection(layer, x)
    total = 0
    for level, (z, weight) in enumerate(zip(receptive.levels_from_context(layer, context), weights)):
        total = total + z * (gates[..., level : level + 1] * weight)
    if layer.normalize_modulator:
        total = total / (layer.focal_level + 1)
    return layer.h(total)


def _show(output, fig):
    """Replaces what ``output`` shows with ``fig``."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    with output:
        output.clear_output(wait=True)
        display(fig)
    plt.close(fig)


def receptive_field_explorer(image=None, patch_size=4, max_level=5, pixel=None):
    """Sliders for ``focal_level``, ``focal_window``, ``focal_factor`` and a pixel.

    Args:
        image: ``(H, W, 3)``; Matplotlib's Grace Hopper photograph at 224x224 by default.
        patch_size: pixels per token (4 for the FocalNet stem).
        max_level: the largest ``focal_level`` offered.
        pixel: initial ``(row, column)``; the centre by default.

    Returns:
        An ``ipywidgets.VBox``; the figure is redrawn whenever a slider moves.
    """
    import ipywidgets as widgets

    image = sample_image((224, 224)) if image is None else np.asarray(image)
    height, width = image.shape[:2]
    row, col = pixel if pixel is not None else (height // 2, width // 2)
    style = {"description_width": "initial"}
    sliders = {
        "focal_level": widgets.IntSlider(2, min=1, max=max_level, description="focal_level", style=style),
        "focal_window": widgets.IntSlider(3, min=1, max=11, step=2, description="focal_window", style=style),
        "focal_factor": widgets.IntSlider(2, min=0, max=8, step=2, description="focal_factor", style=style),
        "row": widgets.IntSlider(row, min=0, max=height - 1, description="pixel row", style=style),
        "col": widgets.IntSlider(col, min=0, max=width - 1, description="pixel column", style=style),
    }
    output = widgets.Output()

    def draw(*_):
        values = {name: slider.value for name, slider in sliders.items()}
        fig = plots.receptive_field_figure(
            image, (values["row"], values["col"]), values["focal_level"], values["focal_window"],
            values["focal_factor"], patch_size=patch_size,
        )
        fig.set_size_inches(5, 5)
        _show(output, fig)

    for slider in sliders.values():
        slider.observe(draw, names="value")
    draw()
    controls = widgets.VBox(list(sliders.values()))
    box = widgets.HBox([controls, output])
    box.sliders = sliders  # for tests and scripted use
    return box


def gate_explorer(layer, x, image, max_weight=2.0, reduce="norm", index=0):
    """One slider per gate, re-weighting the levels of ``layer`` and showing the modulator.

    Args:
        layer: a ``focaledu.FocalModulation``.
        x: its input ``(B, H, W, C)``, computed from ``image``.
        image: the ``(H', W', 3)`` image the modulator is drawn over.
        max_weight: the sliders run from 0 to this value (1 = the layer's own gate).
        reduce: ``"norm"`` or ``"mean"`` over the modulator's channels.
        index: which image of the batch ``x`` to show.

    Returns:
        An ``ipywidgets.HBox``; the figure is redrawn whenever a slider moves.
    """
    import ipywidgets as widgets

    levels = layer.focal_level + 1
    style = {"description_width": "initial"}
    sliders = [
        widgets.FloatSlider(
            1.0, min=0.0, max=max_weight, step=0.05,
            description=f"gate {level + 1}" + (" (global)" if level == levels - 1 else "") + " ×",
            style=style,
        )
        for level in range(levels)
    ]
    output = widgets.Output()

    def draw(*_):
        weights = [slider.value for slider in sliders]
        modulator = ops.convert_to_numpy(modulator_with_gates(layer, x, weights))[index]
        described = ", ".join(f"{w:g}" for w in weights)
        fig = plots.modulator_figure(image, modulator, title=f"modulator, gate weights ({described})",
                                     reduce=reduce)
        _show(output, fig)

    for slider in sliders:
        slider.observe(draw, names="value")
    draw()
    box = widgets.HBox([widgets.VBox(sliders), output])
    box.sliders = sliders
    return box
