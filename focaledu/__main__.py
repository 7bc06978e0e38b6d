"""Command line: ``python -m focaledu train | evaluate | student-notebooks | autograde | export-nbgrader``.

Example::

    python -m focaledu train --preset focalnet_cifar_tiny --epochs 3 --data synthetic --out runs/quick

Without ``--data``, CIFAR-10 is found as ``focaledu.data.load_cifar10()`` finds it (exit status 1 if
it is not). Re-running ``train`` with the same ``--out`` and arguments resumes after the last
completed epoch; with other arguments it exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from focaledu import _validate

EXIT_DATA = 1
EXIT_USAGE = 2


def _arg(convert, validate):
    """An argparse ``type``: ``convert(text)``, then one of ``focaledu._validate``'s checks."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if convert is int else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            return validate(None, value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


_positive_int = _arg(int, _validate.positive_int)
_nonnegative_int = _arg(int, lambda name, value: _validate.positive_int(name, value, minimum=0))
_positive_float = _arg(float, _validate.positive_float)
_nonnegative_float = _arg(float, _validate.nonnegative_float)


def _depths(text):
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block counts like 2,2,2, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive block counts, got {text!r}")
    return values


def _presets():
    # argparse needs the choices up front: an unknown --preset then lists the accepted names.
    from focaledu.model import PRESETS

    return list(PRESETS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m focaledu",
        description="Train and evaluate FocalNets on CIFAR-10 (or the synthetic stand-in); "
        "make student notebooks and grade them.",
    )
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{train,evaluate,student-notebooks,autograde,export-nbgrader}")
    presets = _presets()

    train = sub.add_parser(
        "train", help="train a preset and write a run directory",
        description="Train a FocalNet preset with the focaledu recipe (AdamW, warm-up + cosine, "
                    "label smoothing, crop + flip) and write history, curves, modulation figures, "
                    "metrics.json and the .keras model into --out.",
    )
    train.add_argument("--preset", required=True, choices=presets, metavar="NAME",
                       help="model preset; one of: " + ", ".join(presets))
    train.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default: the profile's)")
    train.add_argument("--data", default=None, metavar="PATH|synthetic",
                       help="CIFAR-10 copy (zip, tar.gz, batches dir, image folder, npz) or 'synthetic'; "
                            "default: $FOCALEDU_CIFAR10, the Keras cache, or a download")
    train.add_argument("--out", required=True, type=Path, metavar="DIR", help="run directory")
    train.add_argument("--profile", choices=["quick", "full"], default="full",
                       help="quick: subset (200/100 images per class), 3 epochs, ~1 min on CPU; "
                            "full: the CIFAR-10 recipe (default)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="global batch: one optimizer step, split evenly over --devices")
    train.add_argument("--devices", type=_positive_int, default=None, metavar="N",
                       help="data-parallel over N devices (JAX: keras.distribution.DataParallel; "
                            "TensorFlow: tf.distribute.MirroredStrategy); default: one device")
    train.add_argument("--scale-lr", action="store_true",
                       help="scale the profile's learning rates linearly to --batch-size "
                            "(lr * batch / profile batch), as when the global batch grows with the devices")
    train.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate")
    train.add_argument("--min-lr", type=_positive_float, default=None, help="final learning rate")
    train.add_argument("--warmup-epochs", type=_nonnegative_float, default=None)
    train.add_argument("--weight-decay", type=_nonnegative_float, default=None)
    train.add_argument("--label-smoothing", type=_nonnegative_float, default=None)
    train.add_argument("--clipnorm", type=_nonnegative_float, default=None,
                       help="global gradient-norm clip (0: off)")
    train.add_argument("--mixed-precision", choices=["off", "float16", "bfloat16"], default=None)
    train.add_argument("--jit-compile", choices=["backend-default", "on", "off", "auto"],
                       default="backend-default",
                       help="XLA/jit: default on for JAX, off for TensorFlow on CPU")
    train.add_argument("--no-augment", action="store_true", help="no crop/flip")
    train.add_argument("--mixup", type=_nonnegative_float, default=None, metavar="ALPHA",
                       help="Mixup on training batches with Beta(ALPHA, ALPHA) (0: off; NumPy pipeline)")
    train.add_argument("--cutmix", type=_nonnegative_float, default=None, metavar="ALPHA",
                       help="CutMix on training batches with Beta(ALPHA, ALPHA) (0: off; with --mixup, "
                            "half the batches each)")
    train.add_argument("--flip-tta", action="store_true",
                       help="also report the test accuracy averaged over each image and its mirror image")
    train.add_argument("--data-pipeline", choices=["auto", "tf.data", "numpy"], default=None,
                       help="input pipeline (default auto: tf.data when TensorFlow is installed, else NumPy)")
    train.add_argument("--train-per-class", type=_positive_int, default=None,
                       help="use only the first N training images of each class")
    train.add_argument("--test-per-class", type=_positive_int, default=None,
                       help="use only the first N test images of each class")
    train.add_argument("--monitor-every", type=_nonnegative_int, default=None,
                       help="modulation figure every N epochs (0: never)")
    train.add_argument("--embed-dim", type=_positive_int, default=None, help="override the preset's width")
    train.add_argument("--depths", type=_depths, default=None, help="override the preset's depths, e.g. 1,1,1")
    train.add_argument("--conv-embed", action="store_true",
                       help="the official overlapping stem (use_conv_embed=True: 7x7 stride-4 convolution, "
                            "3x3 stride-2 downsampling), as benchmarks/cifar10_cpu.py trains")
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                       help="1: progress bar (default), 2: one line per epoch, 0: silent")

    ev = sub.add_parser("evaluate", help="test accuracy of a saved .keras model",
                        description="Evaluate a saved FocalNet on the CIFAR-10 (or synthetic) test split.")
    ev.add_argument("--model", required=True, type=Path, metavar="X.keras")
    ev.add_argument("--data", default=None, metavar="PATH|synthetic")
    ev.add_argument("--batch-size", type=_positive_int, default=250)
    ev.add_argument("--flip", action="store_true",
                    help="also the accuracy averaged over each image and its mirror image (test-time augmentation)")
    ev.add_argument("--test-per-class", type=_positive_int, default=None)
    ev.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    ev.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="also write the result here")

    # Instructors: see focaledu/student.py and focaledu/export_nbgrader.py.
    from focaledu import autograde, export_nbgrader, student

    student.add_student_notebooks_parser(sub)
    autograde.add_parser(sub)
    export_nbgrader.add_parser(sub)
    return parser


