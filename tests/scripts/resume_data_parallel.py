"""A data-parallel quick run on N devices, killed after epoch 1 and resumed.

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 python resume_data_parallel.py 2 RUN_DIR
    KERAS_BACKEND=tensorflow python resume_data_parallel.py 2 RUN_DIR

Prints one JSON line with what the test checks.
"""

import json
import os
import sys
from pathlib import Path

n, run_dir = int(sys.argv[1]), Path(sys.argv[2])
if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
    from focaledu.distribute import split_tensorflow_cpu

    split_tensorflow_cpu(n)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_callbacks import FirstEpochProbe, Interrupt  # noqa: E402

from focaledu import training  # noqa: E402

kwargs = dict(profile="quick", epochs=2, seed=3, verbose=0, devices=n, model_overrides={"embed_dim": 16, "depths": [1, 1, 1]},
              train_per_class=40, test_per_class=16, batch_size=32, warmup_epochs=1.0, monitor_every=1)
interrupt = Interrupt(at=0)
try:
    training.fit("focalnet_cifar_tiny", "synthetic", run_dir, callbacks=[interrupt], **kwargs)
except KeyboardInterrupt:
    pass
probe = FirstEpochProbe()
result = training.fit("focalnet_cifar_tiny", "synthetic", run_dir, callbacks=[probe], **kwargs)
best = keras.saving.load_model(run_dir / "best.keras", compile=False)
print(json.dumps({
    "first_epoch_after_resume": probe.first_epoch,
    "restored_equal": all(np.array_equal(a, b) for a, b in zip(probe.weights, interrupt.weights)),
    "iterations_after_resume": probe.iterations,
    "steps_per_epoch": result.metrics["steps_per_epoch"],
    "history_epochs": result.history["epoch"],
    "resumed_from_epoch": result.metrics["resumed_from_epoch"],
    "devices": result.metrics["devices"],
    "best_parameters": int(best.count_params()),
    "parameters": result.metrics["parameters"],
    "monitor_figures": sorted(p.name for p in (run_dir / "monitor").glob("*.png")),
    "test_accuracy": result.test_accuracy,
}))
