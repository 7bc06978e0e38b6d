"""Ship a trained run with the package: RUN_DIR/model.keras -> focaledu/weights/NAME.{npz,json,md}.

    .venv/bin/python benchmarks/export_pretrained.py /work/runs/cifar10_cpu --name focalnet_cifar_tiny_cifar10

Loads the run's model, stores its weights as float16 (``focaledu.zoo.export``),
measures float32 and stored accuracy on the full CIFAR-10 test set and the
fixed 1,000-image subset, and refuses (writing nothing) when the stored
weights lose more than 0.2 points or the file exceeds 10 MB. The manifest
records the run's metrics.json facts: recipe, epochs, training time, date and
the command that trained it, followed by this export command.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import _common  # noqa: E402

#: metrics.json entries copied into the manifest (``test_accuracy`` as ``run_test_accuracy``).
RUN_FACTS = ("preset", "model_config", "parameters", "epochs", "seed", "recipe", "train_seconds",
             "train_seconds_all_epochs", "best_val_accuracy", "steps_per_epoch", "jit_compile", "machine",
             "versions", "date")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a focaledu.training.fit run directory (model.keras, metrics.json)")
    p.add_argument("--name", required=True, help="the name focaledu.pretrained() will take")
    p.add_argument("--model", default="model.keras", help="model file inside RUN_DIR (default model.keras)")
    p.add_argument("--data", default=None, help="CIFAR-10 copy to measure on (default: $FOCALEDU_CIFAR10, "
                                                "else ../shared/data/cifar10-jpeg.zip)")
    p.add_argument("--weights-dir", type=Path, default=None, help="output folder (default focaledu/weights)")
    p.add_argument("--storage-dtype", default="float16", choices=("float16", "float32"))
    args = p.parse_args(argv)

    from focaledu import zoo
    from focaledu.data import load_cifar10

    metrics_path = args.run_dir / "metrics.json"
    if not metrics_path.is_file():
        sys.exit(f"{metrics_path} is missing: is {args.run_dir} a finished focaledu.training.fit run?")
    run = json.loads(metrics_path.read_text())
    data = args.data or _common.default_data()
    if data is None:
        sys.exit("No CIFAR-10 copy: pass --data or set FOCALEDU_CIFAR10.")
    dataset = load_cifar10(data, limit_per_class=(1, None), download=False)  # the test split is what counts

    facts = {key: run[key] for key in RUN_FACTS if key in run}
    facts["run_test_accuracy"] = run.get("test_accuracy")
    facts["run_test_accuracy_flip"] = run.get("test_accuracy_flip")  # mean of image and mirror image
    facts["training_data"] = run.get("data")
    train_command = run.get("command") or "(not recorded)"
    manifest = zoo.export(
        args.run_dir / args.model, args.name, dataset=dataset, directory=args.weights_dir, facts=facts,
        reproduce=[train_command, _common.command_line()], storage_dtype=args.storage_dtype,
    )

    acc = manifest["accuracy"]
    out = args.weights_dir or zoo.WEIGHTS_DIR
    print(f"wrote {out / manifest['weights_file']} ({manifest['bytes']:,} bytes, sha256 {manifest['sha256']})")
    print(f"test accuracy: float32 {acc['test']['float32']:.4f}, {args.storage_dtype} {acc['test']['stored']:.4f} "
          f"({acc['test']['n']} images; the run's metrics.json says {run.get('test_accuracy')})")
    print(f"fixed subset:  float32 {acc['subset']['float32']:.4f}, {args.storage_dtype} {acc['subset']['stored']:.4f} "
          f"({acc['subset']['n']} images)")
    same_data = (run.get("data") or {}).get("test_images") == acc["test"]["n"]
    if same_data and run.get("test_accuracy") is not None and abs(run["test_accuracy"] - acc["test"]["float32"]) > 0.002:
        print("WARNING: the float32 accuracy differs from the run's own measurement by more than 0.2 points; "
              "check the preprocessing and the data copy before shipping.", file=sys.stderr)
    print(f"model card: {out / (args.name + '.md')}")
    return manifest


if __name__ == "__main__":
    main()
