"""A procedural, learnable stand-in for CIFAR-10, always labelled ``"synthetic (procedural, not CIFAR-10)"``."""

from __future__ import annotations

import numpy as np

from focaledu.image_dataset import SYNTHETIC_LABEL, ImageDataset, _make_dataset

__all__ = ["SYNTHETIC_CLASSES", "synthetic_cifar10"]

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "x-cross",
    "h-stripes",
    "v-stripes",
    "d-stripes",
    "checker",
)


def synthetic_cifar10(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> ImageDataset:
    """A procedural 10-class dataset shaped like CIFAR-10 (32x32x3 ``uint8``): one random shape pattern per class.

    Labels cycle 0..9, so every prefix or suffix is class-balanced; the test set does not depend on ``n_train``.

    Returns:
        An :class:`ImageDataset` whose ``source_label`` is ``"synthetic (procedural, not CIFAR-10)"``.
    """
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    train = _synthetic_split(n_train, np.random.default_rng(train_seq))
    test = _synthetic_split(n_test, np.random.default_rng(test_seq))
    return _make_dataset(train, test, SYNTHETIC_CLASSES, SYNTHETIC_LABEL, f"synthetic_cifar10(seed={seed})")


def _synthetic_split(n: int, rng: np.random.Generator, chunk: int = 4096):
    labels = np.arange(n, dtype=np.int64) % 10
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        images[start:stop] = _draw_patterns(labels[start:stop], rng)
    return images, labels


def _draw_patterns(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render one image per label, vectorised over the batch."""
    n = len(labels)
    f32 = np.float32
    grid = (np.arange(32, dtype=f32) + 0.5) / 16.0 - 1.0  # pixel centres in [-1, 1]
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    centre = rng.uniform(-0.35, 0.35, size=(n, 2, 1, 1)).astype(f32)
    scale = rng.uniform(0.45, 0.7, size=(n, 1, 1)).astype(f32)
    angle = rng.uniform(-0.3, 0.3, size=(n, 1, 1)).astype(f32)  # about +-17 degrees
    freq = rng.uniform(2.0, 3.5, size=(n, 1, 1)).astype(f32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(f32)
    cos, sin = np.cos(angle), np.sin(angle)
    geometry = {
        # Shape coordinates: centred, rotated and scaled per image.
        "u": (cos * (xx - centre[:, 0]) + sin * (yy - centre[:, 1])) / scale,
        "v": (-sin * (xx - centre[:, 0]) + cos * (yy - centre[:, 1])) / scale,
        # Stripe coordinates: whole image, rotated only.
        "xs": cos * xx + sin * yy,
        "ys": -sin * xx + cos * yy,
        "freq": freq,
        "phase": phase,
    }
    mask = np.zeros((n, 32, 32), dtype=bool)
    for label in np.unique(labels):
        chosen = labels == label
        mask[chosen] = _pattern_mask(int(label), **{k: g[chosen] for k, g in geometry.items()})
    background = rng.uniform(0, 255, size=(n, 1, 1, 3)).astype(f32)
    # Foreground differs from background by >= 70 in every channel (mod 256),
    # so the pattern is visible whatever the colours.
    foreground = (background + rng.uniform(70, 185, size=(n, 1, 1, 3)).astype(f32)) % 256
    image = background + mask[..., None] * (foreground - background)
    image += 12.0 * rng.standard_normal(size=image.shape, dtype=f32)
    np.clip(image, 0, 255, out=image)
    return (image + 0.5).astype(np.uint8)


def _pattern_mask(label: int, u, v, xs, ys, freq, phase) -> np.ndarray:
    """Boolean mask of class ``label`` (index into SYNTHETIC_CLASSES)."""
    arm = 0.28
    if label in (0, 4):  # disk, ring
        r = np.sqrt(u**2 + v**2)
        return (r < 1.0) & (r > (0.55 if label == 4 else -1.0))
    if label == 1:  # square
        return np.maximum(abs(u), abs(v)) < 0.85
    if label == 2:  # triangle, apex up
        return (v < 0.7) & (abs(u) < 0.6 * (v + 0.9))
    if label in (3, 5):  # plus, and the same rotated by 45 degrees
        if label == 5:
            u, v = (u + v) / np.sqrt(2), (u - v) / np.sqrt(2)
        return ((abs(u) < arm) | (abs(v) < arm)) & (np.maximum(abs(u), abs(v)) < 1.0)
    wave = lambda t: np.sin(np.pi * freq * t + phase) > 0  # noqa: E731
    if label == 6:
        return wave(ys)  # horizontal stripes
    if label == 7:
        return wave(xs)  # vertical stripes
    if label == 8:
        return wave((xs + ys) / np.sqrt(2))  # diagonal stripes
    return wave(xs) ^ wave(ys)  # checkerboard
