"""focaledu.training and focaledu.callbacks: the recipe, the schedule, weight
decay exclusions, end-to-end quick runs, resume, seeding, and one benchmark
smoke modes.

Models are tiny (width 16, one block per stage) and data sets a few hundred
images, so the whole file runs in about a minute on 2 CPU cores.
"""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from focaledu import callbacks as fcb
from focaledu import training
from focaledu.data import SYNTHETIC_LABEL, synthetic_cifar10
from benchmark_smoke import run_smoke
from run_callbacks import FirstEpochProbe, Interrupt

ROOT = Path(__file__).resolve().parents[1]
REAL_ZIP = ROOT / ".." / "shared" / "data" / "cifar10-jpeg.zip"
TINY = {"embed_dim": 16, "depths": [1, 1, 1]}
#: A quick recipe on 60 train / 20 test images per class that learns the
#: synthetic set well above chance in a few epochs.
SMALL = dict(train_per_class=60, test_per_class=20, batch_size=32, warmup_epochs=1.0, monitor_every=0)


# --------------------------------------------------------------------------
# Recipe
# --------------------------------------------------------------------------


@pytest.mark.backends
def test_profiles_and_recipe_defaults():
    full, quick = training.recipe("full"), training.recipe("quick")
    assert (full.batch_size, full.learning_rate, full.label_smoothing, full.epsilon) == (128, 2e-3, 0.1, 1e-8)
    assert full.epochs == 30 and full.augment and full.train_per_class is None
    assert quick.train_per_class and quick.epochs < full.epochs
    assert training.recipe("quick", batch_size=16, learning_rate=None).batch_size == 16
    assert training.recipe("full", global_clipnorm=0).global_clipnorm is None
    assert training.recipe("full", mixed_precision="bfloat16").mixed_precision == "mixed_bfloat16"


@pytest.mark.backends
@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(min_learning_rate=1.0), "min_learning_rate"),
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(mixed_precision="float8"), "mixed_precision"),
        (dict(jit_compile="yes"), "jit_compile"),
        (dict(validation_split=1.0), "validation_split"),
        (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps"),
    ],
)
def test_recipe_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        training.recipe("full", **overrides)


@pytest.mark.backends
def test_unknown_profile_and_field():
    with pytest.raises(ValueError, match="quick, full|full, quick"):
        training.recipe("medium")
    with pytest.raises(TypeError, match="learning_rat"):
        training.recipe("full", learning_rat=1e-3)


@pytest.mark.backends
def test_default_jit_compile_per_backend():
    expected = {"jax": True, "tensorflow": False}.get(keras.backend.backend(), "auto")
    assert training.default_jit_compile() == expected  # these tests run on CPU


# --------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------


def _lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


@pytest.mark.backends
@pytest.mark.parametrize("steps_per_epoch, epochs, warmup_epochs", [(10, 30, 3.0), (7, 3, 1.0), (352, 30, 3.0)])
def test_schedule_hits_recipe_values(steps_per_epoch, epochs, warmup_epochs):
    recipe = training.recipe("full", warmup_epochs=warmup_epochs)
    schedule = training.make_schedule(recipe, steps_per_epoch, epochs)
    total = steps_per_epoch * epochs
    warmup, decay = training.schedule_steps(recipe, steps_per_epoch, epochs)
    assert warmup == round(warmup_epochs * steps_per_epoch) and warmup + decay == total
    assert _lr(schedule, 0) == pytest.approx(recipe.warmup_learning_rate, rel=1e-5)
    assert _lr(schedule, warmup) == pytest.approx(recipe.learning_rate, rel=1e-5)
    assert _lr(schedule, total) == pytest.approx(recipe.min_learning_rate, rel=1e-4)
    # Halfway through the cosine: the mean of peak and floor.
    mid = warmup + decay / 2
    assert _lr(schedule, mid) == pytest.approx((recipe.learning_rate + recipe.min_learning_rate) / 2, rel=1e-4)
    # Monotone warm-up, then monotone decay.
    values = [_lr(schedule, s) for s in np.linspace(0, total, 41)]
    peak = int(np.argmax(values))
    assert np.all(np.diff(values[: peak + 1]) >= 0) and np.all(np.diff(values[peak:]) <= 1e-12)


