"""Where a training step's time goes: the JAX profiler over a few steps of ``model.fit``.

The GPU benchmark's model (``cifar10_gpu.MODEL``) runs at about 36 TFLOP/s
on an H100, a few percent of its bfloat16 arithmetic, and a step costs the
same on an H100 and an H200 and twice as much at twice the batch. This
script says why. It compiles the training step with a warm-up ``fit``, then
traces ``--steps`` steps of a second ``fit`` on the same NumPy batches the
benchmark uses (crop, flip, Mixup/CutMix), exports the trace for Perfetto and
sums it:

* ``step_ms``: wall time per step, timed without the profiler;
* ``device_busy_ms``: per step, the time at least one XLA operation ran on the
  device (the rest of the step the device waited for the host);
* ``ops``: the costliest XLA operations (HLO names such as ``fusion.12`` or
  ``convolution.3``, with their category) in milliseconds per step, and
  ``categories``: convolution, matmul, fusion, copy/transpose, reduce, other.

``--depthwise shifted`` computes the focal levels' depthwise convolutions as
sums of shifted slices instead (``_shifted_depthwise.py``: same weights and
outputs), to test whether the grouped convolution's backward pass is what
makes the step slow; run it beside the default in the same session.

On a machine without a GPU (``--smoke``) the XLA CPU client's threads stand
in for the device, so the plumbing can be tested anywhere.

    KERAS_BACKEND=jax python benchmarks/gpu_step_profile.py --out $OUT       # ~3 min on a GPU
    XLA_FLAGS=--xla_gpu_autotune_level=0 python benchmarks/gpu_step_profile.py --out $OUT
    KERAS_BACKEND=jax python benchmarks/gpu_step_profile.py --depthwise shifted --out $OUT/shifted
    python benchmarks/gpu_step_profile.py --smoke                          # seconds, temp dir

Writes ``gpu_step_profile.json`` and ``.png`` to ``--out`` (default
``benchmarks/results``); another ``--out`` also gets the trace,
``perfetto_trace.json.gz``, which https://ui.perfetto.dev opens.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported

import argparse  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import _common  # noqa: E402
import _trace  # noqa: E402
from _shifted_depthwise import use_shifted_depthwise  # noqa: E402
from cifar10_gpu import MODEL  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=MODEL["embed_dim"], help="stage-1 width")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=20, help="steps traced (and steps timed without the profiler)")
    p.add_argument("--depthwise", choices=["conv", "shifted"], default="conv",
                   help="the focal levels' depthwise convolutions as grouped convolutions (Keras) or as sums "
                        "of shifted slices")
    p.add_argument("--mixed-precision", choices=["off", "float16", "bfloat16"], default="bfloat16")
    p.add_argument("--out", type=Path, default=None, help="where the JSON and PNG (and the trace) go")
    p.add_argument("--smoke", action="store_true", help="tiny model, batch 8, 2 steps, temp dir")
    args = p.parse_args(argv)

    import jax
    import numpy as np

    from focaledu import training
    from focaledu.array_pipeline import ArrayPipeline

    overrides = {**MODEL, "embed_dim": args.width}
    if args.smoke:
        overrides.update(embed_dim=8, depths=[1, 1, 1])
        args.batch_size, args.steps = 8, 2
    recipe = training.recipe("full", batch_size=args.batch_size, mixed_precision=args.mixed_precision,
                             jit_compile=True, data_pipeline="numpy", mixup_alpha=0.8, cutmix_alpha=1.0)
    model = training.build_model("focalnet_cifar_small", recipe, **overrides)
    swapped = use_shifted_depthwise(model) if args.depthwise == "shifted" else 0
    training.compile_model(model, recipe, args.steps, 100)
    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    pipeline = ArrayPipeline(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
                             args.batch_size, augment=True, shuffle=True, drop_remainder=True, num_classes=10,
                             mixup_alpha=0.8, cutmix_alpha=1.0, workers=min(8, os.cpu_count() or 1))

    def run_steps():
        start = time.perf_counter()
        model.fit(pipeline, epochs=1, verbose=0)
        jax.block_until_ready(model.trainable_variables[0].value)
        return time.perf_counter() - start

    compile_seconds = run_steps()  # compiles the step, then runs the epoch
    step_ms = run_steps() * 1e3 / args.steps
    trace_dir = Path(tempfile.mkdtemp(prefix="focaledu-profile-"))
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        run_steps()
    trace_path = Path(glob.glob(str(trace_dir / "**" / "perfetto_trace.json.gz"), recursive=True)[0])
    with gzip.open(trace_path) as handle:
        summary = _trace.summarize(_trace.device_events(json.load(handle)), args.steps)

    out = args.out or (Path(tempfile.mkdtemp(prefix="focaledu-gpu-profile-")) if args.smoke else _common.RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    if not args.smoke and out.resolve() != _common.RESULTS.resolve():  # traces are megabytes: not in the repo
        shutil.copyfile(trace_path, out / "perfetto_trace.json.gz")
    device = jax.devices()[0]
    record = {
        "benchmark": "gpu_step_profile",
        "device": getattr(device, "device_kind", device.platform),
        "preset": "focalnet_cifar_small",
        "model_overrides": overrides,
        "parameters": model.count_params(),
        "batch_size": args.batch_size,
        "mixed_precision": args.mixed_precision,
        "depthwise": args.depthwise,
        "depthwise_layers_swapped": swapped,
        "steps": args.steps,
        "compile_and_first_epoch_seconds": compile_seconds,
        "step_ms": step_ms,
        "images_per_second": args.batch_size / step_ms * 1e3,
        **summary,
        "device_idle_fraction": max(0.0, 1 - summary["device_busy_ms"] / step_ms),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "smoke": args.smoke,
        **training.run_info(_common.command_line()),
    }
    (out / "gpu_step_profile.json").write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, out / "gpu_step_profile.png")
    categories = ", ".join(f"{k} {v:.1f} ms" for k, v in summary["categories"].items())
    print(f"{record['device']}: {step_ms:.1f} ms per step of {args.batch_size}, device busy "
          f"{summary['device_busy_ms']:.1f} ms; {categories}")
    return record


def _plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = record["ops"][:15][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 2]})
    names = ["step (wall)", "device busy", *record["categories"]]
    values = [record["step_ms"], record["device_busy_ms"], *record["categories"].values()]
    left.barh(names[::-1], values[::-1], color=["C0"] * (len(names) - 2) + ["C1", "C2"])
    left.set_xlabel("ms per step")
    right.barh([o["name"][:40] for o in ops], [o["ms"] for o in ops])
    right.set_xlabel("ms per step")
    right.set_title("costliest XLA operations", fontsize=10)
    fig.suptitle(f"{record['device']}, width {record['model_overrides']['embed_dim']}, "
                 f"batch {record['batch_size']}, {record['mixed_precision']}, depthwise as {record['depthwise']}",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
