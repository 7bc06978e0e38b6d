"""FocalNet.from_preset / focaledu.pretrained / focaledu.zoo: shipped weights, their checksum and accuracy.

Models are exported with ``benchmarks/export_pretrained.py``'s ``export``.

A tiny random FocalNet is exported into a temporary weights folder to test the
round trip, the checksum, the refusals and offline loading in seconds. The
shipped models (``focaledu/weights/*.json``) are checked as well: they load
offline, and, where ``../shared/data/cifar10-jpeg.zip`` (or
``$FOCALEDU_CIFAR10``) is present, reach their documented accuracy on the
fixed 1,000-image subset.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import focaledu
from focaledu import training, zoo
from focaledu.data import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, load_cifar10, synthetic_cifar10
from focaledu.model import FocalNet

ROOT = Path(__file__).resolve().parents[1]
REAL_ZIP = ROOT / ".." / "shared" / "data" / "cifar10-jpeg.zip"
TINY = {"embed_dim": 8, "depths": [1, 1, 1]}
SHIPPED = zoo.list_pretrained()


def _export_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # for the script's `import _common`
    spec = importlib.util.spec_from_file_location("export_pretrained", ROOT / "benchmarks" / "export_pretrained.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORT = _export_module()


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    return FocalNet.from_preset("focalnet_cifar_tiny", **TINY)


def _export(model, folder, name="tiny", **kwargs):
    data = synthetic_cifar10(n_train=10, n_test=60, seed=0)
    kwargs.setdefault("max_accuracy_drop", 1.0)  # a random model's near-ties may flip in float16
    return EXPORT.export(model, name, dataset=data, directory=folder, subset_per_class=3,
                      facts={"date": "2024-01-01T00:00:00+00:00"}, reproduce=["python train.py", "python export.py"],
                      **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    model = _tiny_model()
    return folder, model, _export(model, folder)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _images(n=4, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 32, 32, 3)).astype("float32")


# --------------------------------------------------------------------------
# Round trip through a temporary weights folder
# --------------------------------------------------------------------------


@pytest.mark.backends
def test_round_trip_matches_the_model_within_float16(exported, no_network):
    folder, model, manifest = exported
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.json", "tiny.md", "tiny.npz"]  # no staging left
    assert zoo.list_pretrained(folder) == ["tiny"]
    assert zoo.pretrained_info("tiny", directory=folder) == json.loads((folder / "tiny.json").read_text()) == manifest
    assert manifest["sha256"] == zoo.file_sha256(folder / "tiny.npz") and manifest["storage_dtype"] == "float16"

    loaded = focaledu.pretrained("tiny", directory=folder)
    # Trained on standardised batches, shipped to take pixels as they come.
    assert isinstance(loaded, FocalNet) and loaded.get_config() == {
        **model.get_config(), "include_preprocessing": True, "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}
    for original, restored in zip(model.weights, loaded.weights):
        assert original.path == restored.path and restored.dtype == "float32"
        expected = keras.ops.convert_to_numpy(original).astype("float16").astype("float32")
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored), expected)
    pixels = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype="uint8")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(pixels)),
                               keras.ops.convert_to_numpy(model(training.preprocess_images(pixels))),
                               atol=2e-2, rtol=2e-2)


@pytest.mark.backends
def test_manifest_documents_accuracy_recipe_and_reproduction(exported):
    folder, _, manifest = exported
    acc = manifest["accuracy"]
    assert acc["test"]["n"] == 60 and acc["subset"]["n"] == 30 and acc["subset"]["per_class"] == 3
    for split in ("test", "subset"):
        assert 0 <= acc[split]["stored"] <= 1 and 0 <= acc[split]["float32"] <= 1
    assert manifest["class_names"] == list(synthetic_cifar10(10, 10).class_names)
    assert manifest["data"].startswith("synthetic") and manifest["reproduce"] == ["python train.py", "python export.py"]
    assert manifest["date"].startswith("2024") and manifest["parameters"] == _tiny_model().count_params()
    card = (folder / "tiny.md").read_text()
    assert manifest["sha256"] in card and "python export.py" in card and "fixed subset" in card


@pytest.mark.backends
def test_export_is_deterministic(exported, tmp_path):
    folder, model, manifest = exported
    again = _export(model, tmp_path)
    assert again["sha256"] == manifest["sha256"]
    assert (tmp_path / "tiny.npz").read_bytes() == (folder / "tiny.npz").read_bytes()


@pytest.mark.backends
def test_fixed_subset_is_the_first_images_of_each_class():
    data = synthetic_cifar10(n_train=10, n_test=50, seed=0)
    images, labels = zoo.fixed_subset(data, per_class=2)
    assert list(labels) == list(range(10)) * 2  # synthetic labels cycle 0..9, order kept
    np.testing.assert_array_equal(images, data.x_test[:20])
    assert zoo.subset_fingerprint(images, labels) != zoo.subset_fingerprint(data.x_test[:20][::-1], labels[::-1])


def test_fixed_subset_equals_load_cifar10_limit(tmp_path):
    """The documented definition: fixed_subset(full) == load_cifar10(path, limit_per_class=(1, n)).x_test."""
    from PIL import Image
    import io

    rng = np.random.default_rng(0)
    path = tmp_path / "mini.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in (("train", 1), ("test", 4)):
            for cls in CIFAR10_CLASSES:
                for i in rng.permutation(count):  # written out of order: the loader sorts names
                    buffer = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
                    archive.writestr(f"{split}/{cls}/{i:04d}.jpg", buffer.getvalue())
    images, labels = zoo.fixed_subset(load_cifar10(path), per_class=3)
    limited = load_cifar10(path, limit_per_class=(1, 3))
    np.testing.assert_array_equal(images, limited.x_test)
    np.testing.assert_array_equal(labels, limited.y_test)


# --------------------------------------------------------------------------
# Errors: checksum, missing file, unknown name, refusals
# --------------------------------------------------------------------------


@pytest.mark.backends
def test_corrupted_weights_raise_a_clear_checksum_error(exported, tmp_path, monkeypatch):
    folder, _, manifest = exported
    shutil.copytree(folder, tmp_path, dirs_exist_ok=True)
    raw = bytearray((tmp_path / "tiny.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "tiny.npz").write_bytes(bytes(raw))
    built = []
    monkeypatch.setattr(FocalNet, "from_config", classmethod(lambda cls, config: built.append(config)))
    with pytest.raises(zoo.ChecksumError) as info:
        focaledu.pretrained("tiny", directory=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "tiny.npz") in message and manifest["sha256"] in message
    assert zoo.file_sha256(tmp_path / "tiny.npz") in message
    assert "Reinstall" in message and "python export.py" in message
    assert isinstance(info.value, ValueError) and built == []  # nothing was built or loaded


@pytest.mark.backends
def test_missing_weights_and_unknown_names(exported, tmp_path):
    folder, _, _ = exported
    shutil.copy(folder / "tiny.json", tmp_path / "tiny.json")
    with pytest.raises(FileNotFoundError, match="tiny.npz.*missing.*reinstall"):
        focaledu.pretrained("tiny", directory=tmp_path)
    with pytest.raises(ValueError, match="Unknown pretrained model 'tine'. Accepted values: tiny"):
        focaledu.pretrained("tine", directory=folder)
    with pytest.raises(ValueError, match="Accepted values: " + (", ".join(SHIPPED) if SHIPPED else r"\(none")):
        focaledu.pretrained("no_such_model")
    assert zoo.list_pretrained(tmp_path / "absent") == []
    (tmp_path / "other.json").write_text("{not json")
    with pytest.raises(ValueError, match="other.json is not readable JSON"):
        zoo.pretrained_info("other", directory=tmp_path)


def _only_staging_free(folder):
    return [p.name for p in folder.iterdir()] if folder.exists() else []


@pytest.mark.backends
def test_export_refuses_large_files_and_overflow(tmp_path):
    model = _tiny_model()
    with pytest.raises(ValueError, match="over the limit of 100"):
        _export(model, tmp_path, max_bytes=100)
    assert _only_staging_free(tmp_path) == []
    model.get_layer("head").kernel.assign(np.full(model.get_layer("head").kernel.shape, 1e6, "float32"))
    with pytest.raises(ValueError, match="head/kernel overflows float16"):
        _export(model, tmp_path)
    assert _only_staging_free(tmp_path) == []


@pytest.mark.backends
def test_export_refuses_an_accuracy_drop(tmp_path, monkeypatch):
    model = _tiny_model()
    monkeypatch.setattr(EXPORT, "accuracy", lambda m, x, y: 0.9 if m is model else 0.897)
    with pytest.raises(ValueError, match="lowers test accuracy from 0.9000 to 0.8970"):
        _export(model, tmp_path, max_accuracy_drop=EXPORT.MAX_ACCURACY_DROP)
    assert _only_staging_free(tmp_path) == []
    monkeypatch.setattr(EXPORT, "accuracy", lambda m, x, y: 0.9 if m is model else 0.899)
    assert _export(model, tmp_path, max_accuracy_drop=EXPORT.MAX_ACCURACY_DROP)["accuracy"]["test"]["stored"] == 0.899


@pytest.mark.backends
def test_export_refuses_synthetic_data_into_the_package(tmp_path):
    before = sorted(zoo.WEIGHTS_DIR.iterdir()) if zoo.WEIGHTS_DIR.exists() else []
    with pytest.raises(ValueError, match="synthetic"):
        _export(_tiny_model(), None)
    with pytest.raises(ValueError, match="name"):
        _export(_tiny_model(), tmp_path, name="../escape")
    assert (sorted(zoo.WEIGHTS_DIR.iterdir()) if zoo.WEIGHTS_DIR.exists() else []) == before


def test_export_script_end_to_end(tmp_path):
    """benchmarks/export_pretrained.py on a saved run: model.keras + metrics.json -> weights folder."""
    from PIL import Image
    import io

    run = tmp_path / "run"
    run.mkdir()
    _tiny_model().save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({
        "command": "python benchmarks/cifar10_cpu.py --run-dir runs/x", "date": "2024-02-03T04:05:06+00:00",
        "epochs": 2, "train_seconds": 12.5, "recipe": {"name": "full", "epochs": 30}, "test_accuracy": 0.1,
        "data": {"source_label": "CIFAR-10 (JPEG mirror)", "test_images": 9999},
    }))
    data = synthetic_cifar10(n_train=10, n_test=50, seed=0)
    path = tmp_path / "cifar.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
            for i, (image, label) in enumerate(zip(x, y)):
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, "JPEG")
                archive.writestr(f"{split}/{CIFAR10_CLASSES[label]}/{i:04d}.jpg", buffer.getvalue())
    out = tmp_path / "weights"
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "export_pretrained.py"), str(run), "--name", "tiny_run",
         "--data", str(path), "--weights-dir", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = zoo.pretrained_info("tiny_run", directory=out)
    assert manifest["epochs"] == 2 and manifest["train_seconds"] == 12.5 and manifest["recipe"]["name"] == "full"
    assert manifest["reproduce"][0] == "python benchmarks/cifar10_cpu.py --run-dir runs/x"
    assert "export_pretrained.py" in manifest["reproduce"][1] and manifest["data"] == "CIFAR-10 (JPEG mirror)"
    assert manifest["accuracy"]["test"]["n"] == 50 and manifest["accuracy"]["subset"]["n"] == 50
    assert f"sha256 {manifest['sha256']}" in proc.stdout
    assert isinstance(focaledu.pretrained("tiny_run", directory=out), FocalNet)


def test_the_wheel_holds_the_shipped_weights(wheel_files):
    for name in SHIPPED:
        for suffix in (".npz", ".json"):
            assert wheel_files[f"focaledu/weights/{name}{suffix}"] == (zoo.WEIGHTS_DIR / f"{name}{suffix}").read_bytes()


# --------------------------------------------------------------------------
# The shipped models
# --------------------------------------------------------------------------


def _cifar10_copy():
    env = os.environ.get("FOCALEDU_CIFAR10", "").strip()
    path = Path(env) if env else REAL_ZIP
    return path if path.exists() else None


@pytest.mark.backends
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_offline(name, no_network):
    info = zoo.pretrained_info(name)
    path = zoo.WEIGHTS_DIR / info["weights_file"]
    assert path.stat().st_size <= EXPORT.MAX_BYTES and zoo.file_sha256(path) == info["sha256"]
    for key in ("accuracy", "class_names", "recipe", "date", "reproduce", "preprocessing", "data"):
        assert info.get(key), f"{name}'s manifest lacks {key!r}"
    drop = info["accuracy"]["test"]["float32"] - info["accuracy"]["test"]["stored"]
    assert drop <= EXPORT.MAX_ACCURACY_DROP
    model = focaledu.pretrained(name)
    assert model.count_params() == info["parameters"]
    logits = keras.ops.convert_to_numpy(model(_images(2)))
    assert logits.shape == (2, len(info["class_names"])) and np.all(np.isfinite(logits))


@pytest.mark.parametrize("name", SHIPPED)
def test_from_preset_is_the_one_entry_point_for_shipped_weights(name, no_network):
    images = _images(2)
    expected = focaledu.pretrained(name).predict(images, verbose=0)
    for model in (FocalNet.from_preset(name), FocalNet.from_preset(name, load_weights=True)):
        np.testing.assert_array_equal(model.predict(images, verbose=0), expected)
    untrained = FocalNet.from_preset(name, load_weights=False, num_classes=4)
    assert untrained.count_params() != zoo.pretrained_info(name)["parameters"]
    assert untrained.get_config() == {**FocalNet.from_config(zoo.pretrained_info(name)["config"]).get_config(),
                                      "num_classes": 4}
    with pytest.raises(ValueError, match="fit its own architecture.*'num_classes'.*load_weights=False"):
        FocalNet.from_preset(name, num_classes=4)


def test_from_preset_says_which_presets_have_weights():
    assert FocalNet.from_preset("focalnet_cifar_tiny", load_weights=False).count_params() > 0
    with pytest.raises(ValueError, match="`load_weights=True`, but the preset 'focalnet_cifar_tiny' is an architecture"):
        FocalNet.from_preset("focalnet_cifar_tiny", load_weights=True)
    with pytest.raises(ValueError, match="Unknown `preset` 'focalnet_cifar'.*focalnet_cifar_tiny.*with trained weights"):
        FocalNet.from_preset("focalnet_cifar")
    with pytest.raises(ValueError, match="`load_weights` must be True, False or None; received load_weights='yes'"):
        FocalNet.from_preset("focalnet_cifar_tiny", load_weights="yes")


@pytest.mark.backends
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reaches_its_documented_subset_accuracy_on_uint8_images(name):
    source = _cifar10_copy()
    if source is None:
        pytest.skip(f"no CIFAR-10 copy ({REAL_ZIP} or $FOCALEDU_CIFAR10)")
    info = zoo.pretrained_info(name)
    subset = info["accuracy"]["subset"]
    data = load_cifar10(source, limit_per_class=(1, subset["per_class"]), download=False)
    if data.source_label != info["data"]:
        pytest.skip(f"{source} is {data.source_label!r}; {name} is documented on {info['data']!r}")
    same_images = zoo.subset_fingerprint(data.x_test, data.y_test) == subset["sha256"]
    if not same_images and source.name != info["data_source"]:
        # e.g. the JPEG-bytes .npz mirror: another file order, so another "first 100 per class".
        pytest.skip(f"{source.name} gives other subset images than {info['data_source']}, where {name} is documented")
    assert data.x_test.dtype == np.uint8
    logits = FocalNet.from_preset(name).predict(data.x_test, batch_size=250, verbose=0)  # pixels as they come
    measured = float(np.mean(np.argmax(logits, axis=1) == data.y_test))
    assert len(data.y_test) == subset["n"]
    assert abs(measured - subset["stored"]) <= 0.002 + 1e-9, (
        f"{name}: {measured:.4f} on the fixed subset of {source}, documented {subset['stored']:.4f} "
        f"(same images as documented: {same_images})"
    )
