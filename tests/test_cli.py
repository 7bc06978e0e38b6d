"""``python -m focaledu train|evaluate``: an end-to-end quick run, evaluation of
the saved model, the missing-data message, and argument errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focaledu import __main__ as cli
from focaledu import data, training
from focaledu.data import SYNTHETIC_LABEL
from run_callbacks import Interrupt

ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--embed-dim", "16", "--depths", "1,1,1", "--train-per-class", "60", "--test-per-class", "20",
             "--batch-size", "32"]


def _run(args, tmp_path, **env_extra):
    """The real entry point in a subprocess, with no CIFAR-10 and no network."""
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HOME=str(home), KERAS_HOME=str(home / ".keras"), TF_CPP_MIN_LOG_LEVEL="2",
               # An unreachable proxy: the loader's download probe fails at once.
               https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", **env_extra)
    env.pop(data.ENV_VAR, None)
    return subprocess.run([sys.executable, "-m", "focaledu", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


@pytest.fixture(autouse=True)
def _no_cifar(tmp_path, monkeypatch):
    """In-process calls: no env var, an empty Keras home, no network."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(data, "_network_available", lambda *a, **k: False)


def test_train_quick_synthetic_then_evaluate(tmp_path):
    out = tmp_path / "run"
    proc = _run(["train", "--preset", "focalnet_cifar_tiny", "--epochs", "3", "--data", "synthetic",
                 "--out", str(out), "--profile", "quick", "--seed", "1", "--verbose", "2", "--data-pipeline", "numpy",
                 "--flip-tta", "--conv-embed", *TINY_ARGS], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy" in proc.stdout and "Epoch 3/3" in proc.stdout
    for name in ("history.csv", "history.json", "curves.png", "metrics.json", "model.keras", "best.keras"):
        assert (out / name).is_file(), name
    assert len(list((out / "monitor").glob("modulation_epoch_*.png"))) == 3  # quick: every epoch
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["source_label"] == SYNTHETIC_LABEL
    assert metrics["command"].startswith("python -m focaledu train --preset focalnet_cifar_tiny")
    assert {"keras", "backend", "python", "numpy"} <= set(metrics["versions"])
    assert metrics["epochs"] == 3 and metrics["seed"] == 1 and metrics["recipe"]["name"] == "quick"
    assert metrics["data_pipeline"] == "numpy"
    assert metrics["model_config"]["embed_dim"] == 16 and metrics["model_config"]["use_conv_embed"] is True
    history = json.loads((out / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    assert metrics["test_accuracy"] > 0.15  # chance is 0.1
    assert "flip test-time augmentation" in proc.stdout and 0 <= metrics["test_accuracy_flip"] <= 1

    # Same synthetic test split (seed 1, 20 per class): the same accuracy.
    proc = _run(["evaluate", "--model", str(out / "model.keras"), "--data", "synthetic", "--seed", "1",
                 "--test-per-class", "20", "--flip", "--out", str(tmp_path / "eval.json")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["test_images"] == 200
    assert result["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert result["test_accuracy_flip"] == pytest.approx(metrics["test_accuracy_flip"])


def test_train_without_data_exits_with_loader_message(tmp_path):
    proc = _run(["train", "--preset", "focalnet_cifar_tiny", "--out", str(tmp_path / "run")], tmp_path)
    assert proc.returncode == 1
    assert "CIFAR-10 is not available" in proc.stderr and "FOCALEDU_CIFAR10" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_missing_data_path_in_process(tmp_path, capsys):
    code = cli.main(["train", "--preset", "focalnet_cifar_tiny", "--out", str(tmp_path / "run"),
                     "--data", str(tmp_path / "nowhere.zip")])
    assert code == 1
    assert "nowhere.zip" in capsys.readouterr().err


def test_train_refuses_to_resume_with_other_arguments(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.fit("focalnet_cifar_tiny", "synthetic", out, profile="quick", epochs=2, verbose=0,
                     model_overrides={"embed_dim": 16, "depths": [1, 1, 1]}, callbacks=[Interrupt(at=0)],
                     train_per_class=60, test_per_class=20, batch_size=32)
    code = cli.main(["train", "--preset", "focalnet_cifar_tiny", "--data", "synthetic", "--out", str(out),
                     "--profile", "quick", "--epochs", "3", *TINY_ARGS])
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "epochs 2 -> 3" in err and "1 epoch done" in err
    assert training.backup_epoch(out) == 1  # the interrupted run is still there to resume


def test_evaluate_bad_model_file(tmp_path, capsys):
    code = cli.main(["evaluate", "--model", __file__, "--data", "synthetic"])
    assert code == 2 and "cannot load" in capsys.readouterr().err
    code = cli.main(["evaluate", "--model", str(tmp_path / "missing.keras")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "focalnet_huge", "--out", "x"], "invalid choice: 'focalnet_huge'"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--epochs", "0"],
         "argument --epochs: must be an integer >= 1; received 0"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--epochs", "3.5"],
         "argument --epochs: expected an integer, got '3.5'"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--profile", "medium"], "invalid choice"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--lr", "-1"],
         "argument --lr: must be a number > 0; received -1.0"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--lr", "nan"], "argument --lr: must be a number > 0"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--depths", "2,x"], "block counts"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--mixup", "-0.5"], "--mixup"),
        (["train", "--preset", "focalnet_cifar_tiny", "--out", "x", "--data-pipeline", "torch"],
         "invalid choice: 'torch'"),
        (["train", "--preset", "focalnet_cifar_tiny"], "--out"),
        (["train", "--out", "x"], "--preset"),
        (["fit"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if "invalid choice: 'focalnet_huge'" in message:
        assert "focalnet_cifar_tiny" in err and "keras_io_tutorial" in err  # lists the accepted presets


def test_recipe_errors_are_usage_errors(tmp_path, capsys):
    code = cli.main(["train", "--preset", "focalnet_cifar_tiny", "--out", str(tmp_path), "--data", "synthetic",
                     "--lr", "1e-6", "--min-lr", "1e-3"])
    assert code == 2 and "min_learning_rate" in capsys.readouterr().err
    code = cli.main(["train", "--preset", "focalnet_cifar_tiny", "--out", str(tmp_path / "mix"), "--data",
                     "synthetic", "--cutmix", "1", "--data-pipeline", "tf.data"])
    assert code == 2 and "'numpy' or 'auto' when mixup_alpha or cutmix_alpha" in capsys.readouterr().err
    assert not (tmp_path / "mix").exists()  # nothing written


def test_help_lists_profiles_and_presets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    assert "quick" in text and "full" in text and "focalnet_cifar_tiny" in text


def test_devices_and_scale_lr_usage_errors(tmp_path, capsys):
    base = ["train", "--preset", "focalnet_cifar_tiny", "--out", str(tmp_path), "--data", "synthetic"]
    assert cli.main([*base, "--devices", "64"]) == 2
    err = capsys.readouterr().err
    assert "`devices=64` but only" in err and "xla_force_host_platform_device_count" in err
    assert cli.main([*base, "--scale-lr"]) == 2
    assert "--scale-lr needs --batch-size" in capsys.readouterr().err
    assert cli.main([*base, "--scale-lr", "--batch-size", "256", "--lr", "1e-3"]) == 2
    assert not any(tmp_path.iterdir())  # nothing written