@pytest.mark.backends
@pytest.mark.parametrize("warmup_epochs", [3.0, 0.0])
def test_schedule_rates_match_the_schedule_step_by_step(warmup_epochs):
    schedule = training.make_schedule(training.recipe("full", warmup_epochs=warmup_epochs), 10, 30)
    steps = np.array([0, 1, 15, 29, 30, 31, 150, 299, 300])
    rates = training.schedule_rates(schedule, steps)
    assert rates.dtype == np.float64 and rates.shape == steps.shape
    np.testing.assert_allclose(rates, [_lr(schedule, int(s)) for s in steps], rtol=1e-6)
    assert training.schedule_rates(schedule, 30).shape == (1,)
    with pytest.raises(ValueError, match="steps must be an int or a 1-D sequence of ints"):
        training.schedule_rates(schedule, [0.5, 1.5])


@pytest.mark.backends
def test_cosine_decay_length_pitfall():
    """CosineDecay lasts warmup_steps + decay_steps: decay_steps=total leaves the rate high at the end."""
    recipe = training.recipe("full")
    total, warmup = 300, 30
    wrong = keras.optimizers.schedules.CosineDecay(
        recipe.warmup_learning_rate, decay_steps=total, alpha=recipe.min_learning_rate / recipe.learning_rate,
        warmup_target=recipe.learning_rate, warmup_steps=warmup,
    )
    assert _lr(wrong, total) > 4 * recipe.min_learning_rate  # 10 % of the cosine still to go
    right = training.make_schedule(recipe, steps_per_epoch=10, epochs=30)
    assert _lr(right, total) == pytest.approx(recipe.min_learning_rate, rel=1e-4)


@pytest.mark.backends
def test_warmup_is_capped_for_short_runs():
    recipe = training.recipe("full")  # 3 warm-up epochs
    warmup, decay = training.schedule_steps(recipe, steps_per_epoch=10, epochs=1)
    assert (warmup, decay) == (5, 5)
    schedule = training.make_schedule(recipe.replace(warmup_epochs=0.0), steps_per_epoch=10, epochs=2)
    assert _lr(schedule, 0) == pytest.approx(recipe.learning_rate, rel=1e-5)
    assert _lr(schedule, 20) == pytest.approx(recipe.min_learning_rate, rel=1e-4)


# --------------------------------------------------------------------------
# Optimizer: weight-decay exclusions
# --------------------------------------------------------------------------


def test_weight_decay_skips_norms_biases_and_layerscale():
    recipe = training.recipe("full", warmup_epochs=0.0, weight_decay=0.5, global_clipnorm=0)
    model = training.build_model("focalnet_cifar_tiny", recipe, use_layerscale=True, **TINY)
    optimizer = training.make_optimizer(recipe, steps_per_epoch=10, epochs=1)
    variables = model.trainable_variables
    names = {v.name for v in variables}
    assert {"gamma", "beta", "bias", "kernel", "gamma_1", "gamma_2"} <= names
    before = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
    # Zero gradients: Adam's step is exactly 0, so only the decoupled decay moves variables.
    optimizer.apply_gradients([(keras.ops.zeros(v.shape, v.dtype), v) for v in variables])
    factor = 1.0 - recipe.learning_rate * recipe.weight_decay
    for v, old in zip(variables, before):
        new = keras.ops.convert_to_numpy(v)
        if v.name in ("gamma", "beta", "bias", "gamma_1", "gamma_2"):
            np.testing.assert_array_equal(new, old, err_msg=f"{v.path} was decayed")
        else:
            assert v.name == "kernel" and old.ndim >= 2, v.path
            np.testing.assert_allclose(new, old * factor, rtol=1e-6, err_msg=f"{v.path} was not decayed")
    # Exactly the rank-1 parameters are excluded, as in the official code.
    assert all((v.name == "kernel") == (len(v.shape) > 1) for v in variables)


