"""tf.data or NumPy: which input pipeline trains faster here (issue 22's A/B).

focaledu has two training pipelines with the same augmentation (padded
random crop, flip, standardisation): ``tf.data`` (``focaledu.tf_pipeline``) and
the NumPy ``ArrayPipeline``, which needs no TensorFlow and is the one that
mixes batches. This script measures both on the TensorFlow backend, in one
process, interleaved (``tf.data``, ``numpy``, ``tf.data``, ...) so that a
change in the machine's load hits both alike:

* ``pipeline``: images/s of an epoch of batches, no model (the second of two);
* ``training``: images/s of ``model.fit`` on ``focalnet_cifar_tiny`` with the
  ``full`` recipe, the second epoch of each run (the first traces the step).

``ratio`` = numpy / tf.data per repeat; the median and spread are reported.

    .venv/bin/python benchmarks/pipeline_ab.py               # ~3 min on 2 cores
    .venv/bin/python benchmarks/pipeline_ab.py --smoke       # seconds, synthetic, temp dir

Writes ``pipeline_ab.json`` and ``.png`` to ``--out`` (default ``benchmarks/results``).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import _common  # noqa: E402
import keras  # noqa: E402

PIPELINES = ("tf.data", "numpy")


class EpochTimes(keras.callbacks.Callback):
    """Records each epoch's wall time in ``seconds``."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def measure(dataset, pipeline: str, batch_size: int, preset: str) -> dict:
    """Images/s of ``pipeline`` alone (one epoch) and of training on it (the second of two epochs)."""
    from focaledu import training
    from focaledu.model import FocalNet

    recipe = training.recipe("full", data_pipeline=pipeline, batch_size=batch_size, validation_split=0.0)
    keras.utils.set_random_seed(0)
    train = training.make_pipelines(dataset, recipe, 10, (32, 32), seed=0).train
    steps = training.steps_per_epoch(len(dataset.y_train), 0.0, batch_size)
    for _ in range(2):  # the second pass is timed: the first builds tf.data's graph
        start = time.perf_counter()
        batches = (train[i] for i in range(len(train))) if pipeline == "numpy" else train.as_numpy_iterator()
        images = sum(len(x) for x, _ in batches)
        pipeline_rate = images / (time.perf_counter() - start)
        if pipeline == "numpy":
            train.on_epoch_end()

    model = FocalNet.from_preset(preset, load_weights=False)
    training.compile_model(model, recipe, steps, 2)
    timer = EpochTimes()
    model.fit(train, epochs=2, verbose=0, callbacks=[timer], shuffle=False)  # the pipelines shuffle
    return {"pipeline_images_per_s": pipeline_rate, "training_images_per_s": steps * batch_size / timer.seconds[1],
            "first_epoch_s": timer.seconds[0], "steps": steps}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-per-class", type=int, default=500, help="training images per class (default 500)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", default=None, help="CIFAR-10 copy (default: $FOCALEDU_CIFAR10, else ../shared)")
    p.add_argument("--out", type=Path, default=None, help="where the JSON and PNG go")
    p.add_argument("--smoke", action="store_true", help="synthetic data, a tiny model, 1 repeat, temp dir")
    args = p.parse_args(argv)

    from focaledu import data as data_lib
    from focaledu import training

    preset = "focalnet_cifar_tiny"
    if args.smoke:
        dataset = data_lib.synthetic_cifar10(n_train=64, n_test=10, seed=0)
        args.batch_size, args.repeats = 16, 1
    else:
        source = args.data or _common.default_data()
        dataset = data_lib.load_cifar10(source, limit_per_class=(args.train_per_class, 1), download=False)
    runs = []
    for repeat in range(args.repeats):
        for pipeline in PIPELINES:
            runs.append({"repeat": repeat, "pipeline": pipeline,
                         **measure(dataset, pipeline, args.batch_size, preset)})
            print(f"repeat {repeat} {pipeline:8s} pipeline {runs[-1]['pipeline_images_per_s']:8.0f} img/s, "
                  f"training {runs[-1]['training_images_per_s']:6.0f} img/s", flush=True)
    summary = {}
    for key in ("pipeline_images_per_s", "training_images_per_s"):
        ratios = [b[key] / a[key] for a, b in zip(runs[0::2], runs[1::2])]
        summary[key] = {"median": {name: statistics.median(r[key] for r in runs if r["pipeline"] == name)
                                   for name in PIPELINES},
                        "ratio_numpy_over_tf_data": ratios, "ratio_median": statistics.median(ratios),
                        "ratio_spread": [min(ratios), max(ratios)]}
    record = {
        "benchmark": "pipeline_ab",
        "preset": preset,
        "recipe": "full (crop + flip, label smoothing), validation_split=0",
        "batch_size": args.batch_size,
        "train_images": int(len(dataset.y_train)),
        "data": dataset.source_label,
        "repeats": args.repeats,
        "runs": runs,
        "summary": summary,
        "smoke": args.smoke,
        **training.run_info(_common.command_line()),
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix="focaledu-pipeline-ab-")) if args.smoke else _common.RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline_ab.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    _plot(record, out / "pipeline_ab.png")
    for key, s in summary.items():
        print(f"{key}: median tf.data {s['median']['tf.data']:.0f}, numpy {s['median']['numpy']:.0f}; "
              f"numpy / tf.data {s['ratio_median']:.2f} ({s['ratio_spread'][0]:.2f}-{s['ratio_spread'][1]:.2f})")
    return record


def _plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), layout="constrained")
    for ax, key, title in zip(axes, ("pipeline_images_per_s", "training_images_per_s"),
                              ("batches only", "training focalnet_cifar_tiny")):
        for offset, name in ((-0.2, "tf.data"), (0.2, "numpy")):
            rates = [r[key] for r in record["runs"] if r["pipeline"] == name]
            ax.bar([i + offset for i in range(len(rates))], rates, width=0.4, label=name)
        ax.set(xlabel="repeat (interleaved)", ylabel="images/s", xticks=range(record["repeats"]))
        ax.set_title(f"{title}\nnumpy / tf.data: median {record['summary'][key]['ratio_median']:.2f}", fontsize=9)
        ax.legend(fontsize=8)
    machine = record.get("machine", {})
    fig.suptitle(f"{record['data']}, batch {record['batch_size']}, {machine.get('cpu', '?')} "
                 f"({machine.get('cpu_count', '?')} cores, load {machine.get('load_average_1min', '?')})", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
