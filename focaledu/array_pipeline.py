"""Input pipelines without TensorFlow: NumPy batches through ``keras.utils.PyDataset``.

The ``tf.data`` pipelines of :mod:`focaledu.data` need TensorFlow even when the
model runs on JAX. Where TensorFlow is not installed (a JAX-only GPU machine,
``pip install focaledu jax``), :class:`ArrayPipeline` gives ``model.fit`` the
same batches from NumPy: seeded shuffle, per-image padded random crop and
horizontal flip on ``uint8`` images, ``/255`` and CIFAR-10 standardisation.

Every batch draws from its own generator seeded by ``(seed, epoch, index)``,
so the batches do not depend on the order in which worker threads fetch
them: with the same seed two pipelines give identical epochs. They are not
the same random draws as the ``tf.data`` pipeline's (another generator).
"""

from __future__ import annotations

import keras
import numpy as np

from focaledu.data import CIFAR10_MEAN, CIFAR10_STD

__all__ = ["ArrayPipeline", "crop_and_flip"]


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


class ArrayPipeline(keras.utils.PyDataset):
    """Batches of ``(float32 standardised images, labels)`` from ``uint8`` arrays.

    Args:
        x, y: images ``(N, H, W, C)`` (``uint8``, 0-255) and integer labels.
        batch_size: images per batch.
        seed: seeds shuffling and augmentation.
        augment: padded random crop + horizontal flip.
        shuffle: a new seeded permutation every epoch.
        drop_remainder: drop the last partial batch.
        normalize: CIFAR-10 standardisation after ``/255`` (else only ``/255``).
        num_classes: if given, labels are one-hot ``float32``.
        image_size: resize (bilinear) to this ``(height, width)`` when it differs.
        **kwargs: ``keras.utils.PyDataset``'s ``workers``, ``use_multiprocessing``,
            ``max_queue_size``.
    """

    def __init__(self, x, y, batch_size: int = 128, *, seed: int = 0, augment: bool = False, shuffle: bool = False,
                 drop_remainder: bool = False, normalize: bool = True, num_classes: int | None = None,
                 image_size=None, **kwargs):
        super().__init__(**kwargs)
        if len(x) != len(y):
            raise ValueError(f"`x` and `y` must have the same length; received {len(x)} images and {len(y)} labels.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; received {batch_size!r}.")
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.batch_size, self.seed = batch_size, seed
        self.augment, self.shuffle, self.normalize = augment, shuffle, normalize
        self.drop_remainder = drop_remainder and len(self.x) >= batch_size
        self.num_classes = num_classes
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
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
        if self.augment:
            images = crop_and_flip(images, np.random.default_rng([self.seed, self.epoch, index]))
        images = images.astype("float32") / 255.0
        if self.normalize:
            images = (images - np.float32(CIFAR10_MEAN)) / np.float32(CIFAR10_STD)
        if self.image_size is not None and images.shape[1:3] != self.image_size:
            images = np.asarray(keras.ops.image.resize(images, self.image_size, interpolation="bilinear"),
                                dtype="float32")
        labels = self.y[picks].astype("int64")
        if self.num_classes:
            labels = np.eye(self.num_classes, dtype="float32")[labels]
        return images, labels

    def on_epoch_end(self):
        self.start_at(self.epoch + 1)