@pytest.mark.backends
def test_exclusions_are_set_before_build():
    optimizer = training.make_optimizer(training.recipe("quick"), steps_per_epoch=5)
    assert not optimizer.built
    assert optimizer.epsilon == 1e-8 and optimizer.global_clipnorm == 5.0


def test_mixed_precision_model_and_policy_restored():
    before = keras.config.dtype_policy().name
    recipe = training.recipe("quick", mixed_precision="bfloat16")
    model = training.build_model("focalnet_cifar_tiny", recipe, **TINY)
    assert keras.config.dtype_policy().name == before
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    training.compile_model(model, recipe, steps_per_epoch=2, epochs=1)
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[[0, 1, 2, 3]]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert math.isfinite(logs["loss"])


# --------------------------------------------------------------------------
# fit: end to end
# --------------------------------------------------------------------------


@pytest.mark.backends
def test_fit_quick_synthetic_end_to_end(tmp_path):
    result = training.fit(
        "focalnet_cifar_tiny", "synthetic", tmp_path, profile="quick", epochs=4, verbose=0,
        model_overrides=TINY, **{**SMALL, "monitor_every": 2},
    )
    for name in ("history.csv", "history.json", "curves.png", "metrics.json", "model.keras", "best.keras"):
        assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in (tmp_path / "monitor").iterdir()) == [
        "modulation_epoch_002.png", "modulation_epoch_004.png"]
    assert not (tmp_path / "backup").exists()  # removed once the run completes
    history = result.history
    assert history["epoch"] == [0, 1, 2, 3]
    assert history["loss"][-1] < history["loss"][0]
    assert result.test_accuracy > 0.2  # chance is 0.1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(result.test_accuracy)
    assert metrics["data"]["source_label"] == SYNTHETIC_LABEL
    assert metrics["versions"]["backend"] == keras.backend.backend()
    # Keras resolves "auto" when compiling; torch has no XLA, so it becomes False there.
    expected = training.default_jit_compile()
    assert metrics["jit_compile"] == (False if expected == "auto" and keras.backend.backend() == "torch" else expected)
    assert metrics["epochs"] == metrics["recipe"]["epochs"] == 4  # the run's length, not the profile's
    # The schedule ends at the recipe's floor after the last step.
    assert history["learning_rate"][-1] == pytest.approx(training.recipe("quick").min_learning_rate, rel=1e-3)
    csv_rows = (tmp_path / "history.csv").read_text().splitlines()
    assert len(csv_rows) == 5 and csv_rows[0].startswith("epoch")
    # The saved model reloads and gives the same test accuracy.
    reloaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    data = training.load_data("synthetic", training.recipe("quick", **SMALL))
    assert training.evaluate(reloaded, data)["accuracy"] == pytest.approx(result.test_accuracy)


def test_resume_after_kill_and_same_seed(tmp_path):
    """Killed after epoch 1, a rerun resumes at epoch 2 with the saved weights,
    optimizer state and history; and the same seed gives the same first epoch."""
    kwargs = dict(profile="quick", epochs=2, seed=5, verbose=0, model_overrides=TINY, **SMALL)
    interrupt = Interrupt(at=0)
    with pytest.raises(KeyboardInterrupt):
        training.fit("focalnet_cifar_tiny", "synthetic", tmp_path, callbacks=[interrupt], **kwargs)
    first = json.loads((tmp_path / "history.json").read_text())
    assert first["epoch"] == [0] and training.backup_epoch(tmp_path) == 1

    probe = FirstEpochProbe()
    result = training.fit("focalnet_cifar_tiny", "synthetic", tmp_path, callbacks=[probe], **kwargs)
    assert probe.first_epoch == 1  # resumed, not restarted
    for restored, saved in zip(probe.weights, interrupt.weights):
        np.testing.assert_array_equal(restored, saved)
    assert probe.iterations == result.metrics["steps_per_epoch"]  # optimizer and schedule position restored
    assert result.history["epoch"] == [0, 1]
    assert result.history["loss"][0] == first["loss"][0]
    assert result.metrics["resumed_from_epoch"] == 1
    assert result.metrics["train_seconds_all_epochs"] > result.metrics["train_seconds"] * 0.5
    assert len(result.history["epoch_seconds"]) == 2 and all(t > 0 for t in result.history["epoch_seconds"])
    csv_rows = (tmp_path / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in csv_rows[1:]] == ["0", "1"]
    assert not (tmp_path / "backup").exists()

    # An uninterrupted run with the same seed (and no run directory) repeats epoch 1 exactly.
    fresh = training.fit("focalnet_cifar_tiny", "synthetic", None, **kwargs)
    assert fresh.history["loss"][0] == pytest.approx(first["loss"][0], rel=1e-6)
    assert fresh.history["val_loss"][0] == pytest.approx(first["val_loss"][0], rel=1e-6)


