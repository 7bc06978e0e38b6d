"""ipywidgets explorers for chapters 3, 4 and 8, thin wrappers over plain functions; ipywidgets is imported lazily."""

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


def _controls_layout():
    """Sizes that keep every slider's value readout visible next to a wide figure.

    Without them an ``HBox`` shrinks the column of sliders and hides the readouts.
    """
    import ipywidgets as widgets

    return {
        "style": {"description_width": "125px"},
        "slider": lambda: widgets.Layout(width="400px"),
        "column": widgets.Layout(flex="0 0 auto", min_width="410px"),
        "row": widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
    }


def _show(output, fig):
    """Replaces what ``output`` shows with ``fig``."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    with output:
        output.clear_output(wait=True)
        display(fig)
    plt.close(fig)


def receptive_field_explorer(image=None, patch_size=4, max_level=5, pixel=None):
    """Sliders for ``focal_level``, ``focal_window``, ``focal_factor`` and a pixel; returns an ``ipywidgets.VBox``.

    Args:
        image: ``(H, W, 3)``; Matplotlib's Grace Hopper photograph at 224x224 by default.
        patch_size: pixels per token.
        max_level: the largest ``focal_level`` offered.
        pixel: initial ``(row, column)``; the centre by default.
    """
    import ipywidgets as widgets

    image = sample_image((224, 224)) if image is None else np.asarray(image)
    height, width = image.shape[:2]
    row, col = pixel if pixel is not None else (height // 2, width // 2)
    sizes = _controls_layout()

    def slider(value, description, **kwargs):
        return widgets.IntSlider(value, description=description, style=sizes["style"], layout=sizes["slider"](),
                                 **kwargs)

    sliders = {
        "focal_level": slider(2, "focal_level", min=1, max=max_level),
        "focal_window": slider(3, "focal_window", min=1, max=11, step=2),
        "focal_factor": slider(2, "focal_factor", min=0, max=8, step=2),
        "row": slider(row, "pixel row", min=0, max=height - 1),
        "col": slider(col, "pixel column", min=0, max=width - 1),
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
    controls = widgets.VBox(list(sliders.values()), layout=sizes["column"])
    box = widgets.HBox([controls, output], layout=sizes["row"])
    box.sliders = sliders  # for tests and scripted use
    return box


def gate_explorer(layer, x, image, max_weight=2.0, reduce="norm", index=0):
    """One slider per gate, re-weighting the levels of ``layer`` and showing the modulator.

    Returns an ``ipywidgets.HBox``.

    Args:
        layer: a ``focaledu.FocalModulation``.
        x: its input ``(B, H, W, C)``, computed from ``image``.
        image: the ``(H', W', 3)`` image the modulator is drawn over.
        max_weight: the sliders run from 0 to this value (1 = the layer's own gate).
        reduce: ``"norm"`` or ``"mean"`` over the modulator's channels.
        index: which image of the batch ``x`` to show.
    """
    import ipywidgets as widgets

    levels = layer.focal_level + 1
    sizes = _controls_layout()
    sliders = [
        widgets.FloatSlider(
            1.0, min=0.0, max=max_weight, step=0.05, readout_format=".2f",
            description=f"gate {level + 1}" + (" (global)" if level == levels - 1 else "") + " ×",
            style=sizes["style"], layout=sizes["slider"](),
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
    box = widgets.HBox([widgets.VBox(sliders, layout=sizes["column"]), output], layout=sizes["row"])
    box.sliders = sliders
    return box


# --------------------------------------------------------------------------
# Chapter 8: exploring the gates and modulators of a trained FocalNet.
# --------------------------------------------------------------------------


def _level_label(level, levels):
    if level == "modulator":
        return "||M|| (modulator norm)"
    return f"gate {level}" + (" (global)" if level == levels else "")


def block_level_figure(images, maps, block, level, index=0, title=None, cmap="inferno"):
    """Three panels for one image: the image, one map stretched over it, the map per token. Returns the figure.

    Args:
        images: ``(B, H, W, 3)`` in [0, 1], the images ``maps`` were computed on.
        maps: ``{block: {"gates", "modulator"}}`` from ``interpret.modulation_maps``.
        block, level, index: as ``interpret.block_level_map``.
        title: the figure title.
    """
    import matplotlib.pyplot as plt

    from focaledu import interpret

    images = np.asarray(images)
    values = interpret.block_level_map(maps, block, level, index)
    image = np.clip(np.asarray(images[index], dtype="float32"), 0.0, 1.0)
    stretched = interpret.upsample_map(values, image.shape[:2], method="bilinear")
    label = _level_label(level, maps[block]["gates"].shape[-1])
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), layout="constrained")
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(image)
    axes[1].imshow(stretched, cmap=cmap, alpha=0.6)
    axes[1].set_title(f"{label}, bilinear over the image", fontsize=9)
    shown = axes[2].imshow(values, cmap=cmap)
    axes[2].set_title(f"{label}, {values.shape[0]}x{values.shape[1]} tokens", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(shown, ax=axes[2], shrink=0.8)
    fig.suptitle(title or f"block {block}, image {index}", fontsize=10)
    return fig


def modulation_explorer(images, maps, titles=None, suptitle=""):
    """Dropdowns for the image, the block and the level, drawing :func:`block_level_figure`.

    Returns an ``ipywidgets.VBox``.

    Args:
        images: ``(B, H, W, 3)`` in [0, 1].
        maps: ``interpret.modulation_maps`` of those images.
        titles: one label per image.
        suptitle: appended to every figure title.
    """
    import ipywidgets as widgets

    images = np.asarray(images)
    titles = list(titles) if titles is not None else [f"image {i}" for i in range(len(images))]
    blocks = list(maps)
    style = {"description_width": "initial"}
    image_box = widgets.Dropdown(options=[(f"{i}: {t}", i) for i, t in enumerate(titles)], value=0,
                                 description="image", style=style)
    block_box = widgets.Dropdown(options=blocks, value=blocks[0], description="block", style=style)
    level_box = widgets.Dropdown(description="map", style=style)
    output = widgets.Output()

    def level_options(block):
        levels = maps[block]["gates"].shape[-1]
        return [(_level_label(level, levels), level) for level in range(1, levels + 1)] + [
            (_level_label("modulator", levels), "modulator")]

    def draw(*_):
        block, index, level = block_box.value, image_box.value, level_box.value
        title = f"{titles[index]}, block {block}" + (f" - {suptitle}" if suptitle else "")
        _show(output, block_level_figure(images, maps, block, level, index, title=title))

    def on_block(*_):
        previous = level_box.value
        options = level_options(block_box.value)
        values = [value for _, value in options]
        with level_box.hold_trait_notifications():
            level_box.options = options
            level_box.value = previous if previous in values else "modulator"
        draw()

    level_box.options = level_options(blocks[0])
    level_box.value = "modulator"
    image_box.observe(draw, names="value")
    level_box.observe(draw, names="value")
    block_box.observe(on_block, names="value")
    draw()
    box = widgets.VBox([widgets.HBox([image_box, block_box, level_box]), output])
    box.controls = {"image": image_box, "block": block_box, "level": level_box}
    return box
