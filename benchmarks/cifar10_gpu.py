"""CIFAR-10 on one GPU (H100/H200) with the JAX backend and bfloat16 mixed precision.

The full recipe (AdamW, warm-up + cosine, label smoothing, crop + flip,
clipping) on a larger FocalNet than the CPU's: 2x2 patches
(16x16 tokens in stage 1), width 96, depths 2-6-2, focal levels
3-2-2, drop path 0.2; global batch 512 at peak learning rate 3e-3, warm-up
for 5 % of the run. ``--minutes`` times a few steps and sizes the epochs to
the budget. Batches come from NumPy (``data_pipeline="numpy"``), so the
machine needs JAX and Keras but not TensorFlow. No run directory by default:
epochs last seconds, so per-epoch checkpoints would cost more than they save
(``--run-dir`` turns them on).

Measured on an H200 (``benchmarks/results/cifar10_gpu.json``): the first
epoch takes about 115 s (XLA compiles the train and validation steps), later
ones 1.8 s (about 25,000 images/s); 90 epochs reached 89.3 % validation
accuracy in 4.6 minutes. Leave a few minutes beyond the training for
compilation and the test evaluation; ``JAX_COMPILATION_CACHE_DIR`` lets the
``--minutes`` probe's compilation be reused by the run.

    KERAS_BACKEND=jax python benchmarks/cifar10_gpu.py --data cifar10-jpeg-bytes.npz --epochs 90
    python benchmarks/cifar10_gpu.py --smoke          # seconds, runs on a CPU too

Writes ``benchmarks/results/cifar10_gpu.json`` and ``cifar10_gpu.png``.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported

import _common  # noqa: E402

MODEL = dict(patch_size=2, embed_dim=96, depths=[2, 6, 2], focal_levels=[3, 2, 2],
             focal_windows=[3, 3, 3], drop_path_rate=0.2)


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=100)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--warmup-fraction", type=float, default=0.05)
    p.add_argument("--mixed-precision", choices=["off", "float16", "bfloat16"], default="bfloat16")
    args = p.parse_args(argv)

    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus and not args.smoke:
        print("warning: JAX sees no GPU; this will run on the CPU", flush=True)

    from focaledu import training

    recipe = training.recipe(
        "full", batch_size=args.batch_size, learning_rate=args.lr, mixed_precision=args.mixed_precision,
        jit_compile=True, data_pipeline="numpy", monitor_every=0,
    )
    return _common.run_training_benchmark(
        "cifar10_gpu", "focalnet_cifar_small", recipe, args, model_overrides=MODEL,
        warmup_fraction=args.warmup_fraction, checkpoints=False,
        notes=f"JAX on {gpus[0].device_kind if gpus else 'CPU'}; mixed precision {args.mixed_precision}; "
              f"NumPy input pipeline",
    )


if __name__ == "__main__":
    main()
