"""Which ``jit_compile`` (and precision) to use on the CPU: training step time of a FocalNet.

Times ``model.fit`` on a fixed in-memory batch stream for each
``(backend, jit_compile, mixed_precision)`` case, each in its own subprocess
(the Keras backend is fixed at import). The first epoch includes
tracing/compilation; the second is the steady state reported as images/s.
The bfloat16 case asks whether ``mixed_bfloat16`` pays on a CPU with
bfloat16 matrix units (the development machine's Xeon has AMX, which oneDNN
uses for the matmuls and convolutions).

    .venv/bin/python benchmarks/jit_compile_cpu.py            # ~4 min on 2 cores
    .venv/bin/python benchmarks/jit_compile_cpu.py --smoke    # seconds, temp dir

Writes ``benchmarks/results/jit_compile_cpu.json`` (and a bar chart PNG).
JAX with ``jit_compile=False`` runs op by op and is not measured: Keras'
JAX trainer is meant to run jitted.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: (backend, jit_compile, mixed_precision)
CASES = [("tensorflow", False, None), ("tensorflow", True, None), ("jax", True, None),
         ("tensorflow", False, "mixed_bfloat16")]


def _child(args):
    """Runs in the subprocess: one (backend, jit_compile) measurement."""
    import numpy as np

    from focaledu import training

    overrides = json.loads(args.overrides)
    recipe = training.recipe(args.profile, batch_size=args.batch_size, jit_compile=args.jit == "on",
                             mixed_precision=args.precision)
    model = training.build_model(args.preset, recipe, **overrides)
    steps = args.steps
    training.compile_model(model, recipe, steps_per_epoch=steps, epochs=2)
    rng = np.random.default_rng(0)
    size = model.image_size
    x = rng.standard_normal((steps * args.batch_size, *size, 3)).astype("float32")
    y = np.eye(model.num_classes, dtype="float32")[rng.integers(0, model.num_classes, len(x))]
    times = []
    for _ in range(2):
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - start)
    print(json.dumps({
        "first_epoch_seconds": times[0],
        "steady_epoch_seconds": times[1],
        "images_per_second": steps * args.batch_size / times[1],
        "compile_overhead_seconds": times[0] - times[1],
    }))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="focalnet_cifar_tiny")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--overrides", default="{}", help="JSON model overrides")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, temp dir")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--notes", default="one run of each case", help="recorded in the JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if args.smoke:
        args.steps, args.batch_size = 2, 8
        args.overrides = json.dumps({"embed_dim": 8, "depths": [1, 1, 1]})
        out = args.out or Path(tempfile.mkdtemp(prefix="focaledu-bench-"))
    else:
        out = args.out or RESULTS

    from focaledu import training

    results = []
    for backend, jit, precision in CASES:
        command = [sys.executable, __file__, "--child", "--jit", "on" if jit else "off",
                   *(["--precision", precision] if precision else []),
                   "--preset", args.preset, "--batch-size", str(args.batch_size),
                   "--steps", str(args.steps), "--profile", args.profile, "--overrides", args.overrides]
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"{backend} jit_compile={jit} mixed_precision={precision} failed")
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append({"backend": backend, "jit_compile": jit, "mixed_precision": precision, **measured})
        print(f"{backend:10s} jit_compile={str(jit):5s} {precision or 'float32':14s} "
              f"{measured['images_per_second']:8.1f} img/s "
              f"(first epoch {measured['first_epoch_seconds']:.1f} s)", flush=True)

    rate = {(r["backend"], r["jit_compile"], r["mixed_precision"]): r["images_per_second"] for r in results}
    record = {
        "benchmark": "jit_compile_cpu",
        "preset": args.preset,
        "model_overrides": json.loads(args.overrides),
        "batch_size": args.batch_size,
        "steps_per_timed_epoch": args.steps,
        "results": results,
        "ratio": rate["tensorflow", False, None] / rate["tensorflow", True, None],
        "ratio_meaning": "TF jit_compile=False images/s divided by TF jit_compile=True images/s",
        "ratio_bfloat16": rate["tensorflow", False, "mixed_bfloat16"] / rate["tensorflow", False, None],
        "ratio_bfloat16_meaning": "TF mixed_bfloat16 images/s divided by TF float32 images/s (both without XLA)",
        "smoke": args.smoke,
        "notes": args.notes,
        **training.run_info(" ".join([Path(sys.executable).name, *sys.argv])),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "jit_compile_cpu.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    _plot(results, out / "jit_compile_cpu.png", record)
    print(f"wrote {path}")
    return record


def _plot(results, path, record):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['backend']}\njit={r['jit_compile']}\n{r.get('mixed_precision') or 'float32'}" for r in results]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(labels, [r["images_per_second"] for r in results], color=["C0", "C1", "C2", "C3"][: len(results)])
    ax.set_ylabel("training images / s")
    ax.set_title(f"{record['preset']}, batch {record['batch_size']}, {record['machine']['cpu_count']} CPU cores",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
