"""focaledu.ablations, the ablation benchmark (``--smoke``) and Chapter 10's checks."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from focaledu import ablations, checks
from focaledu.ablation_layers import AblatedFocalModulation
from focaledu.attention import MultiHeadSelfAttention
from focaledu.layers import DepthwiseConvMixer, FocalModulation

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "ablations.py"
RESULT = ROOT / "benchmarks" / "results" / "ablations.json"
BASELINE_PARAMETERS = 2_280_540


def _load_script():
    sys.path.insert(0, str(SCRIPT.parent))  # for `import _common`
    spec = importlib.util.spec_from_file_location("ablations_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- The variants -----------------------------------------------------------------------------------


def test_variants_cover_the_issue():
    names = [v.name for v in ablations.VARIANTS]
    assert names == ["baseline", "levels_1", "levels_3", "levels_4", "uniform_gates", "no_global", "no_prenorm",
                     "attention", "dwconv", "window"]
    assert ablations.variant("levels_4").overrides == {"focal_levels": [4, 4, 4]}
    with pytest.raises(ValueError, match="Unknown ablation `name` 'gates'. Accepted values: baseline, levels_1"):
        ablations.variant("gates")
    # A config is a copy: editing it does not change the variant.
    ablations.model_config("levels_3")["focal_levels"].append(9)
    assert ablations.variant("levels_3").overrides["focal_levels"] == [3, 3, 3]


def test_every_variant_builds_and_mixers_have_the_baseline_budget():
    counts = ablations.parameter_counts()
    assert counts["baseline"] == BASELINE_PARAMETERS
    for name in ("attention", "dwconv", "window"):
        assert abs(counts[name] / counts["baseline"] - 1) < 0.001, (name, counts[name])
    assert counts["levels_1"] < counts["baseline"] < counts["levels_3"] < counts["levels_4"]
    assert counts["baseline"] - counts["uniform_gates"] == 2 * (65 + 129 + 257) * 3  # (C + 1)(L + 1) per block
    assert counts["baseline"] - counts["no_global"] == 2 * (65 + 129 + 257)
    assert counts["baseline"] - counts["no_prenorm"] == 2 * 2 * (64 + 128 + 256)
    model = ablations.build_variant("attention", num_classes=3)
    assert model.output_shape == (None, 3) and model.modulation_outputs == {}


@pytest.mark.parametrize("name", ["attention", "dwconv", "window"])
def test_recorded_mlp_ratios_are_the_matched_ones(name):
    overrides = dict(ablations.variant(name).overrides)
    recorded = overrides.pop("mlp_ratio")
    assert ablations.matched_mlp_ratio(overrides, BASELINE_PARAMETERS) == recorded


def test_benchmark_recipe_is_the_documented_budget():
    recipe = ablations.benchmark_recipe()
    assert (recipe.name, recipe.epochs, recipe.train_per_class, recipe.batch_size) == ("full", 2, 4000, 128)
    assert recipe.warmup_epochs == 0.5 and recipe.monitor_every == 0 and recipe.test_per_class is None


# --- The results file ---------------------------------------------------------------------------------


def _run(variant, seed, accuracy, source="CIFAR-10 (JPEG mirror)"):
    return {
        "variant": variant, "description": ablations.variant(variant).description, "seed": seed,
        "parameters": 100, "test_accuracy": accuracy, "test_images": 10000, "train_seconds": 10.0,
        "images_per_second": 50.0,
        "settings": {"epochs": 2, "images_per_epoch": 36000, "train_images": 40000, "batch_size": 128,
                     "learning_rate": 2e-3},
        "data": {"source_label": source},
    }


def test_merge_run_keeps_finished_runs_and_replaces_reruns(tmp_path):
    path = tmp_path / "ablations.json"
    ablations.merge_run(path, _run("dwconv", 0, 0.5), {"benchmark": "ablations"})
    ablations.merge_run(path, _run("baseline", 0, 0.6))
    ablations.merge_run(path, _run("baseline", 1, 0.62))
    results = ablations.merge_run(path, _run("baseline", 0, 0.64))
    assert results == json.loads(path.read_text())
    assert results["benchmark"] == "ablations"
    assert [(r["variant"], r["seed"], r["test_accuracy"]) for r in results["runs"]] == [
        ("baseline", 0, 0.64), ("baseline", 1, 0.62), ("dwconv", 0, 0.5)]
    assert not path.with_suffix(".json.tmp").exists()


def test_summary_table_and_plot(tmp_path):
    results = {"runs": [_run("baseline", 0, 0.60), _run("baseline", 1, 0.64), _run("uniform_gates", 0, 0.55)]}
    rows = ablations.summarize(results)
    assert [r["variant"] for r in rows] == ["baseline", "uniform_gates"]
    assert rows[0]["test_accuracy"] == pytest.approx(0.62) and rows[0]["seeds"] == [0, 1]
    assert rows[0]["test_accuracy_std"] == pytest.approx(np.std([0.6, 0.64], ddof=1))
    assert rows[1]["delta"] == pytest.approx(-0.07)
    assert rows[0]["z"] is None
    assert rows[1]["z"] == pytest.approx(ablations.z_score(0.55, 0.62, 10000)) == pytest.approx(-10.07, abs=0.01)
    table = ablations.results_table(results)
    assert "62.0% +-2.8" in table and "-7.0 pt" in table and "-10.1" in table and "36000" in table
    header, base_row, gates_row = table.splitlines()
    assert header.split()[4] == "runs" and base_row.split()[4] == "2" and gates_row.split()[4] == "1"
    differences = ablations.plot_differences(results)
    (bar,) = differences.axes[0].patches[1:]  # the band is patch 0
    assert bar.get_height() == pytest.approx(-7.0) and "2 standard errors" in differences.axes[0].get_legend().texts[0].get_text()
    with pytest.raises(ValueError, match="baseline"):
        ablations.plot_differences({"runs": [_run("uniform_gates", 0, 0.55)]})
    fig = ablations.plot_results(results)
    assert fig.axes[0].get_title().startswith("CIFAR-10, JPEG mirror: 2 epochs on 36,000 training images")
    fig.savefig(tmp_path / "a.png")
    synthetic = {"runs": [_run("baseline", 0, 0.3, source="synthetic (procedural, not CIFAR-10)")]}
    assert "synthetic (procedural, not CIFAR-10)" in ablations.plot_results(synthetic).axes[0].get_title()
    assert ablations.load_results(tmp_path / "missing.json") is None


# --- The benchmark script ------------------------------------------------------------------------------


def test_smoke_run_writes_json_and_png_incrementally(tmp_path, capsys):
    script = _load_script()
    results = script.main(["--smoke", "--variants", "baseline,attention", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "ablations.json").read_text())
    assert written == results
    for key in ("benchmark", "budget", "command", "machine", "versions", "date", "runs"):
        assert key in written, key
    assert written["smoke"] is True and "load_average_1min" in written["machine"]
    assert [r["variant"] for r in written["runs"]] == ["baseline", "attention"]
    for run in written["runs"]:
        assert 0 <= run["test_accuracy"] <= 1 and run["train_seconds"] > 0
        assert run["data"]["source_label"].startswith("synthetic")
        assert run["settings"]["epochs"] == 1 and run["smoke"] is True
        for key in ("parameters", "command", "machine", "versions", "date", "history", "model_overrides"):
            assert key in run, key
    assert written["runs"][1]["model_overrides"]["mixer"] == "attention"
    assert (tmp_path / "ablations.png").stat().st_size > 1000
    # --resume skips what is recorded with the same settings.
    capsys.readouterr()
    script.main(["--smoke", "--variants", "baseline", "--out", str(tmp_path), "--resume"])
    assert "baseline seed 0: already recorded with these settings, skipped" in capsys.readouterr().out


def test_script_rejects_unknown_variants():
    with pytest.raises(SystemExit):
        _load_script().parse_args(["--variants", "baseline,transformer"])


def test_committed_results_are_complete():
    if not RESULT.exists():
        pytest.skip("benchmarks/results/ablations.json not committed yet (run benchmarks/ablations.py)")
    record = json.loads(RESULT.read_text())
    assert record["smoke"] is False
    assert {r["variant"] for r in record["runs"]} == {v.name for v in ablations.VARIANTS}
    for run in record["runs"]:
        for key in ("test_accuracy", "train_seconds", "settings", "parameters", "machine", "command", "date"):
            assert key in run, key
    assert RESULT.with_suffix(".png").exists()


# --- Chapter 10's checks: the references agree with the layers, mistakes are named ----------------------


def _reference(name):
    from focaledu.checks import ablations as module

    return {"ablated_aggregation": module._aggregate, "mixer_params": module._mixer_params,
            "matched_hidden_width": module._hidden, "accuracy_z_score": module._z}[name]


@pytest.mark.parametrize("gating", [True, False])
@pytest.mark.parametrize("global_context", [True, False])
def test_aggregation_reference_is_what_the_layer_computes(gating, global_context):
    layer = AblatedFocalModulation(6, focal_window=3, focal_level=2, gating=gating, global_context=global_context)
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 6)).astype("float32")
    _, maps = layer(x, return_modulation=True)
    ctx = ops.convert_to_numpy(layer.f(x))[..., 6:12]
    contexts = []
    for conv in layer.focal_layers:
        ctx = ops.convert_to_numpy(ops.gelu(conv(ctx), approximate=False))
        contexts.append(ctx[0])
    global_level = ops.convert_to_numpy(ops.gelu(ctx.mean(axis=(1, 2), keepdims=True), approximate=False))
    contexts.append(np.broadcast_to(global_level[0], ctx[0].shape))
    gates = ops.convert_to_numpy(layer.f(x))[0, ..., 12:] if gating else np.full((4, 5, 3), 7.0)
    if gating and not global_context:
        gates = np.concatenate([gates, np.full((4, 5, 1), 7.0)], axis=-1)  # the global gate is never used
    aggregate = _reference("ablated_aggregation")(np.stack(contexts), gates, gating, global_context)
    modulator = ops.convert_to_numpy(layer.h(aggregate[None].astype("float32")))
    np.testing.assert_allclose(modulator, ops.convert_to_numpy(maps["modulator"]), atol=1e-5)


@pytest.mark.parametrize("mixer, dim, level, height, width, heads", [
    ("focal", 64, 2, 8, 8, 2), ("focal", 96, 3, 7, 7, 3), ("attention", 64, 2, 8, 8, 2),
    ("attention", 128, 2, 4, 6, 4), ("dwconv", 64, 2, 8, 8, 2), ("dwconv", 32, 4, 4, 4, 1),
])
def test_mixer_params_reference_counts_the_layers(mixer, dim, level, height, width, heads):
    layer = {"focal": lambda: FocalModulation(dim, focal_window=3, focal_level=level),
             "attention": lambda: MultiHeadSelfAttention(dim, heads, relative_position_bias=True),
             "dwconv": lambda: DepthwiseConvMixer(dim, focal_level=level)}[mixer]()
    layer.build((None, height, width, dim))
    assert _reference("mixer_params")(mixer, dim, level, height, width, heads) == layer.count_params()


def test_matched_hidden_width_reference_builds_the_closest_block():
    from focaledu import FocalNetBlock

    block = FocalNetBlock(64)
    block.build((None, 8, 8, 64))
    mixer = block.modulation.count_params()
    budget = block.count_params() + 1000  # needs about 7.75 more hidden units
    hidden = _reference("matched_hidden_width")(64, budget, mixer)
    assert hidden == 256 + 8
    widened = FocalNetBlock(64, mlp_ratio=hidden / 64)
    widened.build((None, 8, 8, 64))
    assert abs(widened.count_params() - budget) <= 64


def test_z_score_reference():
    assert _reference("accuracy_z_score")(0.62, 0.60, 10000) == pytest.approx(
        0.02 / math.sqrt((0.62 * 0.38 + 0.6 * 0.4) / 10000))


NAMES = ["ablated_aggregation", "mixer_params", "matched_hidden_width", "accuracy_z_score"]


@pytest.mark.parametrize("name", NAMES)
def test_reference_solutions_pass(name):
    result = getattr(checks, name)(_reference(name))
    assert result, result


@pytest.mark.parametrize("name", NAMES)
def test_every_mistake_is_recognised(name):
    from focaledu.checks import ablations as module

    wrapped = {
        "ablated_aggregation": [
            lambda *a: module._aggregate(*a, ignore_gating=True),
            lambda *a: module._aggregate(*a, keep_global=True),
            lambda *a: module._aggregate(*a, drop_last_local=True),
            lambda *a: module._aggregate(*a, normalize=True),
        ],
        "mixer_params": [lambda *a, k=k: module._mixer_params(*a, **{k: True})
                         for k in ("focal_no_gates", "table_hw", "no_table", "dw_no_expansion", "no_biases")],
        "matched_hidden_width": [lambda *a, k=k: module._hidden(*a, **{k: True})
                                 for k in ("no_norms", "no_biases", "floor")],
        "accuracy_z_score": [lambda *a, k=k: module._z(*a, **{k: True})
                             for k in ("no_sqrt", "add_errors", "one_variance", "pooled")],
    }[name]
    messages = []
    for wrong in wrapped:
        result = getattr(checks, name)(wrong)
        assert not result
        assert "values differ" not in result.message, result.message
        messages.append(result.message.split(" (input")[0])
    assert len(set(messages)) == len(messages), messages  # each mistake has its own message


def test_unfinished_and_broken_exercises_are_reported():
    def todo(*args):
        raise NotImplementedError("sum the levels")

    result = checks.ablated_aggregation(todo)
    assert not result and "not implemented" in result.message and "sum the levels" in result.message
    assert "expected a function" in checks.mixer_params(3).message
    assert "raised ZeroDivisionError" in checks.accuracy_z_score(lambda a, b, n: 1 / 0).message


def test_equal_accuracies_have_z_zero_even_without_variance():
    """Two quick runs on synthetic data can tie exactly (both 0.488): z is 0, not a division by zero."""
    assert ablations.z_score(0.488, 0.488, 500) == 0.0 and ablations.z_score(1.0, 1.0, 500) == 0.0
    assert ablations.standard_error(0.6, 0.5, 10000) == pytest.approx(math.sqrt((0.24 + 0.25) / 10000))
    assert ablations.z_score(0.6, 0.5, 10000) == pytest.approx(0.1 / ablations.standard_error(0.6, 0.5, 10000))
