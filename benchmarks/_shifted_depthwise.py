"""A depthwise convolution written as a sum of shifted slices, for the GPU step profile's A/B test.

XLA lowers a depthwise convolution to a grouped convolution (cuDNN on a GPU),
whose backward pass has been reported as slow as a dense convolution's
(jax-ml/jax#13800). The same arithmetic, ``y = sum_ij x[shifted by i, j] *
w[i, j]``, is also plain element-wise work that XLA fuses. This module swaps
it into the ``DepthwiseConv2D`` layers of a built model (same weights, same
outputs), so ``gpu_step_profile.py --depthwise shifted`` can time the two.
"""

import keras
from keras import ops


def shifted_depthwise(x, kernel):
    """``padding="same"``, stride 1, depth multiplier 1 depthwise cross-correlation of ``x`` (B, H, W, C)
    with ``kernel`` (kh, kw, C, 1), as kh * kw shifted, per-channel-scaled copies of ``x``."""
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    height, width = int(x.shape[1]), int(x.shape[2])
    padded = ops.pad(x, [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]])
    weights = ops.cast(ops.reshape(kernel, (kh, kw, -1)), x.dtype)  # bfloat16 stays bfloat16 under mixed precision
    out = None
    for i in range(kh):
        for j in range(kw):
            term = padded[:, i : i + height, j : j + width, :] * weights[i, j]
            out = term if out is None else out + term
    return out


def use_shifted_depthwise(model) -> int:
    """Makes every ``DepthwiseConv2D`` inside ``model`` compute with :func:`shifted_depthwise`; returns how many.

    Only the forward computation changes (weights, names and saving stay the
    layer's own). The layers must be what FocalNet uses: odd kernel sizes,
    stride 1, "same" padding, no bias, depth multiplier 1, channels last.
    """
    swapped = 0
    for layer in model._flatten_layers():  # Keras' own walk over nested layers
        if not isinstance(layer, keras.layers.DepthwiseConv2D):
            continue
        supported = (all(k % 2 for k in layer.kernel_size) and tuple(layer.strides) == (1, 1)
                     and layer.padding == "same" and not layer.use_bias and layer.depth_multiplier == 1
                     and tuple(layer.dilation_rate) == (1, 1) and layer.data_format == "channels_last")
        if not supported:
            raise ValueError(f"use_shifted_depthwise supports odd kernels, stride 1, 'same' padding, no bias, "
                             f"depth multiplier 1, channels_last; layer {layer.name!r} differs.")
        layer.call = lambda inputs, layer=layer: shifted_depthwise(inputs, layer.kernel)
        swapped += 1
    return swapped


class ShiftedDepthwise(keras.callbacks.Callback):
    """Applies :func:`use_shifted_depthwise` to the model ``fit`` trains, before its first step is traced.

    Keras builds the model and makes (but does not yet trace) the train
    function before ``on_train_begin``, so every step uses the shifted
    slices. ``info["depthwise_layers_swapped"]`` says how many layers changed.
    """

    def __init__(self):
        super().__init__()
        self.info = {"depthwise": "shifted", "depthwise_layers_swapped": 0}

    def on_train_begin(self, logs=None):
        self.info["depthwise_layers_swapped"] = use_shifted_depthwise(self.model)
