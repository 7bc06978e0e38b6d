"""focaledu.data: every CIFAR-10 source, the offline error, corrupt files,
the synthetic stand-in and the tf.data pipelines.

All fixtures are tiny and written to tmp_path; the one test that reads the
real 60,000-image JPEG mirror runs only where ../shared/data holds it.
"""

import io
import os
import pickle
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focaledu import data, hf_source
from focaledu.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    ENV_VAR,
    SYNTHETIC_LABEL,
    CorruptDatasetError,
    DatasetUnavailableError,
    ImageDataset,
    load_cifar10,
    make_datasets,
    split_validation,
    synthetic_cifar10,
    train_pipeline,
    eval_pipeline,
)

REAL_PROBE = data._network_available  # saved before the autouse fixture stubs it
REAL_DOWNLOAD = data._download_with_keras
REAL_ZIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.zip"


# --------------------------------------------------------------------------
# Fixture builders
# --------------------------------------------------------------------------


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _smooth_images(n, seed):
    """Low-frequency images, so JPEG round trips stay close to the original."""
    rng = np.random.default_rng(seed)
    rows, cols = np.linspace(0, 1, 32)[None, :, None, None], np.linspace(0, 1, 32)[None, None, :, None]
    base = rng.uniform(60, 190, size=(n, 1, 1, 3))
    slope_y, slope_x = rng.uniform(-50, 50, size=(2, n, 1, 1, 3))
    return np.clip(base + slope_y * rows + slope_x * cols, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    """No env var, an empty Keras home, and no real network, for every test."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    monkeypatch.setattr(data, "_network_available", lambda *a, **k: False)

    def no_download(*args, **kwargs):
        raise AssertionError("a test tried to download CIFAR-10")

    monkeypatch.setattr(data, "_download_with_keras", no_download)
    monkeypatch.setattr(hf_source, "load_hugging_face", lambda *a: pytest.fail("a test tried to reach Hugging Face"))


def _write_batch(path, images, labels, name):
    """One pickle in the official format: bytes keys, (N, 3072) CHW rows."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def batches_dir(tmp_path):
    """cifar-10-batches-py with 5 x 10 training and 20 test images."""
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    x_train, y_train = _images(50, 1), np.arange(50) % 10
    x_test, y_test = _images(20, 2), (np.arange(20) * 3) % 10
    for i in range(5):
        part = slice(10 * i, 10 * (i + 1))
        _write_batch(root / f"data_batch_{i + 1}", x_train[part], y_train[part], f"training batch {i + 1} of 5")
    _write_batch(root / "test_batch", x_test, y_test, "testing batch 1 of 1")
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root, (x_train, y_train), (x_test, y_test)


@pytest.fixture
def tarball(batches_dir, tmp_path):
    root, train, test = batches_dir
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(root, arcname="cifar-10-batches-py")
    return path, train, test


def _per_class_images(per_class, seed, smooth=False):
    make = _smooth_images if smooth else _images
    return {c: make(per_class, seed + k) for k, c in enumerate(CIFAR10_CLASSES)}


def _encode(image, suffix):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG" if suffix == ".png" else "JPEG", quality=95)
    return buffer.getvalue()


def _folder_files(splits, prefix, suffix):
    """{relative path: encoded bytes} for a [prefix/]split/class/NNNN layout."""
    files = {}
    for split, per_class in splits.items():
        for cls, images in per_class.items():
            for i, image in enumerate(images):
                rel = f"{split}/{cls}/{i:04d}{suffix}"
                files[f"{prefix}/{rel}" if prefix else rel] = _encode(image, suffix)
    return files


def _interleaved(per_class):
    """What the loader returns for a folder: class 0, 1, ..., 9, 0, 1, ..."""
    n = len(next(iter(per_class.values())))
    x = np.stack([per_class[c][i] for i in range(n) for c in CIFAR10_CLASSES])
    y = np.array([k for _ in range(n) for k in range(10)])
    return x, y


def _folder_splits(smooth=False):
    return {"train": _per_class_images(3, 10, smooth), "test": _per_class_images(2, 50, smooth)}


def _write_folder(root, files):
    for rel, raw in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(raw)
    return root


def _write_zip(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for rel, raw in files.items():
            archive.writestr(rel, raw)
    return path


def _assert_matches(ds, train, test):
    assert np.array_equal(ds.x_train, train[0]) and np.array_equal(ds.y_train, train[1])
    assert np.array_equal(ds.x_test, test[0]) and np.array_equal(ds.y_test, test[1])


def _assert_types(ds):
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (32, 32, 3)
    assert ds.x_test.dtype == np.uint8 and ds.x_test.shape[1:] == (32, 32, 3)
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (len(ds.x_train),)
    assert ds.y_test.dtype == np.int64 and ds.y_test.shape == (len(ds.x_test),)


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------


def test_python_batches_directory(batches_dir):
    root, train, test = batches_dir
    ds = load_cifar10(root)
    _assert_types(ds)
    _assert_matches(ds, train, test)
    assert ds.class_names == CIFAR10_CLASSES
    assert ds.source_label == "CIFAR-10" and ds.source == str(root)


def test_directory_containing_the_batches_directory(batches_dir):
    root, train, test = batches_dir
    _assert_matches(load_cifar10(root.parent), train, test)


def test_official_tarball_read_in_place(tarball):
    path, train, test = tarball
    ds = load_cifar10(str(path))
    _assert_matches(ds, train, test)
    assert ds.source_label == "CIFAR-10" and ds.source == str(path)


@pytest.mark.parametrize("prefix", ["", "cifar10"])
def test_png_image_folder_is_lossless_and_class_interleaved(tmp_path, prefix):
    splits = _folder_splits()
    root = _write_folder(tmp_path / "folder", _folder_files(splits, prefix, ".png"))
    ds = load_cifar10(root)
    _assert_types(ds)
    _assert_matches(ds, _interleaved(splits["train"]), _interleaved(splits["test"]))
    assert ds.class_names == CIFAR10_CLASSES  # CIFAR order, not alphabetical
    assert ds.source_label == "CIFAR-10 (image folder)"


def test_jpeg_image_folder_is_labelled_as_jpeg_mirror(tmp_path):
    splits = _folder_splits(smooth=True)
    root = _write_folder(tmp_path / "jpegs", _folder_files(splits, "cifar10", ".jpg"))
    (root / "cifar10" / "train" / ".DS_Store").write_bytes(b"junk")  # ignored
    ds = load_cifar10(root)
    _assert_types(ds)
    x_expected, y_expected = _interleaved(splits["train"])
    assert np.array_equal(ds.y_train, y_expected)
    assert np.abs(ds.x_train.astype(int) - x_expected).mean() < 4  # lossy, but the same images
    assert ds.source_label == "CIFAR-10 (JPEG mirror)"


def test_zip_of_image_folder_read_without_extracting(tmp_path):
    splits = _folder_splits()
    path = _write_zip(tmp_path / "cifar10-png.zip", _folder_files(splits, "cifar10", ".png"))
    before = set(os.listdir(tmp_path))
    ds = load_cifar10(path)
    assert set(os.listdir(tmp_path)) == before
    _assert_matches(ds, _interleaved(splits["train"]), _interleaved(splits["test"]))
    assert ds.source == str(path)


def test_zip_of_jpegs_is_labelled_as_jpeg_mirror(tmp_path):
    path = _write_zip(tmp_path / "c.zip", _folder_files(_folder_splits(smooth=True), "cifar10", ".jpg"))
    ds = load_cifar10(path)
    assert ds.source_label == "CIFAR-10 (JPEG mirror)"
    assert len(ds.y_train) == 30 and len(ds.y_test) == 20


def test_folder_with_other_class_names_uses_sorted_order(tmp_path):
    files = {}
    for split in ("train", "test"):
        for cls in ("zebra", "apple"):
            files[f"{split}/{cls}/0.png"] = _encode(_images(1, 0)[0], ".png")
    ds = load_cifar10(_write_folder(tmp_path / "f", files))
    assert ds.class_names == ("apple", "zebra")
    assert list(ds.y_train) == [0, 1]


def test_limit_per_class_is_first_n_of_each_class(tmp_path, batches_dir):
    splits = _folder_splits()
    root = _write_folder(tmp_path / "folder", _folder_files(splits, "", ".png"))
    ds = load_cifar10(root, limit_per_class=(2, 1))
    assert np.bincount(ds.y_train).tolist() == [2] * 10
    assert np.bincount(ds.y_test).tolist() == [1] * 10
    assert np.array_equal(ds.x_train[:10], _interleaved(splits["train"])[0][:10])

    root, (x_train, y_train), _ = batches_dir
    small = load_cifar10(root, limit_per_class=1)
    assert np.array_equal(small.x_train, x_train[:10]) and np.array_equal(small.y_train, y_train[:10])


def test_result_unpacks_like_keras_load_data(batches_dir):
    root, train, test = batches_dir
    ds = load_cifar10(root)
    (x_train, y_train), (x_test, y_test) = ds
    assert x_train is ds.x_train and y_test is ds.y_test
    assert "CIFAR-10: 50 train / 20 test images, 10 classes" in ds.describe()
    assert isinstance(ds, ImageDataset) and not ds.is_synthetic and ds.num_classes == 10


# --------------------------------------------------------------------------
# Resolution order and the offline error
# --------------------------------------------------------------------------


def test_environment_variable_is_used(batches_dir, monkeypatch):
    root, train, test = batches_dir
    monkeypatch.setenv(ENV_VAR, str(root))
    ds = load_cifar10()
    _assert_matches(ds, train, test)
    assert ds.source == str(root)


def test_explicit_source_beats_environment_variable(batches_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "does-not-exist"))
    assert load_cifar10(batches_dir[0]).source == str(batches_dir[0])


def test_missing_path_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        load_cifar10()


@pytest.mark.parametrize("subdir", ["cifar-10-batches-py-target/cifar-10-batches-py", "cifar-10-batches-py"])
def test_keras_cache_is_used_before_any_download(batches_dir, monkeypatch, subdir):
    root, train, test = batches_dir
    cached = Path(os.environ["KERAS_HOME"]) / "datasets" / subdir
    cached.parent.mkdir(parents=True, exist_ok=True)
    root.rename(cached)
    monkeypatch.setattr(data, "_network_available", lambda *a: pytest.fail("probed the network"))
    ds = load_cifar10()
    _assert_matches(ds, train, test)
    assert ds.source == str(cached) and ds.source_label == "CIFAR-10"


def test_offline_without_a_copy_raises_a_helpful_error():
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar10()
    assert time.monotonic() - start < 5
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert ENV_VAR in message and "source=" in message and "no network" in message
    assert "synthetic_cifar10" in message


def test_download_false_never_touches_the_network(monkeypatch):
    monkeypatch.setattr(data, "_network_available", lambda *a: pytest.fail("probed the network"))
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_cifar10(download=False)


def _only_toronto_answers(url, timeout):
    return url == data._CIFAR10_URL


def test_failed_download_becomes_dataset_unavailable(monkeypatch):
    monkeypatch.setattr(data, "_network_available", _only_toronto_answers)

    def broken(timeout):
        raise OSError("connection reset")

    monkeypatch.setattr(data, "_download_with_keras", broken)
    with pytest.raises(DatasetUnavailableError, match="connection reset"):
        load_cifar10()


def test_successful_download_is_read_from_the_keras_cache_and_limited(monkeypatch, batches_dir):
    """The child process fills the Keras cache (here: copies the fixture there); the parent reads it."""
    root, (x_train, y_train), _ = batches_dir
    target = Path(os.environ["KERAS_HOME"]) / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    monkeypatch.setattr(data, "_network_available", _only_toronto_answers)
    monkeypatch.setattr(data, "_download_with_keras", REAL_DOWNLOAD)
    monkeypatch.setattr(data, "_KERAS_DOWNLOAD", f"import shutil; shutil.copytree({str(root)!r}, {str(target)!r})")
    ds = load_cifar10(limit_per_class=1)
    _assert_types(ds)
    assert ds.source_label == "CIFAR-10" and ds.source == f"keras download ({target})"
    assert np.array_equal(ds.x_train, x_train[:10]) and np.array_equal(ds.y_train, y_train[:10])


def test_connectivity_probe_is_bounded():
    start = time.monotonic()
    # TEST-NET-3 is never routed; some sandboxes accept the TCP connection
    # anyway and then stay silent, which the probe must also time out on.
    assert REAL_PROBE("https://203.0.113.1/cifar-10-python.tar.gz", 0.3) is False
    assert time.monotonic() - start < 2.0


# --------------------------------------------------------------------------
# Corrupt and truncated files
# --------------------------------------------------------------------------


def test_truncated_zip_names_the_file(tmp_path):
    good = _write_zip(tmp_path / "good.zip", _folder_files(_folder_splits(), "cifar10", ".png"))
    bad = tmp_path / "truncated.zip"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.zip"):
        load_cifar10(bad)


def test_garbage_zip_names_the_file(tmp_path):
    bad = tmp_path / "garbage.zip"
    bad.write_bytes(b"this is not a zip file" * 100)
    with pytest.raises(CorruptDatasetError, match="garbage.zip"):
        load_cifar10(bad)


def test_corrupt_image_inside_zip_names_the_member(tmp_path):
    files = _folder_files(_folder_splits(), "cifar10", ".png")
    files["cifar10/train/cat/0001.png"] = b"\x89PNG but not really"
    path = _write_zip(tmp_path / "c.zip", files)
    with pytest.raises(ValueError, match=r"c\.zip:cifar10/train/cat/0001\.png"):
        load_cifar10(path)


def test_zip_without_train_and_test_folders(tmp_path):
    path = _write_zip(tmp_path / "flat.zip", {"a.png": _encode(_images(1, 0)[0], ".png")})
    with pytest.raises(ValueError, match="flat.zip.*train/<class>"):
        load_cifar10(path)


def test_truncated_tarball_names_the_file(tarball, tmp_path):
    path = tarball[0]
    bad = tmp_path / "cut-10-python.tar.gz"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut-10-python.tar.gz"):
        load_cifar10(bad)


def test_garbage_tarball_names_the_file(tmp_path):
    bad = tmp_path / "junk.tar.gz"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(CorruptDatasetError, match="junk.tar.gz"):
        load_cifar10(bad)


def test_corrupt_batch_pickle_names_the_file(batches_dir):
    root = batches_dir[0]
    (root / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X\x04")  # cut mid-pickle
    with pytest.raises(ValueError, match="data_batch_3"):
        load_cifar10(root)


def test_batch_pickles_cannot_run_code(batches_dir, tmp_path):
    root, marker = batches_dir[0], tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (root / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(CorruptDatasetError, match="test_batch"):
        load_cifar10(root)
    assert not marker.exists()


def test_unknown_file_type(tmp_path):
    path = tmp_path / "cifar.rar"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="cifar.rar"):
        load_cifar10(path)


# --------------------------------------------------------------------------
# Synthetic stand-in
# --------------------------------------------------------------------------


def test_synthetic_shapes_balance_and_label():
    ds = synthetic_cifar10(200, 50, seed=0)
    _assert_types(ds)
    assert len(ds.x_train) == 200 and len(ds.x_test) == 50
    assert np.bincount(ds.y_train).tolist() == [20] * 10
    assert ds.source_label == SYNTHETIC_LABEL == "synthetic (procedural, not CIFAR-10)"
    assert ds.is_synthetic and ds.num_classes == 10 and "CIFAR-10" not in ds.class_names


def test_synthetic_is_deterministic_and_seeded():
    a, b, c = synthetic_cifar10(50, 20, seed=3), synthetic_cifar10(50, 20, seed=3), synthetic_cifar10(50, 20, seed=4)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    # The test set does not depend on how many training images were asked for.
    assert np.array_equal(synthetic_cifar10(10, 20, seed=3).x_test, a.x_test)


def test_synthetic_class_is_in_the_shape_not_the_colour():
    ds = synthetic_cifar10(2000, 10, seed=0)
    mean_colour = ds.x_train.reshape(len(ds.x_train), -1, 3).mean(axis=1)
    per_class = np.stack([mean_colour[ds.y_train == k].mean(axis=0) for k in range(10)])
    assert np.ptp(per_class, axis=0).max() < 25  # every class averages to a similar colour
    assert ds.x_train.std() > 40  # but images are not flat


# --------------------------------------------------------------------------
# tf.data pipelines
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return synthetic_cifar10(120, 40, seed=1)


def _epoch(ds):
    batches = list(ds.as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def test_make_datasets_shapes_dtypes_and_split(small):
    train, validation, test = make_datasets(small, batch_size=16, seed=0)
    images, labels = next(iter(train))
    assert tuple(images.shape) == (16, 32, 32, 3) and images.dtype.name == "float32"
    assert tuple(labels.shape) == (16,) and labels.dtype.name == "int64"
    x_val, y_val = _epoch(validation)
    assert np.array_equal(y_val, small.y_train[-12:])  # the last 10 % of the training set
    assert len(_epoch(train)[1]) == 108
    assert np.array_equal(_epoch(test)[1], small.y_test)


def test_eval_pipeline_standardises_with_cifar10_statistics(small):
    x, y = _epoch(eval_pipeline(small.x_test, small.y_test, batch_size=7))
    expected = (small.x_test / 255.0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    np.testing.assert_allclose(x, expected, atol=1e-5)
    assert np.array_equal(y, small.y_test)
    raw, _ = _epoch(eval_pipeline(small.x_test, small.y_test, normalize=False))
    np.testing.assert_allclose(raw, small.x_test / 255.0, atol=1e-6)


def test_train_pipeline_is_deterministic_for_a_seed(small):
    first = _epoch(train_pipeline(small.x_train, small.y_train, 32, seed=5))
    again = _epoch(train_pipeline(small.x_train, small.y_train, 32, seed=5))
    other = _epoch(train_pipeline(small.x_train, small.y_train, 32, seed=6))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_each_epoch_is_reshuffled_and_reaugmented(small):
    pipeline = train_pipeline(small.x_train, small.y_train, 32, seed=5)
    epoch1, epoch2 = _epoch(pipeline), _epoch(pipeline)
    assert sorted(epoch1[1]) == sorted(epoch2[1])
    assert not np.array_equal(epoch1[1], epoch2[1])


def _find_crop_and_flip(augmented, original, padding=4):
    """(flipped, dy, dx) such that augmented is that crop of the padded original."""
    padded = np.pad(original, ((padding, padding), (padding, padding), (0, 0)))
    for flipped in (False, True):
        target = augmented[:, ::-1] if flipped else augmented
        for dy in range(2 * padding + 1):
            for dx in range(2 * padding + 1):
                if np.allclose(padded[dy : dy + 32, dx : dx + 32], target, atol=1e-6):
                    return flipped, dy, dx
    return None


def test_augmentation_is_a_per_image_crop_and_flip_that_keeps_labels(small):
    x, y = small.x_train[:64], small.y_train[:64]
    plain = _epoch(train_pipeline(x, y, 32, augment=False, shuffle=False, normalize=False))
    augmented = _epoch(train_pipeline(x, y, 32, seed=1, shuffle=False, normalize=False))
    assert np.array_equal(augmented[1], y) and np.array_equal(plain[1], y)
    np.testing.assert_allclose(plain[0], x / 255.0, atol=1e-6)
    assert not np.allclose(augmented[0], plain[0])
    found = [_find_crop_and_flip(a, p) for a, p in zip(augmented[0], plain[0])]
    assert all(f is not None for f in found)
    assert len({(dy, dx) for _, dy, dx in found[:32]}) > 5  # not one window per batch
    assert 0 < sum(flipped for flipped, _, _ in found) < 64


def test_validation_split_options(small):
    (x_fit, _), (x_val, _) = split_validation(small.x_train, small.y_train, 0.25)
    assert len(x_fit) == 90 and len(x_val) == 30 and np.array_equal(x_val, small.x_train[90:])
    assert make_datasets(small, 16, validation_split=0.0).validation is None
    with pytest.raises(ValueError):
        split_validation(small.x_train, small.y_train, 1.0)
    tuple_input = ((small.x_train, small.y_train), (small.x_test, small.y_test))
    assert len(_epoch(make_datasets(tuple_input, 16).test)[1]) == 40


# --------------------------------------------------------------------------
# The real JPEG mirror, when this checkout sits next to shared/data
# --------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_ZIP.exists(), reason=f"{REAL_ZIP} not present")
def test_real_cifar10_jpeg_zip():
    ds = load_cifar10(REAL_ZIP)
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert ds.class_names == CIFAR10_CLASSES
    assert np.bincount(ds.y_train, minlength=10).tolist() == [5000] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [1000] * 10
    assert np.bincount(ds.y_train[-5000:], minlength=10).tolist() == [500] * 10  # balanced validation
    assert ds.source_label == "CIFAR-10 (JPEG mirror)"
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)) / 255, CIFAR10_MEAN, atol=0.005)


def _write_jpeg_npz(path, splits):
    """The layout of ../shared/data/cifar10-jpeg-bytes.npz: class-sorted, concatenated JPEG bytes."""
    blobs, labels, split = [], [], []
    for code, name in ((0, "train"), (1, "test")):
        for label, cls in enumerate(CIFAR10_CLASSES):
            for image in splits[name][cls]:
                blobs.append(_encode(image, ".jpg"))
                labels.append(label)
                split.append(code)
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    np.savez(path, jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets,
             labels=np.array(labels), split=np.array(split), classes=np.array(CIFAR10_CLASSES))
    return path


def test_class_sorted_jpeg_npz_comes_back_interleaved(tmp_path):
    """A class-sorted source must not put whole classes into the validation tail."""
    splits = _folder_splits(smooth=True)
    ds = load_cifar10(_write_jpeg_npz(tmp_path / "bytes.npz", splits))
    _assert_types(ds)
    x_expected, y_expected = _interleaved(splits["train"])
    assert np.array_equal(ds.y_train, y_expected) and np.array_equal(ds.y_test, _interleaved(splits["test"])[1])
    assert np.abs(ds.x_train.astype(int) - x_expected).mean() < 4  # lossy, but the same images in the same order
    assert ds.source_label == "CIFAR-10 (JPEG mirror)"
    limited = load_cifar10(tmp_path / "bytes.npz", limit_per_class=(2, 1))
    assert list(limited.y_train) == list(range(10)) * 2 and list(limited.y_test) == list(range(10))


def test_garbage_npz_names_the_file(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not an npz" * 10)
    with pytest.raises(CorruptDatasetError, match="broken.npz"):
        load_cifar10(bad)


def test_first_per_class_is_the_one_subset_rule():
    """Loading, the training pipelines and the pretrained model's fixed subset keep the same images."""
    from focaledu import image_dataset, pipelines, zoo
    from focaledu.synthetic import synthetic_cifar10

    labels = np.array([2, 0, 2, 1, 0, 2, 1])
    assert image_dataset.first_per_class(labels, 1).tolist() == [0, 1, 3]
    assert image_dataset.first_per_class(labels, None).tolist() == list(range(7))
    data = synthetic_cifar10(n_train=60, n_test=40, seed=0)
    cut = image_dataset.subset_per_class(data, (2, 3))
    assert np.bincount(cut.y_train).tolist() == [2] * 10 and np.bincount(cut.y_test).tolist() == [3] * 10
    recipe = pipelines.Recipe(train_per_class=2, test_per_class=3)
    piped = pipelines.load_data(data, recipe)
    assert np.array_equal(piped.x_train, cut.x_train) and np.array_equal(piped.y_test, cut.y_test)
    images, fixed_labels = zoo.fixed_subset(data, per_class=3)
    assert np.array_equal(images, cut.x_test) and np.array_equal(fixed_labels, cut.y_test)
