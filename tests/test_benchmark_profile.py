"""The step profiler (``benchmarks/gpu_step_profile.py``) and its trace summary (``benchmarks/_trace.py``).

The summary is checked on a hand-written trace shaped like the JAX
profiler's GPU export (a ``/device:GPU:0`` process with an "XLA Ops" line and
a kernel stream); the shifted-slices depthwise convolution
(``benchmarks/_shifted_depthwise.py``) against Keras' layer, forward and
backward; the script itself runs in ``--smoke`` mode on the CPU. Timings are
never asserted, only what the summary adds up.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from focaledu import training
from benchmark_smoke import BENCHMARKS, run_smoke

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark_module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_trace_module():
    return _load_benchmark_module("_trace")


def _gpu_trace():
    meta = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 10, "name": "thread_name", "args": {"name": "XLA Ops"}},
        {"ph": "M", "pid": 2, "tid": 11, "name": "thread_name", "args": {"name": "Stream #13(Compute)"}},
        {"ph": "M", "pid": 2, "tid": 12, "name": "thread_name", "args": {"name": "XLA Modules"}},
        {"ph": "M", "pid": 1, "tid": 5, "name": "thread_name", "args": {"name": "python"}},
    ]
    conv = 'custom-call(...), custom_call_target="__cudnn$convForward", backend_config={...}'
    ops = [  # two steps of three operations; the fusion overlaps the convolution by 1 us in step 2
        {"ph": "X", "pid": 2, "tid": 10, "ts": 0, "dur": 6, "name": "custom-call.3", "args": {"long_name": conv}},
        {"ph": "X", "pid": 2, "tid": 10, "ts": 6, "dur": 2, "name": "loop_convert_fusion.1"},
        {"ph": "X", "pid": 2, "tid": 10, "ts": 10, "dur": 1, "name": "triton_gemm_dot.7"},
        {"ph": "X", "pid": 2, "tid": 10, "ts": 20, "dur": 6, "name": "custom-call.3", "args": {"long_name": conv}},
        {"ph": "X", "pid": 2, "tid": 10, "ts": 25, "dur": 2, "name": "loop_convert_fusion.1"},
        {"ph": "X", "pid": 2, "tid": 10, "ts": 30, "dur": 1, "name": "triton_gemm_dot.7"},
    ]
    others = [  # a kernel, the whole step's module and a host event: not counted when "XLA Ops" exists
        {"ph": "X", "pid": 2, "tid": 11, "ts": 0, "dur": 100, "name": "sm90_xmma_fprop_kernel"},
        {"ph": "X", "pid": 2, "tid": 12, "ts": 0, "dur": 31, "name": "jit_train_step"},
        {"ph": "X", "pid": 1, "tid": 5, "ts": 0, "dur": 50, "name": "PjitFunction(train_step)"},
    ]
    return {"traceEvents": meta + ops + others}


def test_trace_summary_sums_device_ops_per_step():
    trace = _load_trace_module()
    events = trace.device_events(_gpu_trace())
    assert {e["name"] for e in events} == {"custom-call.3", "loop_convert_fusion.1", "triton_gemm_dot.7"}
    summary = trace.summarize(events, steps=2)
    # 18 us of operations, 17 us busy (the 1-us overlap counts once), over 2 steps, in ms
    assert summary["device_op_ms"] == pytest.approx(0.009)
    assert summary["device_busy_ms"] == pytest.approx(0.0085)
    assert summary["categories"] == pytest.approx({"convolution": 0.006, "fusion": 0.002, "matmul": 0.001})
    assert [op["name"] for op in summary["ops"]] == [
        "custom-call.3 __cudnn$convForward", "loop_convert_fusion.1", "triton_gemm_dot.7"]
    assert list(summary["categories"]) == ["convolution", "fusion", "matmul"]  # costliest first


def test_trace_without_an_ops_line_counts_the_kernel_streams_not_the_modules():
    trace = _load_trace_module()
    data = _gpu_trace()
    data["traceEvents"] = [e for e in data["traceEvents"] if e.get("tid") != 10]
    assert [e["name"] for e in trace.device_events(data)] == ["sm90_xmma_fprop_kernel"]


def test_categories_do_not_mistake_convert_for_convolution():
    trace = _load_trace_module()
    assert trace.category("slice_convert_fusion.18") == "fusion"
    assert trace.category("conv_general_dilated.32") == "convolution"
    assert trace.category("input_reduce_fusion.2") == "reduce"
    assert trace.category("custom-call.9 __cublas$lt$matmul") == "matmul"
    assert trace.category("while.1") == "other"


def _depthwise_model(kernel_size, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5, 7, 4)), keras.layers.DepthwiseConv2D(kernel_size, padding="same",
                                                                                  use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    return model


@pytest.mark.backends
@pytest.mark.parametrize("kernel_size", [3, 5, (3, 5)])
def test_shifted_depthwise_computes_what_the_layer_computes(kernel_size):
    """Same output, and one SGD step (learning rate 1, so the update is the
    gradient) leaves the same kernel: the backward pass agrees too. The map is
    5 x 7, so a kernel of 5 sees the zero padding on every side."""
    shifted = _load_benchmark_module("_shifted_depthwise")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 7, 4)).astype("float32")
    y = rng.normal(size=(2, 5, 7, 4)).astype("float32")
    conv, swapped = _depthwise_model(kernel_size, 0), _depthwise_model(kernel_size, 0)
    assert shifted.use_shifted_depthwise(swapped) == 1
    np.testing.assert_allclose(swapped.predict(x, verbose=0), conv.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    conv.train_on_batch(x, y)
    swapped.train_on_batch(x, y)
    moved = conv.layers[0].kernel.numpy() - _depthwise_model(kernel_size, 0).layers[0].kernel.numpy()
    assert np.abs(moved).max() > 1e-3  # the step did change the kernel
    np.testing.assert_allclose(swapped.layers[0].kernel.numpy(), conv.layers[0].kernel.numpy(), rtol=1e-5, atol=1e-6)


def test_use_shifted_depthwise_swaps_every_focal_level_and_keeps_the_outputs():
    shifted = _load_benchmark_module("_shifted_depthwise")
    keras.utils.set_random_seed(0)
    model = training.build_model("focalnet_cifar_small", None, embed_dim=8, depths=[1, 2, 1])
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    before = model.predict(x, verbose=0)
    levels = model.get_config()["focal_levels"]  # one depthwise convolution per level per block
    assert shifted.use_shifted_depthwise(model) == sum(d * l for d, l in zip([1, 2, 1], levels))
    np.testing.assert_allclose(model.predict(x, verbose=0), before, rtol=1e-4, atol=1e-5)


def test_use_shifted_depthwise_refuses_a_layer_it_cannot_imitate():
    shifted = _load_benchmark_module("_shifted_depthwise")
    model = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.DepthwiseConv2D(3, strides=2, name="strided")])
    with pytest.raises(ValueError, match="'strided'"):
        shifted.use_shifted_depthwise(model)


def test_depthwise_ab_shapes_are_the_gpu_models_depthwise_layers(monkeypatch):
    """depthwise_ab times one shape per (stage, kernel) and weighs it by the
    number of such layers: together they must be the model's depthwise layers."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the scripts import their neighbours
    # Both scripts set KERAS_BACKEND=jax when imported (too late for this process's Keras);
    # monkeypatch puts the variable back afterwards, so later subprocesses keep the suite's backend.
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    ab, gpu = _load_benchmark_module("depthwise_ab"), _load_benchmark_module("cifar10_gpu")
    model = training.build_model("focalnet_cifar_small", None, **gpu.MODEL)
    found = sorted((layer.kernel_size[0], layer.kernel.shape[2]) for layer in model._flatten_layers()
                   if isinstance(layer, keras.layers.DepthwiseConv2D))
    listed = sorted((s["kernel"], s["shape"][3]) for s in ab.layer_shapes(gpu.MODEL, 512) for _ in range(s["layers"]))
    assert listed == found and len(found) == 22  # stages 2-6-2 with 3-2-2 levels
    assert {s["shape"][0] for s in ab.layer_shapes(gpu.MODEL, 512)} == {512}


