"""Kernel-free explorers: frame generation and the HTML structure (no browser; see test_browser.py)."""

import base64
import json
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from focaledu import static_explorer  # noqa: E402

VALUES = {"a": [1, 2, 3], "b": [0.5, 1.0]}


def _render(calls=None):
    def render(a, b):
        if calls is not None:
            calls.append((a, b))
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [0, a * b])
        ax.set_title(f"{a} {b}")
        return fig

    return render


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def _parse(text):
    parser = _Elements()
    parser.feed(text)
    return parser.elements


def _by_class(elements, cls):
    return [attrs for _, attrs in elements if cls in (attrs.get("class") or "").split()]


def test_render_frames_one_per_combination_first_name_slowest():
    calls = []
    open_before = len(plt.get_fignums())
    frames = static_explorer.render_frames(_render(calls), VALUES, dpi=20)
    assert calls == [(1, 0.5), (1, 1.0), (2, 0.5), (2, 1.0), (3, 0.5), (3, 1.0)]
    assert len(frames) == 6 == static_explorer.frame_count(VALUES)
    assert len(set(frames)) == 6, "different settings should give different images"
    for frame in frames:
        assert frame.startswith("data:image/png;base64,")
        assert base64.b64decode(frame.split(",", 1)[1]).startswith(b"\x89PNG")
    assert len(plt.get_fignums()) == open_before, "frames_explorer must close its figures"


def test_jpeg_frames():
    frames = static_explorer.render_frames(_render(), {"a": [1], "b": [2.0]}, dpi=20, fmt="jpeg")
    assert frames[0].startswith("data:image/jpeg;base64,")
    assert base64.b64decode(frames[0].split(",", 1)[1]).startswith(b"\xff\xd8")


def test_too_many_frames_is_refused_before_rendering():
    calls = []
    with pytest.raises(ValueError, match="max_frames"):
        static_explorer.render_frames(_render(calls), {"a": list(range(10)), "b": list(range(5))}, max_frames=40)
    assert not calls


@pytest.mark.parametrize("values", [{}, {"a": []}, [1, 2]])
def test_bad_values(values):
    with pytest.raises(ValueError):
        static_explorer.render_frames(_render(), values)


def test_html_structure():
    shown = static_explorer.frames_explorer(
        _render(), VALUES, initial={"a": 2, "b": 1.0}, labels={"b": "weight b"}, title="T <1>", dpi=20,
        element_id="my-explorer",
    )
    assert hasattr(shown, "_repr_html_") and shown.frames and shown.values == VALUES
    text = shown.data
    elements = _parse(text)
    [root] = _by_class(elements, "focaledu-explorer")
    assert root["id"] == "my-explorer"
    assert json.loads(root["data-frames"]) == shown.frames
    assert json.loads(root["data-values"]) == [["1", "2", "3"], ["0.5", "1"]]
    sliders = _by_class(elements, "focaledu-explorer-slider")
    assert [s["data-name"] for s in sliders] == ["a", "b"]
    for slider, options in zip(sliders, VALUES.values()):
        assert slider["type"] == "range" and slider["min"] == "0" and slider["max"] == str(len(options) - 1)
        assert "focaledu-explorer" in slider["oninput"] and ".src=" in slider["oninput"]
    assert [s["value"] for s in sliders] == ["1", "1"]
    [image] = _by_class(elements, "focaledu-explorer-image")
    index = 1 * 2 + 1  # a=2 (position 1 of 3), b=1.0 (position 1 of 2)
    assert root["data-frame"] == str(index)
    assert image["src"] == shown.frames[index]
    assert "a=2" in image["alt"] and "b=1" in image["alt"]
    assert "weight b" in text and "T &lt;1&gt;" in text
    # Self-contained: no external script or stylesheet, and no <script> at all (the handler is inline).
    assert not re.search(r"<script|<link|https?://", text)


def test_default_ids_are_unique_and_first_frame_is_shown():
    frames = ["data:image/png;base64,AAAA", "data:image/png;base64,BBBB"]
    one = static_explorer.explorer_html(frames, {"x": [0, 1]})
    two = static_explorer.explorer_html(frames, {"x": [0, 1]})
    ids = [_by_class(_parse(t), "focaledu-explorer")[0]["id"] for t in (one, two)]
    assert ids[0] != ids[1]
    assert _by_class(_parse(one), "focaledu-explorer-image")[0]["src"] == frames[0]


def test_explorer_html_checks_its_arguments():
    frames = ["data:,1", "data:,2"]
    with pytest.raises(ValueError, match="2 combinations"):
        static_explorer.explorer_html(frames[:1], {"x": [0, 1]})
    with pytest.raises(ValueError, match="not one of"):
        static_explorer.explorer_html(frames, {"x": [0, 1]}, initial={"x": 5})
    with pytest.raises(ValueError, match="not in `values`"):
        static_explorer.explorer_html(frames, {"x": [0, 1]}, labels={"y": "?"})
