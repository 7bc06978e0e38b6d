"""load_cifar10's source order: path, Keras cache, Hugging Face copy, Keras download, opt-in synthetic fallback.

Never touches the network: the Hugging Face copy is a parquet folder with the
Hub's layout written to tmp_path and loaded through the real
``datasets.load_dataset`` in offline mode; the hanging download talks to a
local proxy that never answers.
"""

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

# Hub access raises instead of connecting, if `datasets` is first imported here; the
# fixture below also sets its constants, for a session that imported it earlier.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import numpy as np
import pytest
from PIL import Image

from focaledu import data, hf_source
from focaledu.data import CIFAR10_CLASSES, ENV_VAR, SYNTHETIC_LABEL, DatasetUnavailableError, load_cifar10

datasets = pytest.importorskip("datasets")

HF_URL_PREFIX = "https://huggingface.co/"
REAL_DOWNLOAD = data._download_with_keras
REAL_PROBE = data._network_available


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """No env var, an empty Keras home, Hugging Face offline with its cache in tmp_path, no real probe or download."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    (tmp_path / "keras-home").mkdir()  # Keras (and data._keras_home) use /tmp/.keras if it does not exist
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # installed with datasets
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(data, "_network_available", lambda url, timeout: False)
    monkeypatch.setattr(data, "_download_with_keras", lambda time_limit: pytest.fail("a test tried to download"))


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _split(n_per_class, seed):
    """Randomly ordered labels, as in the official batches, and random images."""
    labels = np.random.default_rng(seed).permutation(np.arange(10 * n_per_class) % 10)
    return _images(len(labels), seed), labels


def _write_hub_copy(root, train, test, replace=None):
    """``plain_text/{split}-00000-of-00001.parquet`` with ``img`` = {bytes, path} PNG and a ClassLabel ``label``.

    ``replace`` maps a train row to the bytes stored instead of its PNG.
    """
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CIFAR10_CLASSES))})
    (root / "plain_text").mkdir(parents=True)
    for name, (x, y) in (("train", train), ("test", test)):
        pngs = [_png(image) for image in x]
        if name == "train":
            for row, raw in (replace or {}).items():
                pngs[row] = raw
        rows = {"img": [{"bytes": raw, "path": None} for raw in pngs], "label": y.tolist()}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(root / "plain_text" / f"{name}-00000-of-00001.parquet"))
    return root


@pytest.fixture
def hub_copy(tmp_path, monkeypatch):
    """A 6-per-class train / 3-per-class test Hub copy that load_cifar10 finds as its Hugging Face source."""
    train, test = _split(6, 1), _split(3, 2)
    root = _write_hub_copy(tmp_path / "hub", train, test)
    monkeypatch.setattr(hf_source, "HF_DATASET", str(root))
    monkeypatch.setattr(data, "_network_available", lambda url, timeout: url.startswith(HF_URL_PREFIX))
    return root, train, test


@pytest.fixture
def batches_dir(tmp_path):
    """A minimal cifar-10-batches-py (one image per class per batch)."""
    import pickle

    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name, seed in [(f"data_batch_{i}", i) for i in range(1, 6)] + [("test_batch", 9)]:
        rows = _images(10, seed).transpose(0, 3, 1, 2).reshape(10, 3072)
        (root / name).write_bytes(pickle.dumps({b"data": rows, b"labels": list(range(10))}, protocol=2))
    return root


# --------------------------------------------------------------------------
# The Hugging Face source
# --------------------------------------------------------------------------


@pytest.mark.backends
def test_hugging_face_copy_loads_losslessly_through_load_dataset(hub_copy):
    root, (x_train, y_train), (x_test, y_test) = hub_copy
    ds = load_cifar10()
    assert ds.source_label == "CIFAR-10 (Hugging Face uoft-cs/cifar10)" and ds.source == str(root)
    assert ds.class_names == CIFAR10_CLASSES and not ds.is_synthetic
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape == (60, 32, 32, 3)
    assert ds.y_train.dtype == np.int64 and ds.x_test.shape == (30, 32, 32, 3)
    # PNG is lossless and the rows keep the parquet order.
    assert np.array_equal(ds.x_train, x_train) and np.array_equal(ds.y_train, y_train)
    assert np.array_equal(ds.x_test, x_test) and np.array_equal(ds.y_test, y_test)


def test_limit_per_class_keeps_the_first_of_each_class_and_decodes_only_those(hub_copy, monkeypatch):
    _, (x_train, y_train), (x_test, y_test) = hub_copy
    decoded = []
    real_decode = hf_source._decode_image
    monkeypatch.setattr(hf_source, "_decode_image", lambda raw, where: decoded.append(where) or real_decode(raw, where))
    ds = load_cifar10(limit_per_class=(2, 1))
    keep_train = [i for i in range(len(y_train)) if list(y_train[: i + 1]).count(y_train[i]) <= 2]
    keep_test = [i for i in range(len(y_test)) if list(y_test[: i + 1]).count(y_test[i]) <= 1]
    assert np.array_equal(ds.x_train, x_train[keep_train]) and np.array_equal(ds.y_train, y_train[keep_train])
    assert np.array_equal(ds.x_test, x_test[keep_test]) and np.array_equal(ds.y_test, y_test[keep_test])
    assert len(decoded) == 20 + 10  # the 40 + 20 dropped rows were never decoded


def test_corrupt_image_in_a_dropped_row_is_never_read(tmp_path, monkeypatch):
    train, test = _split(3, 1), _split(1, 2)
    last = len(train[1]) - 1  # with 3 images per class, the last row is the third of its class
    root = _write_hub_copy(tmp_path / "hub", train, test, replace={last: b"\x89PNG, but cut short"})
    monkeypatch.setattr(hf_source, "HF_DATASET", str(root))
    monkeypatch.setattr(data, "_network_available", lambda url, timeout: url.startswith(HF_URL_PREFIX))
    assert len(load_cifar10(limit_per_class=2).y_train) == 20
    with pytest.raises(DatasetUnavailableError, match=rf"Hugging Face .*failed: .*train\[{last}\] is not a readable image"):
        load_cifar10()


def test_the_real_hub_id_cannot_be_reached_from_the_tests():
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="OfflineModeIsEnabled"):
        hf_source.load_hugging_face(hf_source.HF_DATASET, (1, 1))
    assert time.monotonic() - start < 30


# --------------------------------------------------------------------------
# Order: path > Keras cache > Hugging Face > Keras download
# --------------------------------------------------------------------------


def test_a_path_beats_hugging_face(hub_copy, batches_dir, monkeypatch):
    monkeypatch.setattr(hf_source, "load_hugging_face", lambda *a: pytest.fail("used Hugging Face"))
    assert load_cifar10(batches_dir).source == str(batches_dir)
    monkeypatch.setenv(ENV_VAR, str(batches_dir))
    assert load_cifar10().source_label == "CIFAR-10"


def test_the_keras_cache_beats_hugging_face(hub_copy, batches_dir, monkeypatch):
    cached = Path(os.environ["KERAS_HOME"]) / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    cached.parent.mkdir(parents=True)
    batches_dir.rename(cached)
    monkeypatch.setattr(data, "_network_available", lambda *a: pytest.fail("probed the network"))
    assert load_cifar10().source == str(cached)


def test_hugging_face_beats_the_keras_download(hub_copy, monkeypatch):
    probed = []
    monkeypatch.setattr(data, "_network_available", lambda url, timeout: probed.append(url) or True)
    assert load_cifar10().source_label == hf_source.LABEL_HUGGING_FACE
    assert len(probed) == 1 and probed[0].startswith(HF_URL_PREFIX)


def test_without_datasets_the_keras_download_is_next(monkeypatch, batches_dir):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    monkeypatch.setattr(data, "_network_available", lambda url, timeout: True)
    monkeypatch.setattr(data, "_download_with_keras", lambda time_limit: data._load_batches_dir(batches_dir))
    assert load_cifar10(limit_per_class=1).source == str(batches_dir)

    def broken(time_limit):
        raise OSError("connection reset")

    monkeypatch.setattr(data, "_download_with_keras", broken)
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar10()
    assert "Hugging Face uoft-cs/cifar10: skipped: the `datasets` package is not installed" in str(info.value)
    assert "Keras download: failed: connection reset" in str(info.value)


def test_download_false_skips_both_network_sources(hub_copy, monkeypatch):
    monkeypatch.setattr(data, "_network_available", lambda *a: pytest.fail("probed the network"))
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar10(download=False)
    assert "Hugging Face" in str(info.value) and str(info.value).count("skipped: download=False") == 2


def test_any_http_answer_counts_as_online(monkeypatch):
    """A server that refuses HEAD (405) is still online; a closed port is not."""
    import http.server

    class NoHead(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_error(405)

        def log_message(self, *args):
            pass

    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = http.server.HTTPServer(("127.0.0.1", 0), NoHead)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert REAL_PROBE(f"http://127.0.0.1:{server.server_port}/api/datasets/x", 2.0) is True
    finally:
        server.shutdown()
        server.server_close()
    assert REAL_PROBE(f"http://127.0.0.1:{server.server_port}/api/datasets/x", 2.0) is False


# --------------------------------------------------------------------------
# The Keras download's time limit
# --------------------------------------------------------------------------


@pytest.fixture
def silent_proxy(monkeypatch):
    """A local HTTPS proxy that accepts connections, reads the request and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    requests, held = [], []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            requests.append(conn.recv(4096))

    threading.Thread(target=serve, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.getsockname()[1]}"
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield requests
    server.close()
    for conn in held:
        conn.close()


