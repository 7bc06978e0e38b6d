"""Gates and modulators of a FocalNet, read from its functional graph.

``FocalNet`` wires every block's ``{"gates", "modulator"}`` into its graph, so
reading them is a sub-model over those tensors: it shares the weights, runs
under ``jit_compile`` and on every backend, and never relies on tensors
stashed on layers during ``call`` (which breaks under tracing).
"""

import weakref

import keras
import numpy as np

_SUBMODELS = weakref.WeakKeyDictionary()


def modulation_model(model, blocks=None):
    """A ``keras.Model`` from ``model``'s images to ``{block: {"gates", "modulator"}}``.

    Args:
        model: a ``focaledu.FocalNet``.
        blocks: block names (see ``model.block_names``); all blocks by default.
    """
    outputs = getattr(model, "modulation_outputs", None)
    if outputs is None:
        raise ValueError(
            "`model` must be a focaledu.FocalNet (it exposes `modulation_outputs`); "
            f"received {type(model).__name__}."
        )
    names = list(outputs) if blocks is None else list(blocks)
    unknown = [name for name in names if name not in outputs]
    if unknown:
        raise ValueError(f"Unknown `blocks` {unknown}. Accepted values: {', '.join(outputs)}.")
    cache = _SUBMODELS.setdefault(model, {})
    key = tuple(names)
    if key not in cache:
        # Plain dicts: Keras wraps attributes in TrackedDict, which jax.jit rejects as an output.
        cache[key] = keras.Model(model.inputs, {name: dict(outputs[name]) for name in names})
    return cache[key]


def modulation_maps(model, images, blocks=None, batch_size=32):
    """Evaluates the gates and modulators of ``model`` on ``images``.

    Args:
        model: a ``focaledu.FocalNet`` (compiled, jitted or not).
        images: float array ``(B, H, W, C)`` preprocessed like the model's inputs.
        blocks: block names to read; all by default.
        batch_size: images per forward pass.

    Returns:
        ``{block_name: {"gates": (B, h, w, L + 1), "modulator": (B, h, w, C_block)}}``
        as NumPy arrays, at each block's own resolution.
    """
    images = np.asarray(images)
    if images.ndim != 4 or "float" not in str(images.dtype):
        raise ValueError(
            "`images` must be a float array of shape (batch, height, width, channels); "
            f"received dtype {images.dtype} and shape {images.shape}."
        )
    submodel = modulation_model(model, blocks)
    return keras.tree.map_structure(
        np.asarray, submodel.predict(images, batch_size=batch_size, verbose=0)
    )
