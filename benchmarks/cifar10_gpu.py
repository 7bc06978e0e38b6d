"""CIFAR-10 on one GPU (an H100) with the JAX backend and bfloat16 mixed precision.

Same recipe as ``cifar10_cpu.py`` (``focalnet_cifar_tiny`` by default, 30
epochs) but under ``KERAS_BACKEND=jax`` with ``jit_compile=True``,
``mixed_bfloat16`` and the augmentation map running in parallel
(``deterministic_data=False``: faster input pipeline, not bit-reproducible).
TensorFlow is kept off the GPU so that ``tf.data`` does not claim its memory.
The GPU machine needs a CUDA build of JAX (``pip install "jax[cuda12]"``); the
project's lock installs the CPU one.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/cifar10_gpu.py --data /path/to/cifar10-jpeg.zip
    KERAS_BACKEND=jax .venv/bin/python benchmarks/cifar10_gpu.py --preset focalnet_cifar_small --batch-size 256
    .venv/bin/python benchmarks/cifar10_gpu.py --smoke          # seconds, runs on a CPU too

Writes ``benchmarks/results/cifar10_gpu.json`` and ``cifar10_gpu.png``.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported

import _common  # noqa: E402


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=30)
    p.add_argument("--preset", default="focalnet_cifar_tiny")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the full recipe's)")
    p.add_argument("--mixed-precision", choices=["off", "float16", "bfloat16"], default="bfloat16")
    args = p.parse_args(argv)

    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")  # tf.data only; the model runs on JAX
    except RuntimeError:  # TensorFlow already initialised its devices
        pass
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus and not args.smoke:
        print("warning: JAX sees no GPU; this will run on the CPU", flush=True)

    from focaledu import training

    recipe = training.recipe(
        "full", batch_size=args.batch_size, learning_rate=args.lr, mixed_precision=args.mixed_precision,
        jit_compile=True, deterministic_data=False,
    )
    return _common.run_training_benchmark(
        "cifar10_gpu", args.preset, recipe, args,
        notes=f"JAX on {gpus[0].device_kind if gpus else 'CPU'}; mixed precision {args.mixed_precision}",
    )


if __name__ == "__main__":
    main()
