"""Matplotlib figures for the chapters: receptive fields, gates and modulators.

Every function draws on new axes (or ``ax``) and returns the ``Figure`` (no ``plt.show()``).
"""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches

from focaledu import receptive
from focaledu.figures import (  # noqa: F401 (curves, modulation_overlay, LEVEL_COLORS: the chapters' names)
    LEVEL_COLORS,
    curves,
    figure_axes,
    image_array,
    modulation_overlay,
    overlay,
    reduce_channels,
)

def _bounds(mask):
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


def receptive_field_overlay(image, masks, pixel, ax=None, title=None, labels=None):
    """Draws ``image`` with the nested windows of ``masks`` around ``pixel``.

    Args:
        image: ``(H, W, 3)``.
        masks: boolean ``(L + 1, H, W)`` from ``receptive.receptive_field_mask``; the global level dashed.
        pixel: ``(row, column)``, marked with a cross.
        ax: axes to draw on; a new figure by default.
        title: axes title.
        labels: one legend entry per level.
    """
    image = image_array(image)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(
            f"`masks` must have shape (levels, {image.shape[0]}, {image.shape[1]}) to match the image; "
            f"received shape {masks.shape}."
        )
    fig, ax = figure_axes(ax, (4, 4))
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
    """The receptive field of every level around ``pixel`` of ``image``, for one setting."""
    image = image_array(image)
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
        masks: the analytic windows ``(L + 1, H, W)``, outlined in red.
        pixel: ``(row, column)``, marked with a cross.
        titles: one title per level.
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
        image_size: draws a horizontal line at this size.
    """
    fig, ax = figure_axes(ax, (5, 3.5))
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


def modulator_overlay(image, modulator, ax=None, title="modulator", reduce="norm", cmap="inferno"):
    """``image`` with the modulator ``(h, w, C)`` stretched over it, reduced over channels.

    ``reduce`` is ``"norm"`` or ``"mean"``.
    """
    image = image_array(image)
    fig, ax = figure_axes(ax, (4, 4))
    overlay(ax, image, reduce_channels(modulator, reduce), title, cmap=cmap)
    return fig


def modulator_figure(image, modulator, title="modulator", reduce="norm", cmap="inferno"):
    """Two panels: the modulator reduced over channels over ``image``, and alone with a colour bar."""
    image = image_array(image)
    values = reduce_channels(modulator, reduce)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.8), layout="constrained")
    overlay(left, image, values, "over the image", cmap=cmap)
    shown = right.imshow(values, cmap=cmap)
    right.set_title("||M|| per token" if reduce == "norm" else "mean of M per token", fontsize=9)
    right.axis("off")
    fig.colorbar(shown, ax=right, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig


def channel_norm_maps(maps, titles=None, image=None, suptitle=None, reduce="norm", cmap="inferno", shared=True):
    """One panel per ``(h, w, C)`` map, reduced over channels (over ``image`` when given).

    ``shared``: one colour scale for all panels.
    """
    maps = [np.asarray(m) for m in maps]
    reduced = [reduce_channels(values, reduce) for values in maps]
    scale = {}
    if shared:
        scale = dict(vmin=min(float(r.min()) for r in reduced), vmax=max(float(r.max()) for r in reduced))
    fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.9), squeeze=False, layout="constrained")
    for index, (ax, values) in enumerate(zip(axes[0], reduced)):
        title = titles[index] if titles else f"map {index + 1}"
        if image is not None:
            shown = ax.imshow(image_array(image))
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
