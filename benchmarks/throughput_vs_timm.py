"""Training throughput of focaledu's FocalNet vs timm's FocalNet (PyTorch), same CPU.

One training step = forward, label-smoothed cross-entropy, backward and an
AdamW update, on a fixed random batch, for the same architecture and batch
size. Each framework runs in its own subprocess, one after the other, with
its default thread pools:

* focaledu, TensorFlow backend, ``jit_compile=False`` (the CPU default),
  ``model.train_on_batch``;
* focaledu, JAX backend, ``jit_compile=True``;
* timm ``FocalNet`` in PyTorch (eager, ``torch.optim.AdamW``), from a
  separate virtual environment (``--timm-python``, default
  ``/tmp/venv-timm/bin/python``; torch and timm are never focaledu
  dependencies).

``ratio`` = focaledu (TensorFlow) images/s / timm images/s. One run each, so
numbers on a shared machine are indicative only (``machine.load_average_1min``
is recorded): at a load of 3 (session 3) the ratio was 0.56, on the idle
machine 0.83 (2026-11-26); TensorFlow's step suffers most from a busy CPU.

    .venv/bin/python benchmarks/throughput_vs_timm.py            # ~2 min on 2 cores
    .venv/bin/python benchmarks/throughput_vs_timm.py --smoke    # seconds, temp dir

Writes ``benchmarks/results/throughput_vs_timm.json`` and a bar chart PNG.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TIMM_PYTHON = "/tmp/venv-timm/bin/python"


def _timm_kwargs(config):
    """timm ``FocalNet`` arguments for a focaledu model config (patch size 4 only)."""
    if config.get("patch_size", 4) != 4:
        raise SystemExit(f"timm's FocalNet has a fixed stride-4 stem; patch_size={config['patch_size']} cannot be matched")
    return dict(
        num_classes=config["num_classes"],
        embed_dim=config["embed_dim"],
        depths=tuple(config["depths"]),
        mlp_ratio=config.get("mlp_ratio", 4.0),
        focal_levels=tuple(config["focal_levels"]),
        focal_windows=tuple(config["focal_windows"]),
        use_overlap_down=config.get("use_conv_embed", False),
        use_post_norm=config.get("use_postln", False),
        use_post_norm_in_modulation=config.get("use_postln_in_modulation", False),
        normalize_modulator=config.get("normalize_modulator", False),
        layerscale_value=config.get("layerscale_value", 1e-4) if config.get("use_layerscale") else None,
        drop_rate=config.get("drop_rate", 0.0),
        proj_drop_rate=config.get("drop_rate", 0.0),
        drop_path_rate=config.get("drop_path_rate", 0.1),
    )


def _time_steps(step, warmup, steps):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def _child_keras(spec):
    import numpy as np

    from focaledu import training
    from focaledu.model import FocalNet

    recipe = training.recipe("full", batch_size=spec["batch_size"])
    model = FocalNet(**spec["config"])
    training.compile_model(model, recipe, steps_per_epoch=1000, epochs=1)
    rng = np.random.default_rng(0)
    h, w = model.image_size
    x = rng.standard_normal((spec["batch_size"], h, w, 3)).astype("float32")
    y = np.eye(model.num_classes, dtype="float32")[rng.integers(0, model.num_classes, spec["batch_size"])]
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    seconds = _time_steps(lambda: model.train_on_batch(x, y), spec["warmup"], spec["steps"])
    import keras

    return {"framework": f"focaledu (Keras {keras.__version__}, {keras.backend.backend()})",
            "jit_compile": model.jit_compile, "parameters": int(model.count_params()),
            "first_step_seconds": first, "seconds": seconds}


def _child_timm(spec):
    import timm
    import torch
    from timm.models.focalnet import FocalNet

    torch.manual_seed(0)
    model = FocalNet(**_timm_kwargs(spec["config"]))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05, eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    h, w = spec["config"]["image_size"] if isinstance(spec["config"]["image_size"], list) else [spec["config"]["image_size"]] * 2
    x = torch.randn(spec["batch_size"], 3, h, w)
    y = torch.randint(0, spec["config"]["num_classes"], (spec["batch_size"],))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    seconds = _time_steps(step, spec["warmup"], spec["steps"])
    return {"framework": f"timm {timm.__version__} (PyTorch {torch.__version__}, eager)",
            "torch_threads": torch.get_num_threads(), "versions": {"torch": torch.__version__, "timm": timm.__version__},
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "first_step_seconds": first, "seconds": seconds}


def _run_child(kind, python, spec, env_extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env_extra)
    proc = subprocess.run([python, __file__, "--child", kind, "--spec", json.dumps(spec)],
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"the {kind} measurement failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["images_per_second"] = spec["batch_size"] * spec["steps"] / result["seconds"]
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="focalnet_cifar_tiny")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per framework")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    p.add_argument("--timm-python", default=TIMM_PYTHON)
    p.add_argument("--no-jax", action="store_true", help="skip the focaledu JAX measurement")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, temp dir")
    p.add_argument("--child", choices=["keras", "timm"], help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.spec)
        print(json.dumps((_child_keras if args.child == "keras" else _child_timm)(spec)))
        return None

    from focaledu import training
    from focaledu.model import preset_config

    overrides = {}
    if args.smoke:
        args.batch_size, args.steps, args.warmup = 8, 2, 1
        overrides = {"embed_dim": 8, "depths": [1] * len(preset_config(args.preset)["depths"])}
    config = preset_config(args.preset, **overrides)
    _timm_kwargs(config)  # fail early if timm cannot build it
    if not Path(args.timm_python).exists():
        raise SystemExit(f"--timm-python {args.timm_python} not found: make a venv with torch and timm "
                         "(never a focaledu dependency) and pass its python")
    spec = {"config": config, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup}
    runs = {"focaledu_tensorflow": _run_child("keras", sys.executable, spec, {"KERAS_BACKEND": "tensorflow"})}
    if not args.no_jax:
        runs["focaledu_jax"] = _run_child("keras", sys.executable, spec, {"KERAS_BACKEND": "jax"})
    runs["timm_torch"] = _run_child("timm", args.timm_python, spec, {})
    for name, r in runs.items():
        print(f"{name:20s} {r['images_per_second']:8.1f} img/s  ({r['framework']}, {r['parameters']} parameters)")

    timm_ips = runs["timm_torch"]["images_per_second"]
    record = {
        "benchmark": "throughput_vs_timm",
        "ratio": runs["focaledu_tensorflow"]["images_per_second"] / timm_ips,
        "ratio_meaning": "focaledu (TensorFlow, jit_compile=False) training images/s divided by timm (PyTorch) images/s",
        "ratio_jax": runs["focaledu_jax"]["images_per_second"] / timm_ips if "focaledu_jax" in runs else None,
        "preset": args.preset,
        "model_overrides": overrides,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "step": "forward + label-smoothed cross-entropy + backward + global-norm clip + AdamW update",
        "runs": runs,
        "epochs": None,
        "train_seconds": sum(r["seconds"] for r in runs.values()),
        "smoke": args.smoke,
        "notes": "one run per framework; machine.load_average_1min says how busy the CPU was at the start",
        **training.run_info(shlex.join(["python", os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])),
    }
    record["versions"].update(runs["timm_torch"].get("versions", {}))
    out = args.out or (Path(tempfile.mkdtemp(prefix="focaledu-timm-")) if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "throughput_vs_timm.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, out / "throughput_vs_timm.png")
    print(f"ratio (focaledu TF / timm) {record['ratio']:.2f}; wrote {path}")
    return record


def _plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(record["runs"])
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.bar([n.replace("_", "\n") for n in names], [record["runs"][n]["images_per_second"] for n in names],
           color=["C0", "C2", "C3"][: len(names)])
    ax.set_ylabel("training images / s")
    ax.set_title(f"{record['preset']}, batch {record['batch_size']}, {record['machine']['cpu_count']} CPU cores "
                 f"(1-min load {record['machine'].get('load_average_1min')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