def _fail(message: str, code: int = EXIT_DATA):
    print(f"error: {message}", file=sys.stderr)
    return code


def _data_errors():
    from focaledu.data import CorruptDatasetError, DatasetUnavailableError

    return (DatasetUnavailableError, CorruptDatasetError, FileNotFoundError)


def _train(args, argv) -> int:
    from focaledu import training

    jit = {"backend-default": None, "on": True, "off": False, "auto": "auto"}[args.jit_compile]
    overrides = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        min_learning_rate=args.min_lr,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        mixed_precision=args.mixed_precision,
        jit_compile=jit,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        monitor_every=args.monitor_every,
        data_pipeline=args.data_pipeline,
        augment=False if args.no_augment else None,
        mixup_alpha=args.mixup,
        cutmix_alpha=args.cutmix,
        test_time_flip=True if args.flip_tta else None,
        global_clipnorm=args.clipnorm,  # 0 switches clipping off
    )
    model_overrides = {k: v for k, v in (("embed_dim", args.embed_dim), ("depths", args.depths),
                                          ("use_conv_embed", args.conv_embed or None)) if v is not None}
    if args.scale_lr and (args.batch_size is None or args.lr is not None or args.min_lr is not None):
        return _fail("--scale-lr needs --batch-size and derives the learning rates from it; "
                     "drop --lr/--min-lr or --scale-lr.", EXIT_USAGE)
    try:
        if args.scale_lr:
            recipe = training.recipe(args.profile, **{**overrides, "batch_size": None}).scaled_to(args.batch_size)
        else:
            recipe = training.recipe(args.profile, **overrides)
    except ValueError as err:
        return _fail(str(err), EXIT_USAGE)
    if args.devices is not None and args.devices > 1:
        from focaledu.distribute import check_devices

        try:
            check_devices(args.devices, recipe.batch_size)
        except ValueError as err:
            return _fail(str(err), EXIT_USAGE)
    command = shlex.join(["python", "-m", "focaledu", *argv])
    try:
        result = training.fit(
            args.preset, args.data, args.out, profile=recipe, seed=args.seed, verbose=args.verbose,
            command=command, model_overrides=model_overrides, devices=args.devices,
        )
    except _data_errors() as err:
        return _fail(str(err))
    except training.ResumeMismatchError as err:
        return _fail(str(err), EXIT_USAGE)
    metrics = result.metrics
    print(
        f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_images']} images of "
        f"{metrics['data']['source_label']} after {metrics['epochs']} epochs "
        f"({metrics['train_seconds']:.0f} s); wrote {args.out}"
    )
    if metrics.get("test_accuracy_flip") is not None:
        print(f"with its mirror image (flip test-time augmentation): {metrics['test_accuracy_flip']:.4f}")
    return 0


