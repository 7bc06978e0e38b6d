"""Ablations of focalnet_cifar_tiny on CIFAR-10 (Chapter 10), TensorFlow backend on the CPU.

Ten variants of ``focaledu.ablations.VARIANTS``: the baseline (two focal
levels), 1, 3 and 4 focal levels, uniform gates, no global context, no
pre-norm, and the token mixer swapped for self-attention, Swin window attention or depthwise
convolutions at the baseline's parameter count (within 0.1 %).

**Budget.** All ten runs must fit in about 40 minutes on the idle 2-core
development CPU, where the baseline trains at about 450 images/s (TensorFlow,
batch 128), i.e. about 100 s per epoch of the 45,000 training images. Each
variant therefore trains for **2 epochs on the first 4,000 training images of
each class** (36,000 trained on, 4,000 held out for validation; 72,000 images
seen) with the ``full`` recipe (AdamW 2e-3, warm-up + cosine, crop + flip,
label smoothing 0.1, batch 128) shortened by ``ablations.BENCHMARK_RECIPE``:
a half-epoch warm-up and no monitor figures. That is about 160 s of training
plus ~20 s of validation, testing on all 10,000 test images and tracing: about
3 minutes for the baseline. The variants with larger kernels (3 and 4 levels)
and the depthwise-convolution mixer are slower, so expect about 33-38 minutes
for the ten runs with one seed; ``--seeds 0,1`` doubles it. Two epochs rank
the variants early in training, not at convergence: differences below about
1.4 points (two standard errors of a difference of two accuracies on 10,000
test images; seeds add more) are not significant.

    .venv/bin/python benchmarks/ablations.py                        # ~35 min on 2 cores, seed 0
    .venv/bin/python benchmarks/ablations.py --variants baseline,attention --seeds 0,1
    .venv/bin/python benchmarks/ablations.py --resume               # skip runs already recorded
    .venv/bin/python benchmarks/ablations.py --smoke                # seconds, temp dir

The longer set behind ``ablations_15ep.json`` (every variant, 15 epochs on
1,000 images per class, seeds 0 and 1: 20 runs of about 5 minutes each on an
idle machine) is the same script with ``--epochs 15 --train-per-class 1000
--seeds 0,1 --out DIR``, its ``ablations.json`` copied to
``benchmarks/results/ablations_15ep.json``.

The data are loaded once (``--data``, else ``$FOCALEDU_CIFAR10``, else
``../shared/data/cifar10-jpeg.zip``, else the Keras cache). After **each** run
the record is merged into ``benchmarks/results/ablations.json`` (a run of the
same variant and seed is replaced, the others are kept) and
``ablations.png`` (test accuracy per variant) is redrawn, so an interrupted
benchmark keeps its finished runs; ``--resume`` then skips them.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import _common  # noqa: E402

NAME = "ablations"


def _names(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text):
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be comma-separated integers; received {text!r}") from None


def parse_args(argv=None):
    from focaledu import ablations

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", type=_names, default=[v.name for v in ablations.VARIANTS],
                   help="comma-separated variant names (default: all): "
                        + ", ".join(v.name for v in ablations.VARIANTS))
    p.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated seeds (default 0)")
    p.add_argument("--epochs", type=int, default=ablations.BENCHMARK_RECIPE["epochs"])
    p.add_argument("--train-per-class", type=int, default=ablations.BENCHMARK_RECIPE["train_per_class"],
                   help="training images per class (default %(default)s; 5000 = all)")
    p.add_argument("--data", default=None, help="CIFAR-10 path or 'synthetic' (default: $FOCALEDU_CIFAR10, "
                                                "../shared/data/cifar10-jpeg.zip, Keras cache/download)")
    p.add_argument("--out", type=Path, default=None, help="where ablations.json/.png go (default benchmarks/results)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="parent of the per-run directories <variant>_seed<seed> (default: temporary, deleted "
                        "after each run); with it, re-running resumes an interrupted run from its last epoch")
    p.add_argument("--resume", action="store_true",
                   help="skip variant/seed pairs already in the results file with the same settings")
    p.add_argument("--smoke", action="store_true",
                   help="plumbing check: synthetic data, tiny models, 1 epoch, temp dir")
    args = p.parse_args(argv)
    unknown = [name for name in args.variants if name not in {v.name for v in ablations.VARIANTS}]
    if unknown:
        p.error(f"unknown --variants {unknown}; accepted: {', '.join(v.name for v in ablations.VARIANTS)}")
    return args


def _settings_key(run):
    s = run["settings"]
    return (s["epochs"], s["train_images"], s["batch_size"], s["learning_rate"], run["data"]["source_label"])


def main(argv=None):
    args = parse_args(argv)
    from focaledu import ablations, training

    recipe = ablations.benchmark_recipe(epochs=args.epochs, train_per_class=args.train_per_class)
    data = args.data if args.data is not None else _common.default_data()
    model_overrides, epochs = {}, args.epochs
    if args.smoke:
        data, epochs = "synthetic", 1
        recipe = recipe.replace(epochs=1, train_per_class=20, test_per_class=10, batch_size=32)
        model_overrides = dict(embed_dim=8, depths=[1, 1, 1])
    out = args.out or (Path(tempfile.mkdtemp(prefix=f"focaledu-{NAME}-")) if args.smoke else _common.RESULTS)
    path = out / f"{NAME}.json"
    header = {
        "benchmark": NAME,
        "preset": ablations.PRESET,
        "budget": (f"{epochs} epoch(s) of the full recipe on the first {recipe.train_per_class} training images "
                   f"per class (validation split {recipe.validation_split}), warm-up {recipe.warmup_epochs} "
                   f"epoch(s), batch {recipe.batch_size}, test on "
                   f"{'all' if recipe.test_per_class is None else recipe.test_per_class} test images per class"),
        "smoke": bool(args.smoke),
        "notes": f"measured on a 2-core CPU (see each run's machine.load_average_1min); {epochs} epoch(s) on "
                 f"{recipe.train_per_class} images per class rank the variants at that budget, which short runs "
                 "reach early in training, not at convergence",
        **training.run_info(_common.command_line()),
    }

    done = {}
    if args.resume and path.exists():
        previous = ablations.load_results(path) or {}
        done = {(r["variant"], r["seed"]): _settings_key(r) for r in previous.get("runs", [])}

    datasets = {}
    start = time.perf_counter()
    for seed in args.seeds:
        for name in args.variants:
            key = seed if data == "synthetic" else None  # the synthetic set depends on the seed
            if key not in datasets:
                datasets[key] = training.load_data(data, recipe, seed=seed)
                print(f"data: {datasets[key]}", flush=True)
            dataset = datasets[key]
            expected = (epochs, len(dataset.y_train), recipe.batch_size, recipe.learning_rate, dataset.source_label)
            if done.get((name, seed)) == expected:
                print(f"{name} seed {seed}: already recorded with these settings, skipped (--resume)", flush=True)
                continue
            run_dir = (args.run_dir / f"{name}_seed{seed}" if args.run_dir
                       else Path(tempfile.mkdtemp(prefix=f"focaledu-{NAME}-{name}-")))
            record = ablations.run_variant(
                name, dataset, run_dir, profile=recipe, epochs=epochs, seed=seed, verbose=2,
                command=_common.command_line(), model_overrides=model_overrides,
            )
            record["smoke"] = bool(args.smoke)
            if (name, seed) in done:
                print(f"note: {name} seed {seed} replaces a recorded run with other settings", flush=True)
            results = ablations.merge_run(path, record, header)
            _plot(results, out / f"{NAME}.png")
            if args.run_dir is None:
                shutil.rmtree(run_dir, ignore_errors=True)
            print(f"{name} seed {seed}: test accuracy {record['test_accuracy']:.4f}, {record['parameters']:,} "
                  f"parameters, {record['train_seconds']:.0f} s training, {record['seconds']:.0f} s in all "
                  f"[{time.perf_counter() - start:.0f} s so far]; wrote {path}", flush=True)
    results = ablations.load_results(path)
    if results is not None:
        print(ablations.results_table(results))
    return results


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from focaledu import ablations

    fig = ablations.plot_results(results)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
