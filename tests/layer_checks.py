"""One shared check for every layer: shapes, config, .keras round trip, jit, weight counts."""

import inspect

import keras
import numpy as np


def random_inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def constructor_args(cls):
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


def check_layer(cls, kwargs, input_shape, output_shape, trainable_weights, tmp_path, call_kwargs=None):
    """Runs the checks every focaledu layer must pass and returns the eager output."""
    call_kwargs = call_kwargs or {}
    x = random_inputs(input_shape)
    layer = cls(**kwargs)
    y = keras.ops.convert_to_numpy(layer(x, **call_kwargs))
    assert y.shape == tuple(output_shape)
    assert np.isfinite(y).all()
    assert len(layer.trainable_weights) == trainable_weights

    # Symbolic shape inference agrees with the eager shape.
    symbolic = cls(**kwargs)(keras.KerasTensor((None,) + tuple(input_shape[1:])), **call_kwargs)
    assert tuple(symbolic.shape) == (None,) + tuple(output_shape[1:])

    # get_config covers every constructor argument and rebuilds an equal layer.
    config = layer.get_config()
    missing = [name for name in constructor_args(cls) if name not in config]
    assert not missing, f"get_config() of {cls.__name__} misses {missing}"
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone(x, **call_kwargs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x, **call_kwargs)), y, atol=1e-6)

    # .keras round trip in safe mode gives identical outputs.
    inputs = keras.Input(input_shape[1:])
    model = keras.Model(inputs, layer(inputs, **call_kwargs))
    path = tmp_path / f"{cls.__name__}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))

    # Compiled (XLA on TensorFlow, jit on JAX) forward and training step.
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, atol=1e-4, rtol=1e-4)
    loss = model.train_on_batch(x, np.zeros_like(y))
    assert np.isfinite(loss)
    return y
