"""The figures a training run writes: learning curves and the modulation maps of a few images.

Every function takes NumPy arrays and returns the ``Figure`` (no ``plt.show()``); matplotlib is imported lazily.
"""

import numpy as np

#: One colour per focal level (level 1 first); the global level is drawn in black.
LEVEL_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def image_array(image):
    """``image`` ready for ``imshow``: checked to be ``(H, W, 3)``; floats clipped to [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"`image` must have shape (height, width, 3); received shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(image, 0.0, 1.0)
    return image[..., 0] if image.shape[-1] == 1 else image


def figure_axes(ax, figsize):
    """``(figure, ax)``: a new figure of ``figsize`` when ``ax`` is None."""
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=figsize)
    return ax.figure, ax


def reduce_channels(modulator, reduce):
    """``(h, w, C)`` to ``(h, w)``: the L2 norm (``reduce="norm"``) or the mean over channels."""
    modulator = np.asarray(modulator, dtype="float32")
    if reduce == "norm":
        return np.linalg.norm(modulator, axis=-1)
    if reduce == "mean":
        return modulator.mean(axis=-1)
    raise ValueError(f"`reduce` must be 'norm' or 'mean'; received reduce={reduce!r}.")


def overlay(ax, image, values, title, cmap="inferno", alpha=0.6):
    """``values`` stretched over ``image`` on ``ax``, half transparent."""
    shown = ax.imshow(image)
    ax.imshow(values, cmap=cmap, alpha=alpha, extent=shown.get_extent(), interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def modulation_overlay(images, gates, modulator, titles=None, reduce="norm", suptitle=None, cmap="inferno"):
    """The keras.io tutorial's picture: per image, the image, each gate map over it, the modulator.

    Args:
        images: ``(B, H, W, 3)`` or one ``(H, W, 3)`` image.
        gates: ``(B, h, w, L + 1)`` (or ``(h, w, L + 1)``), e.g. from ``focaledu.interpret.modulation_maps``.
        modulator: ``(B, h, w, C)`` (or ``(h, w, C)``); shown reduced over channels.
        titles: one row title per image.
        reduce: ``"norm"`` (L2 norm over channels, default) or ``"mean"``.
        suptitle: title of the figure.
    """
    images, gates, modulator = (np.asarray(a) for a in (images, gates, modulator))
    if images.ndim == 3:
        images, gates, modulator = images[None], gates[None], modulator[None]
    if not (len(images) == len(gates) == len(modulator)):
        raise ValueError(
            f"`images`, `gates` and `modulator` must hold the same number of images; received "
            f"{len(images)}, {len(gates)} and {len(modulator)}."
        )
    import matplotlib.pyplot as plt

    levels = gates.shape[-1]
    ncols = levels + 2
    fig, axes = plt.subplots(len(images), ncols, figsize=(2.2 * ncols, 2.4 * len(images)), squeeze=False,
                             layout="constrained")
    for row, (image, gate, mod) in enumerate(zip(images, gates, modulator)):
        image = image_array(image)
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(titles[row] if titles else "image", fontsize=9)
        axes[row, 0].axis("off")
        for level in range(levels):
            name = f"G{level + 1}" + (" (global)" if level == levels - 1 else "")
            overlay(axes[row, level + 1], image, gate[..., level], name, cmap=cmap)
        label = "||M||" if reduce == "norm" else "mean M"
        overlay(axes[row, -1], image, reduce_channels(mod, reduce), f"modulator {label}", cmap=cmap)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def curves(series, x=None, xlabel="", ylabel="", title=None, logy=False, ax=None, styles=None):
    """Line plot of ``{label: values}``; a line with non-finite values ends early, marked with an "x"."""
    fig, ax = figure_axes(ax, (5, 3.5))
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
