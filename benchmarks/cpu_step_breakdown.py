"""Where a CPU training step's time goes: the step with one kind of operation made nearly free at a time.

The CPU recipe's model (``focalnet_cifar_tiny`` with the overlapping stem,
batch 256, TensorFlow) does ~22 M multiply-adds per image, so its matmuls
are small and the element-wise work around them matters. This script times
``train_on_batch`` on a fixed synthetic batch for the model as trained and
for variants in which one kind of operation is replaced by a stand-in of the
same shape that costs about one element-wise pass:

* ``gelu -> relu``: every GELU (the MLPs' and the focal levels');
* ``layer norm -> affine``: every LayerNormalization keeps only
  ``x * gamma + beta`` (no mean and variance);
* ``depthwise -> scale``: every depthwise convolution keeps only its centre
  tap (a per-channel scale);
* all three at once.

The step time a variant saves estimates that operation's share of the step
(forward and backward). The variants are for timing only: they compute
something else and are never trained. The models are built once, then timed
round-robin for ``--rounds`` rounds so that drift on a shared machine falls
on every variant alike; the median of the rounds is reported.

    .venv/bin/python benchmarks/cpu_step_breakdown.py            # ~2 min on 2 cores
    .venv/bin/python benchmarks/cpu_step_breakdown.py --smoke    # seconds, temp dir

Writes ``benchmarks/results/cpu_step_breakdown.json`` and a bar chart PNG.
"""

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import _common  # noqa: E402

#: variant -> the operations it replaces
VARIANTS = {
    "as trained": (),
    "gelu -> relu": ("gelu",),
    "layer norm -> affine": ("layer_norm",),
    "depthwise -> scale": ("depthwise",),
    "all three": ("gelu", "layer_norm", "depthwise"),
}


@contextlib.contextmanager
def relu_for_gelu(counter: dict):
    """While active, ``gelu`` (which every FocalNet layer calls) is a ReLU; each call is counted."""
    import keras

    from focaledu import block_parts, layers

    def relu(x):
        counter["gelu"] += 1
        return keras.ops.relu(x)

    modules = (block_parts, layers)  # the MLP's module and the focal layers' (which imports it)
    original = block_parts.gelu
    for module in modules:
        module.gelu = relu
    try:
        yield
    finally:
        for module in modules:
            module.gelu = original


def cheapen(model, kind: str) -> int:
    """Replaces the forward computation of every ``kind`` layer of ``model`` by a one-pass stand-in; returns how many.

    ``layer_norm``: ``x * gamma + beta``; ``depthwise``: the kernel's centre tap
    as a per-channel scale. Weights stay the layers' own, so their gradients
    are still computed.
    """
    import keras

    swapped = 0
    for layer in model._flatten_layers():  # Keras' own walk over nested layers
        if kind == "layer_norm" and isinstance(layer, keras.layers.LayerNormalization):
            layer.call = lambda inputs, layer=layer: inputs * layer.gamma + layer.beta
        elif kind == "depthwise" and isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            layer.call = lambda inputs, layer=layer, c=(kh // 2, kw // 2): inputs * layer.kernel[c[0], c[1], :, 0]
        else:
            continue
        swapped += 1
    return swapped


def build_variant(preset, recipe, overrides, replaced, x, y) -> tuple:
    """The compiled model with ``replaced`` operations cheapened, its train step already traced; and the counts."""
    from focaledu import training

    counts = {"gelu": 0, "layer_norm": 0, "depthwise": 0}
    with relu_for_gelu(counts) if "gelu" in replaced else contextlib.nullcontext():
        model = training.build_model(preset, recipe, **overrides)
        gelu_sites = counts["gelu"]  # building the functional model calls each GELU once
        training.compile_model(model, recipe, steps_per_epoch=100, epochs=1)
        for kind in ("layer_norm", "depthwise"):
            if kind in replaced:
                counts[kind] = cheapen(model, kind)
        model.train_on_batch(x, y)  # traces the step while the stand-ins are in place
    counts["gelu"] = gelu_sites  # tracing the step calls them again: not more sites
    return model, {k: v for k, v in counts.items() if k in replaced}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="focalnet_cifar_tiny")
    parser.add_argument("--overrides", default='{"use_conv_embed": true}', help="JSON model overrides")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny model, 1 round of 2 steps, temp dir")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--notes", default="", help="recorded in the JSON")
    args = parser.parse_args(argv)
    overrides = json.loads(args.overrides)
    if args.smoke:
        args.batch_size, args.steps, args.rounds = 8, 2, 1
        overrides.update(embed_dim=8, depths=[1, 1, 1])
    out = args.out or (Path(tempfile.mkdtemp(prefix="focaledu-bench-")) if args.smoke else _common.RESULTS)

    import keras
    import numpy as np

    from focaledu import training

    recipe = training.recipe("full", batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, args.batch_size)]
    models, swapped = {}, {}
    for name, replaced in VARIANTS.items():
        models[name], swapped[name] = build_variant(args.preset, recipe, overrides, replaced, x, y)
    seconds = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            seconds[name].append((time.perf_counter() - start) / args.steps)
    step = {name: float(np.median(s)) for name, s in seconds.items()}
    base = step["as trained"]
    results = [{
        "variant": name,
        "replaced": list(VARIANTS[name]),
        "swapped": swapped[name],
        "step_seconds_median": step[name],
        "step_seconds_rounds": seconds[name],
        "images_per_second": args.batch_size / step[name],
        "share_of_step": 1 - step[name] / base,
    } for name in VARIANTS]
    for r in results:
        print(f"{r['variant']:22s} {r['images_per_second']:7.1f} img/s  saves {r['share_of_step']:6.1%} of the step",
              flush=True)
    record = {
        "benchmark": "cpu_step_breakdown",
        "preset": args.preset,
        "model_overrides": overrides,
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "backend": keras.backend.backend(),
        "results": results,
        "share_meaning": "1 - (median step time of the variant) / (median step time as trained): the share of a "
                         "training step (forward + backward) the replaced operations cost beyond one element-wise pass",
        "smoke": args.smoke,
        "notes": args.notes,
        **training.run_info(_common.command_line()),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "cpu_step_breakdown.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, out / "cpu_step_breakdown.png")
    print(f"wrote {path}")
    return record


def _plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = record["results"]
    fig, ax = plt.subplots(figsize=(6.4, 2.9))
    names = [r["variant"] for r in results][::-1]
    rates = [r["images_per_second"] for r in results][::-1]
    bars = ax.barh(names, rates, color=["C3" if n == "as trained" else "C0" for n in names])
    for bar, r in zip(bars, results[::-1]):
        label = "" if r["variant"] == "as trained" else f"  -{r['share_of_step']:.0%} step time"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=8)
    ax.set_xlabel("training images / s (train_on_batch, synthetic batch)")
    ax.set_xlim(0, max(rates) * 1.3)
    ax.set_title(f"{record['preset']} {record['model_overrides']}, batch {record['batch_size']}, "
                 f"{record['backend']}, {record['machine']['cpu_count']} cores: {record['machine']['cpu']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
