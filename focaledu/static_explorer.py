"""Kernel-free explorers: pre-rendered frames behind HTML range sliders, for static pages and kernel-less notebooks.

The outer ``div.focaledu-explorer`` holds ``data-values`` and ``data-frames``, one ``input.focaledu-explorer-slider``
per name and an ``img.focaledu-explorer-image``; the frame shown is the row-major index of the slider positions.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import uuid

#: The figure for one frame is made by ``render(**{name: value, ...})``.
MAX_FRAMES = 40

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}

# The inline handler: `this` is the slider that moved. It reads the slider
# positions, updates the value labels and swaps the image source.
_ONINPUT = (
    "var r=this.closest('.focaledu-explorer');"
    "r._f=r._f||JSON.parse(r.getAttribute('data-frames'));"
    "r._v=r._v||JSON.parse(r.getAttribute('data-values'));"
    "var s=r.querySelectorAll('input.focaledu-explorer-slider'),"
    "o=r.querySelectorAll('output.focaledu-explorer-value'),i=0,t=[];"
    "for(var k=0;k<s.length;k++){var j=+s[k].value;i=i*r._v[k].length+j;"
    "o[k].textContent=r._v[k][j];t.push(s[k].getAttribute('data-name')+'='+r._v[k][j]);}"
    "var m=r.querySelector('img.focaledu-explorer-image');m.src=r._f[i];"
    "m.alt=(r.getAttribute('data-title')||'frame')+': '+t.join(', ');"
    "r.setAttribute('data-frame',i);"
)


def _check_values(values):
    if not isinstance(values, dict) or not values:
        raise ValueError(f"`values` must be a non-empty dict of {{name: [values]}}; received {values!r}.")
    checked = {}
    for name, options in values.items():
        options = list(options)
        if not options:
            raise ValueError(f"`values[{name!r}]` is empty; give at least one value.")
        checked[str(name)] = options
    return checked


def frame_count(values):
    """How many frames ``values`` needs: the product of the lengths of its lists."""
    return math.prod(len(options) for options in _check_values(values).values())


def figure_to_data_uri(fig, dpi=60, fmt="png", close=True):
    """``fig`` as a ``data:image/...;base64,`` URI (closed afterwards unless ``close=False``)."""
    import matplotlib.pyplot as plt

    fmt = fmt.lower()
    if fmt not in _MIME:
        raise ValueError(f"`fmt` must be one of {sorted(_MIME)}; received fmt={fmt!r}.")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    return f"data:{_MIME[fmt]};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_frames(render, values, dpi=60, fmt="png", max_frames=MAX_FRAMES):
    """Renders one frame per combination of ``values``, the first name varying slowest.

    Args:
        render: called as ``render(**{name: value})``; returns a Figure.
        values: ``{name: [value, ...]}``; names are ``render``'s keyword arguments.
        dpi, fmt: of the saved images (``"png"`` or ``"jpeg"``).
        max_frames: refuse to render more frames than this.

    Returns:
        A list of data URIs, in ``itertools.product`` order.
    """
    values = _check_values(values)
    count = frame_count(values)
    if count > max_frames:
        raise ValueError(
            f"{' x '.join(str(len(v)) for v in values.values())} = {count} frames is more than "
            f"max_frames={max_frames}; offer fewer values (every frame is embedded in the page)."
        )
    names = list(values)
    frames = []
    for combo in itertools.product(*values.values()):
        fig = render(**dict(zip(names, combo)))
        frames.append(figure_to_data_uri(fig, dpi=dpi, fmt=fmt))
    return frames


def _label(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def explorer_html(frames, values, initial=None, labels=None, title=None, element_id=None):
    """The HTML of a frames explorer over already-rendered ``frames``.

    Args:
        frames: data URIs (or URLs), one per combination of ``values``, in ``render_frames`` order.
        values: ``{name: [value, ...]}``.
        initial: ``{name: value}`` to show first; the first values by default.
        labels: ``{name: text}`` shown next to each slider.
        title: a caption above the sliders (and the image's alt text).
        element_id: the ``id`` of the outer ``div``; unique by default.
    """
    values = _check_values(values)
    frames = list(frames)
    if len(frames) != frame_count(values):
        raise ValueError(f"{len(frames)} frames given, but `values` has {frame_count(values)} combinations.")
    initial = dict(initial or {})
    labels = dict(labels or {})
    unknown = sorted(set(initial) - set(values)) + sorted(set(labels) - set(values))
    if unknown:
        raise ValueError(f"`initial`/`labels` name {unknown}, which are not in `values` ({list(values)}).")
    positions = []
    for name, options in values.items():
        if name in initial:
            if initial[name] not in options:
                raise ValueError(f"initial {name}={initial[name]!r} is not one of {options!r}.")
            positions.append(options.index(initial[name]))
        else:
            positions.append(0)
    index = 0
    for position, options in zip(positions, values.values()):
        index = index * len(options) + position
    element_id = element_id or f"focaledu-explorer-{uuid.uuid4().hex[:10]}"
    shown = [[_label(v) for v in options] for options in values.values()]
    esc = html.escape
    controls = []
    for k, (name, options) in enumerate(values.items()):
        controls.append(
            f'<label style="margin-right:1.5em;white-space:nowrap">{esc(labels.get(name, name))} '
            f'<input type="range" class="focaledu-explorer-slider" data-name="{esc(name)}" '
            f'min="0" max="{len(options) - 1}" step="1" value="{positions[k]}" '
            f'aria-label="{esc(labels.get(name, name))}" oninput="{esc(_ONINPUT)}" style="vertical-align:middle"> '
            f'<output class="focaledu-explorer-value">{esc(shown[k][positions[k]])}</output></label>'
        )
    state = ", ".join(f"{name}={shown[k][positions[k]]}" for k, name in enumerate(values))
    caption = (f'<div class="focaledu-explorer-title" style="font-weight:bold">{esc(title)}</div>'
               if title else "")
    return (
        f'<div class="focaledu-explorer" id="{esc(element_id)}" data-frame="{index}" '
        f'data-title="{esc(title or "frame")}" '
        f'data-values="{esc(json.dumps(shown))}" data-frames="{esc(json.dumps(frames))}">'
        f"{caption}"
        f'<div class="focaledu-explorer-controls">{"".join(controls)}</div>'
        f'<img class="focaledu-explorer-image" src="{esc(frames[index])}" '
        f'alt="{esc((title or "frame") + ": " + state)}" style="max-width:100%">'
        f'<div class="focaledu-explorer-note" style="font-size:smaller;color:#666">'
        f"Pre-rendered ({len(frames)} frames): works without a running kernel.</div>"
        f"</div>"
    )


def frames_explorer(render, values, initial=None, labels=None, title=None, dpi=60, fmt="png",
                    max_frames=MAX_FRAMES, element_id=None):
    """A kernel-free explorer: ``render`` pre-drawn for every combination of ``values``.

    Args:
        render: ``render(**{name: value})`` returns a Matplotlib Figure (closed after saving).
        values: ``{name: [value, ...]}``, one slider per name; every frame is embedded in the page.
        initial, labels, title, element_id: as :func:`explorer_html`.
        dpi, fmt: resolution and format (``"png"`` or ``"jpeg"``) of the frames.
        max_frames: the most frames allowed.

    Returns:
        An ``IPython.display.HTML`` with ``frames`` and ``values`` attributes.
    """
    from IPython.display import HTML

    frames = render_frames(render, values, dpi=dpi, fmt=fmt, max_frames=max_frames)
    shown = HTML(explorer_html(frames, values, initial=initial, labels=labels, title=title,
                               element_id=element_id))
    shown.frames = frames
    shown.values = _check_values(values)
    return shown
