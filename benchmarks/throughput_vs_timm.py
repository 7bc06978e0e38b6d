"""Training throughput of focaledu's FocalNet on each Keras backend, and of timm's FocalNet.

One training step = forward, label-smoothed cross-entropy, backward and an
AdamW update, on a fixed random batch, for the same architecture and batch
size. Each measurement runs in its own subprocess, with its default thread
pools:

* focaledu on TensorFlow, ``jit_compile=False`` (the CPU default), on JAX
  (``jit_compile=True``) and on PyTorch (eager), all through
  ``model.train_on_batch`` with ``training.compile_model``'s recipe;
* timm ``FocalNet`` in PyTorch (eager, ``torch.optim.AdamW``).

The two PyTorch measurements run in ``--torch-python`` (default
``.venv-torch``, which ``make test-torch`` builds; add timm with ``pip install
timm``): torch and timm are never focaledu dependencies. ``--repeats`` rounds
run interleaved (every framework once per round), so a change in the machine's
load hits all alike; each framework's images/s is its median over the rounds,
and each ratio to timm is taken within a round, then summarised as median,
min and max.

    .venv/bin/python benchmarks/throughput_vs_timm.py            # ~6 min on 2 cores
    .venv/bin/python benchmarks/throughput_vs_timm.py --smoke    # seconds, temp dir

Writes ``benchmarks/results/throughput_vs_timm.json`` and a bar chart PNG.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TORCH_PYTHON = ROOT / ".venv-torch" / "bin" / "python"


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


#: Each measured framework: (child kind, backend or None, which python runs it).
FRAMEWORKS = {
    "focaledu_tensorflow": ("keras", "tensorflow", "python"),
    "focaledu_jax": ("keras", "jax", "python"),
    "focaledu_torch": ("keras", "torch", "torch_python"),
    "timm_torch": ("timm", None, "torch_python"),
}


def _spread(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="focalnet_cifar_tiny")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    p.add_argument("--repeats", type=int, default=None,
                   help="rounds; each round measures every framework once (default 3, 1 with --smoke)")
    p.add_argument("--frameworks", nargs="+", choices=list(FRAMEWORKS), default=list(FRAMEWORKS),
                   help="what to measure (default: all four)")
    p.add_argument("--torch-python", default=str(TORCH_PYTHON),
                   help="python with torch and timm, and focaledu's requirements for focaledu_torch "
                        f"(default {TORCH_PYTHON.relative_to(ROOT)}: `make test-torch`'s venv, plus `pip install timm`)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, temp dir")
    p.add_argument("--child", choices=["keras", "timm"], help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.spec)
        print(json.dumps((_child_keras if args.child == "keras" else _child_timm)(spec)))
        return None
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 3
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1; got {args.repeats}")

    from focaledu import training
    from focaledu.model import preset_config

    overrides = {}
    if args.smoke:
        args.batch_size, args.steps, args.warmup = 8, 2, 1
        overrides = {"embed_dim": 8, "depths": [1] * len(preset_config(args.preset)["depths"])}
    config = preset_config(args.preset, **overrides)
    if "timm_torch" in args.frameworks:
        _timm_kwargs(config)  # fail early if timm cannot build it
    pythons = {"python": sys.executable, "torch_python": args.torch_python}
    if any(FRAMEWORKS[f][2] == "torch_python" for f in args.frameworks) and not Path(args.torch_python).exists():
        raise SystemExit(f"--torch-python {args.torch_python} not found: `make test-torch` builds that venv "
                         "(then `pip install timm` into it), or leave out --frameworks focaledu_torch timm_torch")
    spec = {"config": config, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup}
    # Interleaved rounds, so that a change in the machine's load hits every framework alike.
    rounds = []
    for r in range(args.repeats):
        measured = {}
        for name in args.frameworks:
            kind, backend, python = FRAMEWORKS[name]
            env = {"KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)} if backend else {}
            measured[name] = _run_child(kind, pythons[python], spec, env)
            print(f"round {r + 1}/{args.repeats}  {name:20s} {measured[name]['images_per_second']:8.1f} img/s",
                  flush=True)
        rounds.append(measured)

    runs = {}
    for name in args.frameworks:
        per_round = [m[name] for m in rounds]
        ips = [m["images_per_second"] for m in per_round]
        runs[name] = {**per_round[0], "images_per_second": statistics.median(ips), "repeats": ips,
                      "first_step_seconds": [m["first_step_seconds"] for m in per_round],
                      "seconds": [m["seconds"] for m in per_round]}
    ratios = {}
    for name in args.frameworks:
        if name != "timm_torch" and "timm_torch" in runs:
            ratios[name] = _spread([m[name]["images_per_second"] / m["timm_torch"]["images_per_second"] for m in rounds])
    for name, r in runs.items():
        print(f"{name:20s} median {r['images_per_second']:8.1f} img/s  ({r['framework']}, {r['parameters']} parameters)")

    record = {
        "benchmark": "throughput_vs_timm",
        "ratio": ratios.get("focaledu_tensorflow", {}).get("median"),
        "ratio_meaning": "per round, focaledu (TensorFlow, jit_compile=False) training images/s divided by timm "
                         "(PyTorch) images/s; the median over rounds (ratios holds every backend's median, min, max)",
        "ratios": ratios,
        "preset": args.preset,
        "model_overrides": overrides,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "repeats": args.repeats,
        "step": "forward + label-smoothed cross-entropy + backward + global-norm clip + AdamW update",
        "runs": runs,
        "epochs": None,
        "train_seconds": sum(sum(r["seconds"]) for r in runs.values()),
        "smoke": args.smoke,
        "notes": "images_per_second is each framework's median over the interleaved rounds; repeats lists them. "
                 "machine.load_average_1min says how busy the CPU was at the start",
        **training.run_info(shlex.join(["python", os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])),
    }
    if "timm_torch" in runs:
        record["versions"].update(runs["timm_torch"].get("versions", {}))
    out = args.out or (Path(tempfile.mkdtemp(prefix="focaledu-timm-")) if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "throughput_vs_timm.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, out / "throughput_vs_timm.png")
    for name, ratio in ratios.items():
        print(f"{name} / timm: median {ratio['median']:.2f} (min {ratio['min']:.2f}, max {ratio['max']:.2f})")
    print(f"wrote {path}")
    return record


def _plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(record["runs"])
    runs = [record["runs"][n] for n in names]
    medians = [r["images_per_second"] for r in runs]
    errors = [[m - min(r["repeats"]) for m, r in zip(medians, runs)], [max(r["repeats"]) - m for m, r in zip(medians, runs)]]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.bar([n.replace("_", "\n") for n in names], medians, yerr=errors, capsize=4,
           color=["C0", "C2", "C1", "C3"][: len(names)])
    ax.set_ylabel("training images / s")
    ax.set_title(f"{record['preset']}, batch {record['batch_size']}, {record['machine']['cpu_count']} CPU cores: "
                 f"median and range of {record['repeats']} interleaved rounds\n"
                 f"(1-min load {record['machine'].get('load_average_1min')} at the start)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