def test_a_hanging_keras_download_gives_up_within_the_time_limit(silent_proxy, monkeypatch):
    """The real keras.datasets.cifar10.load_data() in its child process, against a proxy that never answers."""
    monkeypatch.setattr(data, "_network_available", lambda url, timeout: url == data._CIFAR10_URL)
    monkeypatch.setattr(data, "_download_with_keras", REAL_DOWNLOAD)
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError, match=r"Keras download: failed: gave up after time_limit=15 s"):
        load_cifar10(time_limit=15)
    assert time.monotonic() - start < 15 + 5
    assert any(b"CONNECT www.cs.toronto.edu:443" in request for request in silent_proxy)  # it really was fetching


def test_the_download_process_is_stopped_not_abandoned(tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    monkeypatch.setattr(data, "_KERAS_DOWNLOAD",
                        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="time_limit=2 s"):
        REAL_DOWNLOAD(2)
    assert time.monotonic() - start < 2 + 3
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_failing_download_reports_the_child_error(monkeypatch):
    monkeypatch.setattr(data, "_KERAS_DOWNLOAD", "raise SystemExit('Exception: URL fetch failure on cifar: 403 -- Forbidden')")
    with pytest.raises(OSError, match="403 -- Forbidden"):
        REAL_DOWNLOAD(30)


# --------------------------------------------------------------------------
# Fallback and the error
# --------------------------------------------------------------------------

SOURCES = ("source=", f"${ENV_VAR}", "Keras cache", "Hugging Face uoft-cs/cifar10", "Keras download")


def test_without_fallback_the_error_names_every_source_and_why(capsys):
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar10()
    lines = str(info.value).splitlines()
    tried = [line.strip() for line in lines[1:6]]
    assert [line.split(": ", 1)[0] for line in tried] == list(SOURCES)
    assert tried[0] == "source=: not given" and tried[1] == f"${ENV_VAR}: not set"
    assert tried[2].startswith("Keras cache: nothing at ") and os.environ["KERAS_HOME"] in tried[2]
    assert "no network connection to https://huggingface.co/" in tried[3]
    assert "no network connection to https://www.cs.toronto.edu/" in tried[4]
    assert "fallback='synthetic'" in str(info.value)
    assert capsys.readouterr().out == ""  # nothing printed, nothing synthetic returned


@pytest.mark.backends
def test_fallback_prints_each_reason_and_returns_labelled_synthetic_data(capsys):
    ds = load_cifar10(limit_per_class=(3, 2), download=False, fallback="synthetic")
    assert ds.is_synthetic and ds.source_label == SYNTHETIC_LABEL
    assert len(ds.y_train) == 30 and len(ds.y_test) == 20 and ds.class_names != CIFAR10_CLASSES
    out = capsys.readouterr().out.splitlines()
    reasons = [line.strip() for line in out if line.startswith("  ")]
    assert [line.split(": ", 1)[0] for line in reasons] == list(SOURCES)
    assert reasons[3:] == ["Hugging Face uoft-cs/cifar10: skipped: download=False", "Keras download: skipped: download=False"]
    assert "synthetic_cifar10(n_train=30, n_test=20, seed=0)" in out[-1] and SYNTHETIC_LABEL in out[-1]


def test_fallback_reports_a_failed_hugging_face_load(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    monkeypatch.setattr(hf_source, "HF_DATASET", str(empty))
    monkeypatch.setattr(data, "_network_available", lambda url, timeout: url.startswith(HF_URL_PREFIX))
    ds = load_cifar10(limit_per_class=1, fallback="synthetic")
    assert ds.is_synthetic
    out = capsys.readouterr().out
    assert f"Hugging Face {empty}: failed: " in out
    assert "Keras download: no network connection" in out


def test_a_missing_path_is_an_error_even_with_the_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_cifar10(tmp_path / "nowhere", fallback="synthetic")


@pytest.mark.parametrize("kwargs, word", [({"fallback": "random"}, "fallback"), ({"time_limit": 0}, "time_limit")])
def test_bad_arguments_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        load_cifar10(**kwargs)


def test_the_library_imports_and_falls_back_without_datasets(tmp_path):
    code = ("import sys; sys.modules['datasets'] = None\n"
            "from focaledu import data\n"
            "ds = data.load_cifar10(limit_per_class=1, download=False, fallback='synthetic')\n"
            "assert ds.is_synthetic, ds\n")
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras-home"), KERAS_BACKEND="numpy")
    env.pop(ENV_VAR, None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Hugging Face uoft-cs/cifar10: skipped: download=False" in proc.stdout
