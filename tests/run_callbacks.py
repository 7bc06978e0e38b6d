"""Callbacks that simulate a killed run and probe a resumed one (shared by the training tests)."""

import keras
import numpy as np


class Interrupt(keras.callbacks.Callback):
    """Simulates a killed run: raises at the end of epoch ``at`` (after the backup is written)."""

    def __init__(self, at=0):
        super().__init__()
        self.at = at
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            self.weights = [np.array(w) for w in self.model.get_weights()]
            raise KeyboardInterrupt(f"simulated kill after epoch {epoch + 1}")


class FirstEpochProbe(keras.callbacks.Callback):
    """Records the first epoch index and the weights when training (re)starts."""

    def __init__(self):
        super().__init__()
        self.first_epoch = None
        self.weights = None
        self.iterations = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
            self.weights = [np.array(w) for w in self.model.get_weights()]
            self.iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
