"""Argument checks shared by the layers, the model, ``Recipe`` and the command line.

Each raises ``ValueError`` naming the argument, the value received and what is accepted.
"""

import math
import numbers

import keras


def check(ok, name, value, expected, owner=None):
    """Raises ``ValueError`` unless ``ok``: ``{owner} `name` must be {expected}; received name=value.``

    Args:
        name: the argument; None when the caller names it (an argparse type: argparse adds the option).
        owner: what the argument belongs to, e.g. ``"Recipe"``.
    """
    if ok:
        return
    if name is None:
        raise ValueError(f"must be {expected}; received {value!r}")
    raise ValueError(f"{owner + ' ' if owner else ''}`{name}` must be {expected}; received {name}={value!r}.")


def is_number(value) -> bool:
    """A finite real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(name, value, minimum=1):
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= minimum
    check(ok, name, value, f"an integer >= {minimum}")
    return int(value)


def odd_int(name, value):
    value = positive_int(name, value)
    check(value % 2 == 1, name, value,
          "a positive odd integer (1, 3, 5, ...) so the depthwise convolutions keep the feature map size")
    return value


def even_int(name, value):
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 0 and value % 2 == 0
    check(ok, name, value, "a non-negative even integer (0, 2, 4, ...) so every focal kernel "
                           "`focal_factor * k + focal_window` stays odd")
    return int(value)


def rate(name, value):
    check(is_number(value) and 0.0 <= value < 1.0, name, value, "a float in [0, 1)")
    return float(value)


def positive_float(name, value):
    check(is_number(value) and value > 0, name, value, "a number > 0")
    return float(value)


def nonnegative_float(name, value):
    check(is_number(value) and value >= 0, name, value, "a number >= 0")
    return float(value)


def boolean(name, value):
    check(isinstance(value, bool), name, value, "True or False")
    return value


def image_size(value):
    """Returns ``(height, width)`` from an int or a pair of ints."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        height, width = pair
    except (TypeError, ValueError):
        raise ValueError(
            "`image_size` must be an int or a (height, width) pair of ints; "
            f"received image_size={value!r}."
        ) from None
    return positive_int("image_size", height), positive_int("image_size", width)


def per_stage(name, values, num_stages):
    """Checks a per-stage list (``focal_levels``, ``focal_windows``) has one entry per stage."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"`{name}` must be a list with one entry per stage; received {name}={values!r}.")
    if len(values) != num_stages:
        raise ValueError(
            f"`{name}` must have one entry per stage, i.e. len(depths)={num_stages} entries; "
            f"received {name}={list(values)!r} ({len(values)} entries)."
        )
    return [int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v for v in values]


def per_channel(name, values, channels, positive=False):
    """Checks a per-channel statistic (``mean``, ``std``): ``channels`` real numbers, > 0 if ``positive``."""
    ok = (not isinstance(values, (str, bytes)) and hasattr(values, "__len__") and len(values) == channels
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and (v > 0 or not positive)
                  for v in values))
    if not ok:
        kind = "numbers > 0" if positive else "numbers"
        raise ValueError(f"`{name}` must be {channels} {kind}, one per input channel; received {name}={values!r}.")
    return tuple(float(v) for v in values)


def float_input(name, dtype, hint="Convert images first, e.g. `images.astype('float32') / 255`."):
    """Rejects integer or boolean tensors: images must be scaled floats, not raw uint8; ``hint`` says what to do."""
    dtype = keras.backend.standardize_dtype(dtype)
    if "float" not in dtype:
        raise ValueError(
            f"`{name}` must be a floating-point tensor (float16, bfloat16, float32 or float64); "
            f"received dtype {dtype}. {hint}"
        )


def choice(name, value, accepted):
    """Checks ``value`` is one of ``accepted`` (strings such as a block's ``mixer``)."""
    check(isinstance(value, str) and value in accepted, name, value,
          f"one of {', '.join(repr(a) for a in accepted)}")
    return value


def optional_positive_int(name, value):
    """None (an automatic choice) or an integer >= 1."""
    return None if value is None else positive_int(name, value)


def channels_last_input(layer: str, dim: int, input_shape) -> None:
    """Raises unless ``input_shape`` is ``(batch, height, width, dim)``."""
    if len(input_shape) != 4 or input_shape[-1] != dim:
        raise ValueError(
            f"{layer}(dim={dim}) expects inputs of shape (batch, height, width, {dim}); received shape "
            f"{tuple(input_shape)}. Set `dim` to the channel count."
        )