def _files(root: Path) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_with_other_settings_is_refused_and_changes_nothing(tmp_path):
    """An interrupted run continues only with the settings it started with; reporting options may change."""
    kwargs = dict(profile="quick", epochs=2, seed=5, verbose=0, model_overrides=TINY, **SMALL)
    with pytest.raises(KeyboardInterrupt):
        training.fit("focalnet_cifar_tiny", "synthetic", tmp_path, callbacks=[Interrupt(at=0)], **kwargs)
    assert json.loads((tmp_path / "settings.json").read_text())["epochs"] == 2
    before = _files(tmp_path)
    lr = training.recipe("quick").learning_rate
    for change, message in (
        (dict(epochs=3), "epochs 2 -> 3"),
        (dict(seed=6), "seed 5 -> 6"),
        (dict(learning_rate=2 * lr), f"recipe.learning_rate {lr!r} -> {2 * lr!r}"),
        (dict(model_overrides={**TINY, "embed_dim": 8}), "model.embed_dim 16 -> 8"),
        (dict(train_per_class=50), "data.train_images 600 -> 500"),
    ):
        with pytest.raises(training.ResumeMismatchError, match="1 epoch done") as err:
            training.fit("focalnet_cifar_tiny", "synthetic", tmp_path, **{**kwargs, **change})
        assert message in str(err.value) and "backup" in str(err.value)
        assert _files(tmp_path) == before  # nothing truncated, overwritten or deleted
    result = training.fit("focalnet_cifar_tiny", "synthetic", tmp_path, **{**kwargs, "monitor_every": 1})
    assert result.metrics["resumed_from_epoch"] == 1 and result.history["epoch"] == [0, 1]


@pytest.mark.backends
def test_seed_changes_initial_weights():
    keras.utils.set_random_seed(1)
    a = training.build_model("focalnet_cifar_tiny", None, **TINY).get_weights()
    keras.utils.set_random_seed(1)
    b = training.build_model("focalnet_cifar_tiny", None, **TINY).get_weights()
    keras.utils.set_random_seed(2)
    c = training.build_model("focalnet_cifar_tiny", None, **TINY).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_pipelines_one_hot_resize_and_full_batches():
    data = synthetic_cifar10(n_train=100, n_test=30)
    recipe = training.recipe("quick", batch_size=16)
    pipes = training.make_pipelines(data, recipe, num_classes=10, image_size=(48, 48))
    train_batches = list(pipes.train.as_numpy_iterator())
    assert len(train_batches) == training.steps_per_epoch(100, recipe.validation_split, 16) == 5
    assert all(x.shape == (16, 48, 48, 3) and y.shape == (16, 10) for x, y in train_batches)
    np.testing.assert_array_equal(train_batches[0][1].sum(axis=1), 1.0)
    x_val, y_val = next(pipes.validation.as_numpy_iterator())
    assert x_val.shape == (10, 48, 48, 3) and y_val.shape == (10, 10)
    # evaluate() resizes an ImageDataset for a 48x48 model too.
    model = training.build_model("keras_io_tutorial", None, embed_dim=8, depths=[1, 1, 1])
    result = training.evaluate(model, data)
    assert result["n"] == 30 and 0.0 <= result["accuracy"] <= 1.0 and math.isfinite(result["loss"])


