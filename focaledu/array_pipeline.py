"""Input pipelines without TensorFlow: NumPy batches through ``keras.utils.PyDataset``.

:class:`ArrayPipeline` gives ``model.fit`` the batches of :mod:`focaledu.data`'s ``tf.data`` pipeline
(seeded shuffle, padded random crop, flip, standardisation) where TensorFlow is not installed, and can
mix batches as timm's ``Mixup`` (:func:`mix_batch`).
"""

from __future__ import annotations

import keras
import numpy as np

from focaledu import _validate
from focaledu.data import CIFAR10_MEAN, CIFAR10_STD

__all__ = ["SCALES", "ArrayPipeline", "crop_and_flip", "mix_batch", "model_scale", "to_inputs"]


#: ``to_inputs``'s ``scale``: what the model expects.
SCALES = ("standardize", "unit", "pixels")


def to_inputs(images, image_size=None, scale: str = "standardize") -> np.ndarray:
    """Pixels in 0-255 to ``float32`` model inputs, resized (bilinear) when ``image_size`` differs.

    Args:
        scale: ``"standardize"`` (``/255``, then CIFAR-10 mean and std), ``"unit"`` (``/255``) or
            ``"pixels"`` (unchanged, for ``FocalNet(include_preprocessing=True)``).
    """
    _validate.choice("scale", scale, SCALES)
    images = np.asarray(images).astype("float32")
    if scale != "pixels":
        images = images / 255.0
    if scale == "standardize":
        images = (images - np.float32(CIFAR10_MEAN)) / np.float32(CIFAR10_STD)
    if image_size is not None and images.shape[1:3] != tuple(image_size):
        images = np.asarray(keras.ops.image.resize(images, tuple(image_size), interpolation="bilinear"),
                            dtype="float32")
    return images


def model_scale(model) -> str:
    """``to_inputs``'s ``scale`` for ``model``: ``"pixels"`` if it includes its preprocessing."""
    return "pixels" if getattr(model, "include_preprocessing", False) else "standardize"


def crop_and_flip(images: np.ndarray, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
    """Per-image random crop of the zero-padded images, then a horizontal flip with probability 1/2."""
    n, h, w = images.shape[:3]
    padded = np.pad(images, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))  # (n, 2p+1, 2p+1, c, h, w)
    rows, cols = rng.integers(0, 2 * padding + 1, size=(2, n))
    cropped = np.moveaxis(windows[np.arange(n), rows, cols], 1, -1)
    flip = rng.random(n) < 0.5
    cropped[flip] = cropped[flip, :, ::-1]
    return cropped


def mix_batch(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, mixup_alpha: float = 0.0,
              cutmix_alpha: float = 0.0, switch_prob: float = 0.5):
    """Mixup or CutMix of a batch with its reverse, as timm's ``Mixup`` (``mode="batch"``).

    One ``lam ~ Beta(alpha, alpha)`` per batch; CutMix is picked with probability ``switch_prob`` when both
    alphas are above 0, and ``lam`` is corrected to the pasted box's area.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, labels
    cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha) if cutmix else rng.beta(mixup_alpha, mixup_alpha))
    partner = images[::-1]
    if cutmix:
        h, w = images.shape[1:3]
        cut = np.sqrt(1.0 - lam)
        cy, cx = rng.integers(h), rng.integers(w)
        y0, y1 = np.clip([cy - int(h * cut) // 2, cy + int(h * cut) // 2], 0, h)
        x0, x1 = np.clip([cx - int(w * cut) // 2, cx + int(w * cut) // 2], 0, w)
        images = images.copy()
        images[:, y0:y1, x0:x1] = partner[:, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        images = lam * images + (1.0 - lam) * partner
    labels = lam * labels + (1.0 - lam) * labels[::-1]
    return images.astype("float32"), labels.astype("float32")


class ArrayPipeline(keras.utils.PyDataset):
    """Batches of ``(float32 images, labels)`` from ``uint8`` arrays, standardised unless ``scale`` says otherwise.

    Batch ``index`` of ``epoch`` draws from a generator seeded by ``(seed, epoch, index)``, so batches do not
    depend on worker order.

    Args:
        x, y: images ``(N, H, W, C)`` (``uint8``, 0-255) and integer labels.
        batch_size: images per batch.
        seed: seeds shuffling and augmentation.
        augment: padded random crop + horizontal flip.
        shuffle: a new seeded permutation every epoch.
        drop_remainder: drop the last partial batch.
        scale: :func:`to_inputs`'s: ``"standardize"``, ``"unit"`` or ``"pixels"``.
        num_classes: if given, labels are one-hot ``float32``.
        image_size: resize (bilinear) to this ``(height, width)`` when it differs.
        mixup_alpha, cutmix_alpha, mix_switch_prob: :func:`mix_batch` on every batch (needs ``num_classes``; 0: off).
        **kwargs: ``keras.utils.PyDataset``'s ``workers``, ``use_multiprocessing``, ``max_queue_size``.
    """

    def __init__(self, x, y, batch_size: int = 128, *, seed: int = 0, augment: bool = False, shuffle: bool = False,
                 drop_remainder: bool = False, scale: str = "standardize", num_classes: int | None = None,
                 image_size=None, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 mix_switch_prob: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if len(x) != len(y):
            raise ValueError(f"`x` and `y` must have the same length; received {len(x)} images and {len(y)} labels.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; received {batch_size!r}.")
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.batch_size, self.seed = batch_size, seed
        self.augment, self.shuffle = augment, shuffle
        self.scale = _validate.choice("scale", scale, SCALES)
        self.drop_remainder = drop_remainder and len(self.x) >= batch_size
        self.num_classes = num_classes
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`{name}` must be a number >= 0 (0: off); received {value!r}.")
        if not 0 <= mix_switch_prob <= 1:
            raise ValueError(f"`mix_switch_prob` must be in [0, 1]; received {mix_switch_prob!r}.")
        if (mixup_alpha or cutmix_alpha) and not num_classes:
            raise ValueError("Mixup/CutMix mix one-hot labels: pass `num_classes` with `mixup_alpha` or "
                             "`cutmix_alpha`.")
        self.mixup_alpha, self.cutmix_alpha, self.mix_switch_prob = mixup_alpha, cutmix_alpha, mix_switch_prob
        self.start_at(0)

    def start_at(self, epoch: int) -> None:
        """Continue with the shuffle and augmentation of ``epoch`` (a resumed run)."""
        self.epoch = int(epoch)
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def __len__(self) -> int:
        full, rest = divmod(len(self.x), self.batch_size)
        return full if self.drop_remainder or not rest else full + 1

    def __getitem__(self, index: int):
        picks = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.x[picks]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.augment:
            images = crop_and_flip(images, rng)
        images = to_inputs(images, self.image_size, self.scale)
        labels = self.y[picks].astype("int64")
        if self.num_classes:
            labels = np.eye(self.num_classes, dtype="float32")[labels]
            images, labels = mix_batch(images, labels, rng, self.mixup_alpha, self.cutmix_alpha,
                                       self.mix_switch_prob)
        return images, labels

    def on_epoch_end(self):
        self.start_at(self.epoch + 1)
