"""CIFAR-10 on the CPU with the full focaledu recipe (TensorFlow backend).

``focalnet_cifar_tiny`` (pre-norm, patch 4, width 64, depths 2-2-2) with the
official overlapping stem (``use_conv_embed=True``: 7x7/s4 conv, 3x3/s2
downsampling), AdamW with warm-up + cosine, padded crop + flip, label
smoothing 0.1, batch 256 at a peak learning rate of 3e-3 (the full
profile's batch 128 and 2e-3, scaled by sqrt 2), 44 epochs (sized to the
hour: about 74 s per epoch on 2 idle cores). The test set is also scored
with flip test-time augmentation (``test_accuracy_flip``: the mean softmax of
each image and its mirror image).

Recorded in ``results/cifar10_cpu.json`` (2026-11-26, 2-core Xeon): 84.58 %
test accuracy single-view and 85.38 % with flip test-time augmentation,
after 44 epochs in 58 minutes of training; validation accuracy passed 80 %
at 29 minutes and 85 % at 50. These weights ship as
``focaledu.pretrained("focalnet_cifar_tiny_cifar10")``.

Earlier runs of the same model, one seed each: batch 128 at 2e-3 for 34
epochs (``--batch-size 128 --lr 2e-3 --epochs 34``,
``results/cifar10_cpu_batch128.json``): 84.45 % / 85.16 % in 59 minutes, the
record before this one, at 95 s per epoch; batch 256 for 40 epochs
(``results/cifar10_cpu_batch256.json``): 84.01 % / 85.32 % in 51 minutes;
on all 50,000 training images (``--validation-split 0 --snapshots --epochs 35
--stop-after 3505``, ``results/cifar10_cpu_all50k.json``), on a day the machine
ran 510 instead of 604 images/s: 33 of 35 epochs, 83.95 % / 85.04 % in 59 minutes.
The record's recipe again with ``--seed 1 --stop-after 3505`` on a 2-core AMD
EPYC (``results/cifar10_cpu_seed1.json``, 2026-11-27): all 44 epochs, 84.88 % /
85.88 % in 58 minutes; the second seed measures the noise, the shipped weights
stay the first run's.

``--validation-split 0`` trains on all 50,000 training images; with
``--snapshots`` the weights of every epoch are then scored on the test set
after training (``test_curve`` in the results and the accuracy-against-minutes
plot; nothing is selected by it, the result is the final weights').
``--stop-after`` guards the hour on a machine slower than planned.

    .venv/bin/python benchmarks/cifar10_cpu.py                 # ~60 min on 2 idle cores
    .venv/bin/python benchmarks/cifar10_cpu.py --smoke         # seconds, temp dir

Writes ``benchmarks/results/cifar10_cpu.json`` and ``cifar10_cpu.png``.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import _common  # noqa: E402


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=44)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--validation-split", type=float, default=0.1,
                   help="share of the 50,000 training images held out for validation; 0 trains on all of them")
    p.add_argument("--snapshots", action="store_true",
                   help="save the weights after every epoch in <run-dir>/snapshots and score them on the test "
                        "set after training (test_curve: accuracy against training time; nothing is selected)")
    args = p.parse_args(argv)
    from focaledu import training

    recipe = training.recipe("full", batch_size=args.batch_size, learning_rate=args.lr, test_time_flip=True,
                             validation_split=args.validation_split)
    # The overlapping stem costs ~20 % throughput here (363 vs 448 images/s, batch 128); early
    # convolutions are known to help small-image transformers, so it is the default here.
    return _common.run_training_benchmark("cifar10_cpu", "focalnet_cifar_tiny", recipe, args,
                                          model_overrides={"use_conv_embed": True},
                                          snapshots=args.snapshots)


if __name__ == "__main__":
    main()