@pytest.mark.skipif(not REAL_ZIP.exists(), reason="no ../shared/data/cifar10-jpeg.zip")
def test_fit_quick_on_real_cifar10_subset(tmp_path):
    result = training.fit(
        "focalnet_cifar_tiny", str(REAL_ZIP.resolve()), tmp_path, profile="quick", epochs=2, verbose=0,
        model_overrides=TINY, **{**SMALL, "train_per_class": 40, "test_per_class": 10, "monitor_every": 1},
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["data"]["source_label"] == "CIFAR-10 (JPEG mirror)"
    assert metrics["data"]["train_images"] == 400 and metrics["test_images"] == 100
    assert (tmp_path / "monitor" / "modulation_epoch_002.png").is_file()
    assert all(math.isfinite(v) for v in result.history["loss"])


# --------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------


@pytest.mark.backends
def test_modulation_monitor_every_n_epochs(tmp_path):
    model = training.build_model("focalnet_cifar_tiny", None, **TINY)
    images = synthetic_cifar10(n_train=0, n_test=3).x_test
    monitor = fcb.ModulationMonitor(images, every=2, out_dir=tmp_path, labels=["a", "b", "c"])
    monitor.set_model(model)
    for epoch in range(4):
        monitor.on_epoch_end(epoch)
    assert [p.name for p in monitor.paths] == ["modulation_epoch_002.png", "modulation_epoch_004.png"]
    assert all(p.stat().st_size > 1000 for p in monitor.paths)
    # Another block, and resizing for a 48x48 model.
    big = training.build_model("keras_io_tutorial", None, embed_dim=8, depths=[1, 1, 1])
    monitor = fcb.ModulationMonitor(images, every=1, out_dir=tmp_path / "big", block="layers_1_blocks_0")
    monitor.set_model(big)
    monitor.on_epoch_end(0)
    assert monitor.paths[0].is_file()


@pytest.mark.backends
@pytest.mark.parametrize("kwargs, match", [
    (dict(images=np.zeros((2, 32, 32))), "shape"),
    (dict(images=np.zeros((2, 32, 32, 3), "uint8"), every=0), "every"),
])
def test_modulation_monitor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fcb.ModulationMonitor(**kwargs)


@pytest.mark.backends
def test_history_json_replaces_rewritten_epochs(tmp_path):
    path = tmp_path / "history.json"
    writer = fcb.HistoryJSON(path)
    for epoch, loss in [(0, 2.0), (1, 1.5), (1, 1.4), (2, 1.0)]:  # epoch 1 written twice (resume)
        writer.on_epoch_end(epoch, {"loss": loss})
    assert fcb.read_history(path) == {"epoch": [0, 1, 2], "loss": [2.0, 1.4, 1.0]}
    assert fcb.read_history(path, 2) == {"epoch": [0, 1], "loss": [2.0, 1.4]}


# --------------------------------------------------------------------------
# Benchmarks: one smoke mode
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10_cpu", "cifar10_gpu"])
def test_benchmark_smoke_mode(tmp_path, name):
    """The CPU benchmark (TensorFlow, tf.data, run directory) and the GPU one
    (JAX, NumPy batches, no run directory) end to end on tiny synthetic data."""
    record = run_smoke(name, tmp_path, *(["--depthwise", "shifted"] if name == "cifar10_gpu" else []))
    for key in ("test_accuracy", "train_seconds", "epochs", "preset", "command", "machine", "versions", "date"):
        assert key in record, key
    assert record["smoke"] is True and 0.0 <= record["test_accuracy"] <= 1.0
    assert record["data"]["source_label"] == SYNTHETIC_LABEL
    assert (tmp_path / f"{name}.png").is_file()
    if name == "cifar10_gpu":
        assert record["backend"] == "jax" and record["run_dir"] is None
        assert record["recipe"]["data_pipeline"] == "numpy"
        assert record["depthwise"] == "shifted" and record["depthwise_layers_swapped"] > 0


def test_cpu_benchmark_on_all_training_images_scores_its_snapshots(tmp_path):
    """--validation-split 0 trains on every training image (no validation
    metrics); --snapshots scores each epoch's saved weights on the test set
    after training, and the last snapshot is the final model."""
    record = run_smoke("cifar10_cpu", tmp_path, "--validation-split", "0", "--snapshots")
    assert record["data"]["validation_split"] == 0 and record["best_val_accuracy"] is None
    assert "val_accuracy" not in record["history"]
    (point,) = record["test_curve"]
    assert point["epoch"] == 1 and point["train_seconds"] == pytest.approx(record["history"]["epoch_seconds"][0])
    assert point["test_accuracy"] == pytest.approx(record["test_accuracy"], abs=1e-12)
    assert (tmp_path / "cifar10_cpu.png").is_file()


def test_benchmark_time_budget_sizes_the_schedule(tmp_path):
    """--minutes times a few steps, runs the epochs that fit, and warms up for
    15 % of them in the tutorial-config benchmark."""
    record = run_smoke("cifar10_tutorial_config", tmp_path, "--minutes", "0.05")
    budget = record["budget"]
    assert budget["seconds"] == pytest.approx(3.0)
    assert budget["epochs"] == max(1, int(budget["seconds"] // budget["estimated_epoch_seconds"]))
    assert record["epochs"] == budget["epochs"] and 1 <= record["epochs_run"] <= record["epochs"]
    assert record["recipe"]["warmup_epochs"] == pytest.approx(0.15 * budget["epochs"])
    assert "partial" in record["notes"] and "25" in record["notes"]  # the tutorial trains 25 epochs


def test_jit_compile_benchmark_smoke_mode(tmp_path):
    """The four CPU step settings each run in their own process, and each ratio
    divides the rates of the cases its meaning names."""
    record = run_smoke("jit_compile_cpu", tmp_path, timeout=600)
    rate = {(r["backend"], r["jit_compile"], r["mixed_precision"]): r["images_per_second"]
            for r in record["results"]}
    assert set(rate) == {("tensorflow", False, None), ("tensorflow", True, None), ("jax", True, None),
                         ("tensorflow", False, "mixed_bfloat16")}
    assert all(value > 0 for value in rate.values())
    assert record["ratio"] == pytest.approx(rate["tensorflow", False, None] / rate["tensorflow", True, None])
    assert record["ratio_bfloat16"] == pytest.approx(
        rate["tensorflow", False, "mixed_bfloat16"] / rate["tensorflow", False, None])
    assert record["smoke"] is True and (tmp_path / "jit_compile_cpu.png").is_file()


@pytest.mark.backends
def test_gradient_accumulation_equals_one_big_batch():
    """Two batches of 4 accumulated make the update of one batch of 8 (the
    schedule is flat so both updates use the same rate; a large Adam epsilon
    keeps the first step from turning round-off in near-zero gradients into
    full-size updates)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 8)]
    flat = dict(warmup_epochs=0.0, learning_rate=1e-2, min_learning_rate=1e-2, epsilon=1e-3, jit_compile=False)
    keras.utils.set_random_seed(0)
    initial = training.build_model("focalnet_cifar_tiny", None, drop_path_rate=0.0, **TINY).get_weights()
    weights = {}
    for batch, steps in ((8, None), (4, 2)):
        recipe = training.recipe("quick", batch_size=batch, gradient_accumulation_steps=steps, **flat)
        model = training.build_model("focalnet_cifar_tiny", recipe, drop_path_rate=0.0, **TINY)
        model.set_weights(initial)
        training.compile_model(model, recipe, steps_per_epoch=8 // batch, epochs=1)
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        weights[batch] = model.get_weights()
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(weights[8], initial))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(weights[8], weights[4]))
    assert moved > 1e-3 and diff < 1e-3 * moved