def test_depthwise_ab_smoke_mode(tmp_path):
    record = run_smoke("depthwise_ab", tmp_path)
    assert set(record["per_step_ms"]) == {"conv", "shifted"} and record["faster"] in record["per_step_ms"]
    for key in ("device", "shapes", "command", "machine", "versions", "date"):
        assert key in record, key
    for name in ("conv", "shifted"):
        total = sum(row[f"{name}_ms"] * row["layers"] for row in record["shapes"])
        assert record["per_step_ms"][name] == pytest.approx(total) and total > 0
    assert (tmp_path / "depthwise_ab.png").is_file()


def test_profile_smoke_mode(tmp_path):
    """The script end to end on the CPU: tiny model, two traced steps, the
    depthwise convolutions as shifted slices (the default path differs only
    in not swapping them)."""
    record = run_smoke("gpu_step_profile", tmp_path, "--depthwise", "shifted")
    assert record["depthwise"] == "shifted" and record["depthwise_layers_swapped"] > 0
    for key in ("step_ms", "device_busy_ms", "device_op_ms", "categories", "ops", "command", "machine",
                "versions", "date", "xla_flags"):
        assert key in record, key
    assert record["smoke"] is True and record["versions"]["backend"] == "jax"
    assert record["step_ms"] > 0 and record["device_busy_ms"] > 0 and record["ops"]
    assert sum(record["categories"].values()) == pytest.approx(record["device_op_ms"])
    times = [op["ms"] for op in record["ops"]]
    assert times == sorted(times, reverse=True)
    assert (tmp_path / "gpu_step_profile.png").is_file()
    assert not (tmp_path / "perfetto_trace.json.gz").exists()  # the trace is kept only for real runs


