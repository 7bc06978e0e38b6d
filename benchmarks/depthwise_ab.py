"""Grouped convolution or shifted slices: which depthwise convolution trains faster here (JAX).

The GPU benchmark's step runs at a few percent of an H100's arithmetic, and
one suspect is the depthwise convolution's backward pass (jax-ml/jax#13800:
as slow as a dense convolution's). This script times, for every depthwise
convolution shape in ``cifar10_gpu.MODEL`` at the benchmark's batch, the
forward and backward pass (gradients for the input and the kernel) of

* ``conv``: ``keras.ops.depthwise_conv``, what ``keras.layers.DepthwiseConv2D``
  runs (XLA's grouped convolution, cuDNN on a GPU), and
* ``shifted``: ``_shifted_depthwise.shifted_depthwise``, the same sum written
  as ``kh * kw`` shifted, per-channel-scaled slices (element-wise work XLA fuses),

in the compute dtype, and sums them per training step (each shape times the
number of such layers). It compiles small functions only, so it takes under
a minute, and ``cifar10_gpu.py --depthwise`` can then use the faster one in
the same device session. Timings live in the results file, not in tests.

    KERAS_BACKEND=jax python benchmarks/depthwise_ab.py --out $OUT      # < 1 min on a GPU
    python benchmarks/depthwise_ab.py --smoke                          # seconds, temp dir

Writes ``depthwise_ab.json`` and ``.png`` to ``--out`` (default ``benchmarks/results``).
"""

import os

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import _common  # noqa: E402
from _shifted_depthwise import shifted_depthwise  # noqa: E402
from cifar10_gpu import MODEL  # noqa: E402


def layer_shapes(model: dict, batch: int, image: int = 32) -> list[dict]:
    """One entry per (stage, kernel): the input shape and how many such depthwise layers the model has."""
    from focaledu.layers import focal_kernel_sizes

    shapes, side, width = [], image // model["patch_size"], model["embed_dim"]
    for depth, level, window in zip(model["depths"], model["focal_levels"], model["focal_windows"]):
        for kernel in focal_kernel_sizes(level, window, model.get("focal_factor", 2)):
            shapes.append({"shape": [batch, side, side, width], "kernel": kernel, "layers": depth})
        side, width = side // 2, width * 2
    return shapes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--width", type=int, default=MODEL["embed_dim"], help="stage-1 width")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path, default=None, help="where the JSON and PNG go")
    p.add_argument("--smoke", action="store_true", help="batch 2, width 8, 2 repeats, temp dir")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    from keras import ops

    from focaledu import training

    model = {**MODEL, "embed_dim": args.width}
    if args.smoke:
        model["embed_dim"], args.batch_size, args.repeats = 8, 2, 2
    implementations = {
        "conv": lambda x, w: ops.depthwise_conv(x, w, strides=1, padding="same"),
        "shifted": shifted_depthwise,
    }
    rows = []
    for entry in layer_shapes(model, args.batch_size):
        keys = jax.random.split(jax.random.PRNGKey(0), 3)
        x = jax.random.normal(keys[0], entry["shape"], args.dtype)
        w = jax.random.normal(keys[1], (entry["kernel"], entry["kernel"], entry["shape"][-1], 1), args.dtype)
        g = jax.random.normal(keys[2], entry["shape"], args.dtype)
        row = dict(entry)
        for name, fn in implementations.items():
            step = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum((fn(x, w) * g).astype("float32")), argnums=(0, 1)))
            jax.block_until_ready(step(x, w))  # compile
            start = time.perf_counter()
            for _ in range(args.repeats):
                out = step(x, w)
            jax.block_until_ready(out)
            row[f"{name}_ms"] = (time.perf_counter() - start) * 1e3 / args.repeats
        rows.append(row)
    per_step = {name: sum(r[f"{name}_ms"] * r["layers"] for r in rows) for name in implementations}
    device = jax.devices()[0]
    record = {
        "benchmark": "depthwise_ab",
        "device": getattr(device, "device_kind", device.platform),
        "model": model,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "repeats": args.repeats,
        "shapes": rows,
        "per_step_ms": per_step,
        "faster": min(per_step, key=per_step.get),
        "smoke": args.smoke,
        **training.run_info(_common.command_line()),
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix="focaledu-depthwise-")) if args.smoke else _common.RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "depthwise_ab.json").write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, out / "depthwise_ab.png")
    print(f"{record['device']}: depthwise convolutions per training step (forward + backward), "
          + ", ".join(f"{k} {v:.2f} ms" for k, v in per_step.items()) + f"; faster: {record['faster']}")
    return record


def _plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = record["shapes"]
    labels = [f"{r['shape'][1]}x{r['shape'][2]}x{r['shape'][3]}, k={r['kernel']} (x{r['layers']})" for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5), layout="constrained")
    for offset, name in ((-0.2, "conv"), (0.2, "shifted")):
        ax.barh(y + offset, [r[f"{name}_ms"] * r["layers"] for r in rows], height=0.4,
                label=f"{name}: {record['per_step_ms'][name]:.2f} ms per step")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per training step (forward + backward, all such layers)")
    ax.set_title(f"{record['device']}, batch {record['batch_size']}, {record['dtype']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
