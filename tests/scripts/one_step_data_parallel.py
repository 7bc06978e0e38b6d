"""One training step on 1 device and on N devices from the same weights and global batch.

Run in a fresh process (virtual devices must exist before the backend starts):

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 python one_step_data_parallel.py 2
    KERAS_BACKEND=tensorflow python one_step_data_parallel.py 2

Prints one JSON line: per optimizer, the max absolute difference between the
two runs' updated weights and the size of the update itself.
"""

import json
import os
import sys

n = int(sys.argv[1])
if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
    from focaledu.distribute import split_tensorflow_cpu

    split_tensorflow_cpu(n)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from focaledu import training  # noqa: E402
from focaledu.distribute import data_parallel  # noqa: E402
from focaledu.model import FocalNet  # noqa: E402

BATCH = 8
CONFIG = dict(image_size=16, num_classes=10, patch_size=4, embed_dim=16, depths=[1, 1], focal_levels=[2, 2],
              focal_windows=[3, 3], drop_path_rate=0.0)
rng = np.random.default_rng(0)
x = rng.normal(size=(BATCH, 16, 16, 3)).astype("float32")
y = np.eye(10, dtype="float32")[rng.integers(0, 10, BATCH)]
keras.utils.set_random_seed(0)
initial = FocalNet(**CONFIG).get_weights()
recipe = training.recipe("full", batch_size=BATCH, warmup_epochs=0.0, learning_rate=1e-2, min_learning_rate=1e-2)


def one_step(devices, optimizer):
    with data_parallel(devices, batch_size=BATCH) as names:
        model = FocalNet(**CONFIG)
        model.set_weights(initial)
        if optimizer == "sgd":
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss=training.make_loss(recipe), jit_compile=False)
        else:  # the recipe's AdamW: weight decay, clipping, schedule
            training.compile_model(model, recipe.replace(jit_compile=False), steps_per_epoch=1, epochs=1)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        if keras.backend.backend() == "tensorflow":
            replicas = model.distribute_strategy.num_replicas_in_sync
        else:
            replicas = len(model.trainable_variables[0].value.sharding.device_set)
        return [np.asarray(w) for w in model.get_weights()], replicas, names


report = {"backend": keras.backend.backend(), "devices": n, "global_batch": BATCH}
for optimizer in ("sgd", "adamw"):
    single, r1, _ = one_step(1, optimizer)
    multi, rn, names = one_step(n, optimizer)
    report[optimizer] = {
        "max_abs_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(single, multi)),
        "max_abs_update": max(float(np.max(np.abs(a - w))) for a, w in zip(single, initial)),
        "replicas": [r1, rn],
        "device_names": names,
    }
print(json.dumps(report))
