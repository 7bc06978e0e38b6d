"""Matplotlib figures for the chapters (and the command line).

Every function takes NumPy arrays, draws on new axes (or on ``ax`` when
given) and returns the ``Figure``; none calls ``plt.show()``. Images are
``(H, W, 3)`` floats in [0, 1] or uint8.

* receptive fields: ``receptive_field_overlay``, ``receptive_field_figure``,
  ``receptive_field_grid``, ``receptive_field_maps``, ``growth_curves``;
* gates and modulators: ``modulation_overlay`` (the keras.io tutorial's
  picture: the image, each gate map stretched over it, the modulator),
  ``modulator_overlay``, ``modulator_figure``, ``channel_norm_maps``;
* experiments: ``curves``.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches

from focaledu import receptive

#: One colour per focal level (level 1 first); the global level is drawn in black.
LEVEL_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def _image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"`image` must have shape (height, width, 3); received shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(image, 0.0, 1.0)
    return image[..., 0] if image.shape[-1] == 1 else image


def _axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax.figure, ax


def _bounds(mask):
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


def receptive_field_overlay(image, masks, pixel, ax=None, title=None, labels=None):
    """Draws ``image`` with the nested windows of ``masks`` around ``pixel``.

    Args:
        image: ``(H, W, 3)``.
        masks: boolean ``(L + 1, H, W)`` from ``receptive.receptive_field_mask``;
            the last (global) level is drawn as a dashed frame.
        pixel: ``(row, column)``, marked with a cross.
        ax: axes to draw on; a new figure by default.
        title: axes title.
        labels: one legend entry per level; "level l" by default.
    """
    image = _image(image)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(
            f"`masks` must have shape (levels, {image.shape[0]}, {image.shape[1]}) to match the image; "
            f"received shape {masks.shape}."
        )
    fig, ax = _axes(ax, (4, 4))
    ax.imshow(image)
    labels = labels or [f"level {l + 1}" for l in range(len(masks) - 1)] + [f"level {len(masks)} (global)"]
    for level in range(len(masks) - 2, -1, -1):  # largest first, so smaller ones stay visible
        top, bottom, left, right = _bounds(masks[level])
        color = LEVEL_COLORS[level % len(LEVEL_COLORS)]
        box = dict(xy=(left - 0.5, top - 0.5), width=right - left + 1, height=bottom - top + 1)
        ax.add_patch(patches.Rectangle(**box, facecolor=color, alpha=0.18, edgecolor="none"))
        ax.add_patch(patches.Rectangle(**box, fill=False, edgecolor=color, linewidth=2, label=labels[level]))
    height, width = image.shape[:2]
    ax.add_patch(
        patches.Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor="black", linewidth=3,
                          linestyle="--", label=labels[-1])
    )
    ax.plot(pixel[1], pixel[0], marker="x", color="white", markersize=9, markeredgewidth=3)
    ax.plot(pixel[1], pixel[0], marker="x", color="black", markersize=7, markeredgewidth=1.5)
    handles, names = ax.get_legend_handles_labels()
    order = np.argsort(names)
    ax.legend([handles[i] for i in order], [names[i] for i in order], loc="lower left", fontsize=7,
              framealpha=0.8)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _setting_title(focal_level, focal_window, focal_factor, patch_size):
    kernels = receptive.kernel_sizes(focal_level, focal_window, focal_factor)
    sizes = receptive.receptive_fields(focal_level, focal_window, focal_factor, patch_size)[:-1]
    unit = "px" if patch_size > 1 else "tokens"
    return (f"L={focal_level}, window {focal_window}, factor {focal_factor}\n"
            f"kernels {kernels}, fields {sizes} {unit}")


def receptive_field_figure(image, pixel, focal_level=2, focal_window=3, focal_factor=2, patch_size=1,
                           ax=None, title=None):
    """The receptive field of every level around ``pixel`` of ``image``, for one setting.

    The plain function behind ``focaledu.widgets.receptive_field_explorer``.
    """
    image = _image(image)
    masks = receptive.receptive_field_mask(
        image.shape[0], image.shape[1], pixel, focal_level, focal_window, focal_factor, patch_size
    )
    title = title if title is not None else _setting_title(focal_level, focal_window, focal_factor, patch_size)
    return receptive_field_overlay(image, masks, pixel, ax=ax, title=title)


def receptive_field_grid(image, settings, pixel, patch_size=1, ncols=None, suptitle=None):
    """One ``receptive_field_figure`` panel per setting, on one figure.

    Args:
        image: ``(H, W, 3)``.
        settings: dicts with ``focal_level``, ``focal_window``, ``focal_factor``.
        pixel: ``(row, column)`` in pixels.
        patch_size: pixels per token side.
        ncols: panels per row; all in one row by default.
        suptitle: title of the whole figure.
    """
    settings = list(settings)
    if not settings:
        raise ValueError("`settings` must list at least one setting.")
    ncols = ncols or len(settings)
    nrows = math.ceil(len(settings) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.8 * nrows), squeeze=False,
                             layout="constrained")
    for ax, setting in zip(axes.flat, settings):
        receptive_field_figure(image, pixel, patch_size=patch_size, ax=ax, **setting)
    for ax in axes.flat[len(settings):]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def receptive_field_maps(gradients, masks=None, pixel=None, titles=None, cmap="viridis"):
    """Measured receptive fields: one panel per level of ``log10 |dZ^l[pixel] / dX|``.

    Args:
        gradients: ``(L + 1, H, W)`` from ``receptive.receptive_field_gradients``.
        masks: the analytic windows ``(L + 1, H, W)``; each is outlined in red.
        pixel: ``(row, column)``, marked with a cross.
        titles: one title per level; "level l: n positions" by default.
    """
    gradients = np.asarray(gradients, dtype="float64")
    levels = len(gradients)
    fig, axes = plt.subplots(1, levels, figsize=(2.6 * levels, 2.9), squeeze=False, layout="constrained")
    for level, ax in enumerate(axes[0]):
        grad = gradients[level]
        seen = grad > 0
        shown = np.full(grad.shape, np.nan)
        shown[seen] = np.log10(grad[seen])
        image = ax.imshow(shown, cmap=cmap)
        ax.set_facecolor("#f0f0f0")
        if masks is not None and not np.all(masks[level]):
            top, bottom, left, right = _bounds(masks[level])
            ax.add_patch(patches.Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                                           fill=False, edgecolor="red", linewidth=1.5))
        if pixel is not None:
            ax.plot(pixel[1], pixel[0], marker="x", color="red", markersize=6)
        default = f"level {level + 1}" + (" (global)" if level == levels - 1 else "")
        ax.set_title(titles[level] if titles else f"{default}: {int(seen.sum())} positions", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.75, label="log10 |gradient|" if level == levels - 1 else None)
    return fig


def growth_curves(settings, max_level=6, patch_size=1, ax=None, image_size=None):
    """Receptive-field side length against the number of levels, one line per setting.

    Args:
        settings: dicts with ``focal_window`` and ``focal_factor`` (an optional ``label``).
        max_level: the largest ``focal_level`` shown.
        patch_size: pixels per token; the y axis is in pixels when > 1.
        ax: axes to draw on.
        image_size: draws a horizontal line at this size (what the global level sees).
    """
    fig, ax = _axes(ax, (5, 3.5))
    levels = np.arange(1, max_level + 1)
    for index, setting in enumerate(settings):
        window, factor = setting["focal_window"], setting["focal_factor"]
        sizes = receptive.receptive_fields(max_level, window, factor, patch_size)[:-1]
        label = setting.get("label", f"window {window}, factor {factor}")
        ax.plot(levels, sizes, marker="o", color=LEVEL_COLORS[index % len(LEVEL_COLORS)], label=label)
    if image_size is not None:
        ax.axhline(image_size, color="black", linestyle="--", linewidth=1, label=f"image ({image_size})")
    ax.set_xlabel("focal level l")
    ax.set_ylabel("receptive field r_l (" + ("pixels" if patch_size > 1 else "tokens") + ")")
    ax.set_xticks(levels)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _reduce_channels(modulator, reduce):
    modulator = np.asarray(modulator, dtype="float32")
    if reduce == "norm":
        return np.linalg.norm(modulator, axis=-1)
    if reduce == "mean":
        return modulator.mean(axis=-1)
    raise ValueError(f"`reduce` must be 'norm' or 'mean'; received reduce={reduce!r}.")


def _overlay(ax, image, values, title, cmap="inferno", alpha=0.6):
    shown = ax.imshow(image)
    ax.imshow(values, cmap=cmap, alpha=alpha, extent=shown.get_extent(), interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def modulator_overlay(image, modulator, ax=None, title="modulator", reduce="norm", cmap="inferno"):
    """``image`` with the modulator ``(h, w, C)``, reduced over channels, stretched over it.

    ``reduce="norm"`` shows ``||M_i||``, the L2 norm over channels (how strongly
    position ``i`` is modulated; the keras.io tutorial's choice too);
    ``reduce="mean"`` the channel mean.
    """
    image = _image(image)
    fig, ax = _axes(ax, (4, 4))
    _overlay(ax, image, _reduce_channels(modulator, reduce), title, cmap=cmap)
    return fig


def modulator_figure(image, modulator, title="modulator", reduce="norm", cmap="inferno"):
    """Two panels: the modulator reduced over channels over ``image``, and alone with a colour bar.

    The plain function behind ``focaledu.widgets.gate_explorer``.
    """
    image = _image(image)
    values = _reduce_channels(modulator, reduce)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.8), layout="constrained")
    _overlay(left, image, values, "over the image", cmap=cmap)
    shown = right.imshow(values, cmap=cmap)
    right.set_title("||M|| per token" if reduce == "norm" else "mean of M per token", fontsize=9)
    right.axis("off")
    fig.colorbar(shown, ax=right, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig


def channel_norm_maps(maps, titles=None, image=None, suptitle=None, reduce="norm", cmap="inferno", shared=True):
    """One panel per ``(h, w, C)`` map, reduced over channels (over ``image`` when given).

    E.g. the context levels ``Z^1 .. Z^{L+1}`` of one image; a ``(1, 1, C)``
    map (the global level) is shown as one flat colour. With ``shared`` all
    panels use one colour scale, so their magnitudes compare.
    """
    maps = [np.asarray(m) for m in maps]
    reduced = [_reduce_channels(values, reduce) for values in maps]
    scale = {}
    if shared:
        scale = dict(vmin=min(float(r.min()) for r in reduced), vmax=max(float(r.max()) for r in reduced))
    fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.9), squeeze=False, layout="constrained")
    for index, (ax, values) in enumerate(zip(axes[0], reduced)):
        title = titles[index] if titles else f"map {index + 1}"
        if image is not None:
            shown = ax.imshow(_image(image))
            ax.imshow(values, cmap=cmap, alpha=0.6, extent=shown.get_extent(), interpolation="bilinear", **scale)
        else:
            shown = ax.imshow(values, cmap=cmap, **scale)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    if shared and image is None:
        fig.colorbar(shown, ax=list(axes[0]), shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def modulation_overlay(images, gates, modulator, titles=None, reduce="norm", suptitle=None, cmap="inferno"):
    """The keras.io tutorial's picture: per image, the image, each gate map over it, the modulator.

    Args:
        images: ``(B, H, W, 3)`` or one ``(H, W, 3)`` image.
        gates: ``(B, h, w, L + 1)`` (or ``(h, w, L + 1)``), e.g. from
            ``focaledu.interpret.modulation_maps``; each map is stretched over its image.
        modulator: ``(B, h, w, C)`` (or ``(h, w, C)``); shown reduced over channels.
        titles: one row title per image (e.g. class names).
        reduce: ``"norm"`` (default, the L2 norm over channels, as the tutorial draws it) or ``"mean"``.
        suptitle: title of the figure, e.g. with the data source.
    """
    images, gates, modulator = (np.asarray(a) for a in (images, gates, modulator))
    if images.ndim == 3:
        images, gates, modulator = images[None], gates[None], modulator[None]
    if not (len(images) == len(gates) == len(modulator)):
        raise ValueError(
            f"`images`, `gates` and `modulator` must hold the same number of images; received "
            f"{len(images)}, {len(gates)} and {len(modulator)}."
        )
    levels = gates.shape[-1]
    ncols = levels + 2
    fig, axes = plt.subplots(len(images), ncols, figsize=(2.2 * ncols, 2.4 * len(images)), squeeze=False,
                             layout="constrained")
    for row, (image, gate, mod) in enumerate(zip(images, gates, modulator)):
        image = _image(image)
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(titles[row] if titles else "image", fontsize=9)
        axes[row, 0].axis("off")
        for level in range(levels):
            name = f"G{level + 1}" + (" (global)" if level == levels - 1 else "")
            _overlay(axes[row, level + 1], image, gate[..., level], name, cmap=cmap)
        label = "||M||" if reduce == "norm" else "mean M"
        _overlay(axes[row, -1], image, _reduce_channels(mod, reduce), f"modulator {label}", cmap=cmap)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def curves(series, x=None, xlabel="", ylabel="", title=None, logy=False, ax=None, styles=None):
    """Line plot of ``{label: values}``, e.g. activation scale against depth.

    Non-finite values (an overflow) end a line; where a line ends early it is
    marked with an "x".
    """
    fig, ax = _axes(ax, (5, 3.5))
    for index, (label, values) in enumerate(series.items()):
        values = np.asarray(values, dtype="float64")
        xs = np.arange(len(values)) if x is None else np.asarray(x)
        finite = np.isfinite(values)
        style = dict(color=LEVEL_COLORS[index % len(LEVEL_COLORS)], marker="o", markersize=3)
        style.update((styles or {}).get(label, {}))
        ax.plot(xs[finite], values[finite], label=label, **style)
        if not finite.all() and finite.any():
            last = np.nonzero(finite)[0].max()
            ax.plot(xs[last], values[last], marker="x", color=style["color"], markersize=10, markeredgewidth=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return fig
