"""Real images for the chapters, available offline (CIFAR-10 examples fall back to the synthetic set)."""

from dataclasses import dataclass

import numpy as np

from focaledu import data


def sample_image(size=None):
    """Grace Hopper's portrait from Matplotlib's sample data, float32 in [0, 1], ``(H, W, 3)``; ``size`` resizes it."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        image = Image.open(handle).convert("RGB")
        if size is not None:
            height, width = size
            image = image.resize((width, height), Image.BICUBIC)
        return np.asarray(image, dtype="float32") / 255.0


@dataclass
class Examples:
    images: np.ndarray  # uint8 (n, 32, 32, 3)
    labels: np.ndarray
    class_names: tuple
    source_label: str  # "CIFAR-10", "CIFAR-10 (JPEG mirror)" or the synthetic label


def cifar_examples(per_class=1, source=None):
    """``per_class`` test images of each class, from CIFAR-10 or, offline, the synthetic set."""
    try:
        dataset = data.load_cifar10(source, limit_per_class=(per_class, per_class))
    except data.DatasetUnavailableError:
        dataset = data.synthetic_cifar10(n_train=10 * per_class, n_test=10 * per_class, seed=0)
    return Examples(dataset.x_test, dataset.y_test, tuple(dataset.class_names), dataset.source_label)
