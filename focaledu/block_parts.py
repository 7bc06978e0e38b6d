"""What a FocalNet block and a self-attention block share: LayerNorm, exact GELU, the MLP, layer scale."""

import keras
from keras import layers, ops

from focaledu import _validate

#: PyTorch's ``nn.LayerNorm`` default, used everywhere by the official code
#: (the keras.io tutorial used 1e-7 in places).
LAYER_NORM_EPSILON = 1e-5


def layer_norm(name, dtype=None):
    # Under a mixed policy Keras's LayerNormalization computes in float32 and
    # returns the compute dtype.
    return layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name, dtype=dtype)


def gelu(x):
    # The official code uses nn.GELU(), the exact erf form; keras.ops.gelu
    # defaults to the tanh approximation.
    return ops.gelu(x, approximate=False)


def layer_scales(layer, dim, value, enabled):
    """A block's per-channel residual scales ``gamma_1``, ``gamma_2`` (or ``(None, None)``)."""
    if not enabled:
        return None, None
    init = keras.initializers.Constant(value)
    return tuple(layer.add_weight(shape=(dim,), initializer=init, name=f"gamma_{i}") for i in (1, 2))


def scale(x, gamma):
    return x if gamma is None else x * gamma


@keras.saving.register_keras_serializable(package="focaledu")
class Mlp(layers.Layer):
    """The Transformer feed-forward network: Dense, GELU, dropout, Dense, dropout."""

    def __init__(self, dim, hidden_dim, drop=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = _validate.positive_int("dim", dim)
        self.hidden_dim = _validate.positive_int("hidden_dim", hidden_dim)
        self.drop_rate = _validate.rate("drop", drop)
        policy = self.dtype_policy
        self.fc1 = layers.Dense(self.hidden_dim, name="fc1", dtype=policy)
        self.fc2 = layers.Dense(self.dim, name="fc2", dtype=policy)
        self.drop = layers.Dropout(self.drop_rate, name="drop", dtype=policy)

    def build(self, input_shape):
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def call(self, x, training=None):
        x = self.drop(gelu(self.fc1(x)), training=training)
        return self.drop(self.fc2(x), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dim,)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, hidden_dim=self.hidden_dim, drop=self.drop_rate)
        return config