def _small_focalnet():
    keras.utils.set_random_seed(0)
    return training.build_model("focalnet_cifar_tiny", None, embed_dim=8, depths=[1, 1, 1], use_conv_embed=True)


@pytest.mark.parametrize("kind", ["layer_norm", "depthwise"])
def test_cpu_step_breakdown_cheapens_every_layer_of_a_kind(kind, monkeypatch):
    """The stand-ins really replace what the layers compute (the output
    changes), and every such layer is counted."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the script imports _common
    breakdown = _load_benchmark_module("cpu_step_breakdown")
    model = _small_focalnet()
    layer_type = {"layer_norm": keras.layers.LayerNormalization, "depthwise": keras.layers.DepthwiseConv2D}[kind]
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    before = model(x)
    present = [layer for layer in model._flatten_layers() if isinstance(layer, layer_type)]
    assert breakdown.cheapen(model, kind) == len(present) > 0
    assert not np.allclose(model(x), before, atol=1e-4)


def test_cpu_step_breakdown_swaps_gelu_for_relu_in_every_block_and_puts_it_back(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the script imports _common
    breakdown = _load_benchmark_module("cpu_step_breakdown")
    from focaledu import block_parts, layers

    x = np.random.default_rng(1).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    reference = _small_focalnet()(x)
    counts = {"gelu": 0}
    with breakdown.relu_for_gelu(counts):
        swapped = _small_focalnet()
        assert counts["gelu"] == 3 * (2 + 1 + 1)  # per block: two focal levels, the global level, the MLP
        assert not np.allclose(swapped(x), reference, atol=1e-4)
    for module in (block_parts, layers):
        restored = keras.ops.convert_to_numpy(module.gelu(-keras.ops.ones(1)))
        assert float(restored[0]) == pytest.approx(-0.15866, abs=1e-5)  # the exact GELU again
    np.testing.assert_allclose(_small_focalnet()(x), reference, rtol=1e-5, atol=1e-5)


def test_cpu_step_breakdown_smoke_mode(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the script imports _common
    breakdown = _load_benchmark_module("cpu_step_breakdown")
    record = run_smoke("cpu_step_breakdown", tmp_path)
    by_variant = {row["variant"]: row for row in record["results"]}
    assert list(by_variant) == list(breakdown.VARIANTS)
    assert by_variant["as trained"]["share_of_step"] == 0
    assert by_variant["gelu -> relu"]["swapped"] == {"gelu": 12}
    assert set(by_variant["all three"]["swapped"]) == {"gelu", "layer_norm", "depthwise"}
    for row in record["results"]:
        assert row["images_per_second"] == pytest.approx(record["batch_size"] / row["step_seconds_median"])
    for key in ("command", "machine", "versions", "date"):
        assert key in record, key
    assert (tmp_path / "cpu_step_breakdown.png").is_file()


def test_pipeline_ab_smoke_mode(tmp_path):
    record = run_smoke("pipeline_ab", tmp_path)
    assert [r["pipeline"] for r in record["runs"]] == ["tf.data", "numpy"]
    for key, summary in record["summary"].items():
        tf_data, numpy_run = (r[key] for r in record["runs"])
        assert tf_data > 0 and numpy_run > 0
        assert summary["ratio_numpy_over_tf_data"] == [pytest.approx(numpy_run / tf_data)]
    assert record["runs"][0]["steps"] == 64 // 16 and record["data"].startswith("synthetic")
    for key in ("command", "machine", "versions", "date"):
        assert key in record, key
    assert (tmp_path / "pipeline_ab.png").is_file()


def test_throughput_vs_timm_smoke_mode_interleaves_rounds(tmp_path):
    record = run_smoke("throughput_vs_timm", tmp_path, "--frameworks", "focaledu_tensorflow", "--repeats", "2")
    run = record["runs"]["focaledu_tensorflow"]
    assert record["repeats"] == 2 and len(run["repeats"]) == 2 and len(run["seconds"]) == 2
    assert run["images_per_second"] == pytest.approx(sorted(run["repeats"])[0] / 2 + sorted(run["repeats"])[1] / 2)
    assert run["repeats"] == pytest.approx([record["batch_size"] * record["steps"] / t for t in run["seconds"]])
    assert record["ratios"] == {} and record["ratio"] is None  # no timm, no ratio
    for key in ("command", "machine", "versions", "date"):
        assert key in record, key
    assert (tmp_path / "throughput_vs_timm.png").is_file()


def test_throughput_vs_timm_names_a_missing_torch_python(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "throughput_vs_timm.py"), "--smoke", "--torch-python",
                           str(tmp_path / "nope"), "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0 and "--torch-python" in proc.stderr and "make test-torch" in proc.stderr
    assert not (tmp_path / "throughput_vs_timm.json").exists()