def _evaluate(args, argv) -> int:
    import keras

    import focaledu  # noqa: F401  (registers the serializable layers)
    from focaledu import training

    if not args.model.is_file():
        return _fail(f"--model {str(args.model)!r} does not exist.", EXIT_USAGE)
    try:
        model = keras.saving.load_model(args.model, compile=False)
    except Exception as err:  # a wrong or truncated file: say which, no traceback
        return _fail(f"cannot load {str(args.model)!r} as a Keras model: {err}", EXIT_USAGE)
    per_class = args.test_per_class
    recipe = training.recipe("full", train_per_class=1, test_per_class=per_class)
    try:
        dataset = training.load_data(args.data, recipe, seed=args.seed)
    except _data_errors() as err:
        return _fail(str(err))
    if getattr(model, "num_classes", dataset.num_classes) != dataset.num_classes:
        return _fail(f"the model has {model.num_classes} classes but the data has {dataset.num_classes}.",
                     EXIT_USAGE)
    result = training.evaluate(model, dataset, batch_size=args.batch_size, flip=args.flip)
    record = {
        "model": str(args.model),
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        "test_accuracy_flip": result.get("flip_accuracy"),
        "test_images": result["n"],
        "data": {"source_label": dataset.source_label, "source": dataset.source},
        **training.run_info(shlex.join(["python", "-m", "focaledu", *argv])),
    }
    print(f"test accuracy {result['accuracy']:.4f} (cross-entropy {result['loss']:.4f}) on {result['n']} "
          f"images of {dataset.source_label}")
    if args.flip:
        print(f"with its mirror image (flip test-time augmentation): {result['flip_accuracy']:.4f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    if argv is None:  # the command line: figures go to files, never a window
        # Only then: an in-process caller (a test, a notebook) keeps its environment, which the notebook
        # kernels it starts later inherit (with MPLBACKEND=Agg a figure's output loses its text/plain).
        os.environ.setdefault("MPLBACKEND", "Agg")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return _train(args, argv)
    if args.command == "student-notebooks":
        from focaledu import student

        return student.run_student_notebooks(args)
    if args.command == "autograde":
        from focaledu import autograde

        return autograde.run(args)
    if args.command == "export-nbgrader":
        from focaledu import export_nbgrader

        return export_nbgrader.run(args)
    return _evaluate(args, argv)


if __name__ == "__main__":
    sys.exit(main())
