"""CIFAR-10 on one GPU (H100/H200) with the JAX backend and bfloat16 mixed precision.

The full recipe (AdamW, warm-up + cosine, label smoothing, crop + flip,
clipping) plus the official FocalNet's Mixup 0.8 / CutMix 1.0 (half the
batches each, timm's batch mode) on a larger FocalNet than the CPU's: 2x2
patches (16x16 tokens in stage 1), width 96, depths 2-6-2, focal levels
3-2-2, drop path 0.1; global batch 512 at peak learning rate 3e-3, warm-up
for 5 % of the run. The test set is scored single-view (``test_accuracy``)
and with flip test-time augmentation (``test_accuracy_flip``).

Batches come from NumPy (``data_pipeline="numpy"``), so the machine needs
JAX and Keras but not TensorFlow. No run directory by default: epochs last
seconds, so per-epoch checkpoints would cost more than they save
(``--run-dir`` turns them on). ``--minutes`` times a few steps and sizes the
epochs to the budget; ``--stop-after`` ends training at the first epoch end
past that many seconds (a guard for a slower machine: the schedule is then
cut short and ``epochs_run`` says so). ``--depthwise shifted`` computes the
focal levels' depthwise convolutions as sums of shifted slices
(``_shifted_depthwise.py``), for when ``depthwise_ab.py`` finds them faster
than XLA's grouped convolution on the device at hand.

Recorded on an H200 (``benchmarks/results/cifar10_gpu.json``, one seed):
170 epochs, 404 s of training including the first epoch's 90 s of XLA
compilation (train and validation steps), then 1.76 s per epoch (25,400
images/s); 91.07 % test accuracy, 91.65 % with flip test-time augmentation.
The target of 93 % in ten minutes is not reached yet. A wider model is not
the way there: width 128 on an H100 (``results/cifar10_gpu_h100_width128.json``)
cost 2.22 s per epoch, was stopped by ``--stop-after 430`` after 142 of 150
epochs and scored 90.28 % (90.98 % with the flip). The same probe on both
GPUs (width 96, batch 512, bf16) gave 25.5 ms per step on the H100 and 25.7 ms
on the H200, so the H200 record's times hold on an H100; batch 1024 took
54.5 ms, no more images per second. Earlier, without
Mixup/CutMix and with drop path 0.2, 90 epochs reached 89.3 % validation
accuracy at 99.2 % training accuracy: it overfitted, hence the mixing.
Leave about two minutes beyond the training for the test evaluation's
compilation.

    KERAS_BACKEND=jax python benchmarks/cifar10_gpu.py --data cifar10-jpeg-bytes.npz --epochs 170
    python benchmarks/cifar10_gpu.py --smoke          # seconds, runs on a CPU too

Writes ``benchmarks/results/cifar10_gpu.json`` and ``cifar10_gpu.png``.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported

import _common  # noqa: E402
from _shifted_depthwise import ShiftedDepthwise  # noqa: E402

MODEL = dict(patch_size=2, embed_dim=96, depths=[2, 6, 2], focal_levels=[3, 2, 2],
             focal_windows=[3, 3, 3], drop_path_rate=0.1)


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=160)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--warmup-fraction", type=float, default=0.05)
    p.add_argument("--mixed-precision", choices=["off", "float16", "bfloat16"], default="bfloat16")
    p.add_argument("--width", type=int, default=MODEL["embed_dim"],
                   help="stage-1 width (batch 512: width 128 costs ~26 %% more per epoch than 96)")
    p.add_argument("--mixup", type=float, default=0.8, help="Mixup alpha (0: off)")
    p.add_argument("--cutmix", type=float, default=1.0, help="CutMix alpha (0: off)")
    p.add_argument("--depthwise", choices=["conv", "shifted"], default="conv",
                   help="the focal levels' depthwise convolutions as Keras' grouped convolutions or as sums of "
                        "shifted slices (same weights and outputs; depthwise_ab.py times both)")
    args = p.parse_args(argv)

    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus and not args.smoke:
        print("warning: JAX sees no GPU; this will run on the CPU", flush=True)

    from focaledu import training

    recipe = training.recipe(
        "full", batch_size=args.batch_size, learning_rate=args.lr, mixed_precision=args.mixed_precision,
        jit_compile=True, data_pipeline="numpy", monitor_every=0, mixup_alpha=args.mixup,
        cutmix_alpha=args.cutmix, test_time_flip=True,
    )
    swap = ShiftedDepthwise() if args.depthwise == "shifted" else None
    return _common.run_training_benchmark(
        "cifar10_gpu", "focalnet_cifar_small", recipe, args, model_overrides={**MODEL, "embed_dim": args.width},
        warmup_fraction=args.warmup_fraction, checkpoints=False, callbacks=[swap] if swap else [],
        record_extra=swap.info if swap else {"depthwise": "conv"},
        notes=f"JAX on {gpus[0].device_kind if gpus else 'CPU'}; mixed precision {args.mixed_precision}; "
              f"NumPy input pipeline; Mixup {args.mixup} / CutMix {args.cutmix}",
    )


if __name__ == "__main__":
    main()
