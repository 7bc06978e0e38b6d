"""How a token mixer's cost grows with the number of tokens: time, peak memory, largest tensor.

Also Swin window attention's counts (:func:`window_attention_cost`), power-law fits and plots.
"""

from dataclasses import dataclass, field
import math
import statistics
import time

import keras
import numpy as np


def score_matrix_bytes(batch, heads, tokens, bytes_per_value=4):
    """Bytes of the attention weights ``(batch, heads, tokens, tokens)``: ``B * h * N^2`` values."""
    return batch * heads * tokens**2 * bytes_per_value


def window_attention_cost(dim, height, width, window_size, num_heads=1, bias=True):
    """Parameters and MACs of Swin's window attention on a ``height x width`` map, as ``WindowAttention`` tiles it.

    MACs are ``4 N C^2 + 2 N M^2 C``; the shift, the mask and the softmax are left out.

    Returns:
        ``{"params": int, "macs": int, "window": (M_h, M_w)}``.
    """
    from focaledu import _validate
    from focaledu.attention import window_plan

    dim = _validate.positive_int("dim", dim)
    num_heads = _validate.positive_int("num_heads", num_heads)
    window_h, window_w, _ = window_plan(height, width, window_size)
    tokens = height * width
    table = (2 * window_h - 1) * (2 * window_w - 1) * num_heads
    params = 4 * dim * dim + (3 * dim if bias else 0) + dim + table
    macs = 4 * tokens * dim * dim + 2 * tokens * window_h * window_w * dim
    return {"params": int(params), "macs": int(macs), "window": (window_h, window_w)}


@dataclass
class MixerCost:
    """Measurements of one mixer at several token counts (arrays aligned with ``tokens``)."""

    name: str
    width: int
    batch: int
    tokens: np.ndarray
    seconds: np.ndarray  # median forward time
    largest_bytes: np.ndarray  # largest intermediate tensor; NaN where it could not be traced
    largest_shapes: list = field(default_factory=list)
    backend: str = ""
    peak_bytes: np.ndarray = None  # peak memory of one pass (forward_peak_bytes); NaN where unknown

    def __post_init__(self):
        if self.peak_bytes is None:
            self.peak_bytes = np.full(len(self.tokens), np.nan)
        self.peak_bytes = np.asarray(self.peak_bytes, dtype="float64")
        if not self.largest_shapes:
            self.largest_shapes = [None] * len(self.tokens)

    def time_slope(self, min_tokens=None):
        """Log-log slope of time against tokens (fitted on ``tokens >= min_tokens``)."""
        return fit_power_law(self.tokens, self.seconds, min_n=min_tokens)

    def memory_slope(self, min_tokens=None):
        """Log-log slope of the largest intermediate's bytes against tokens."""
        return fit_power_law(self.tokens, self.largest_bytes, min_n=min_tokens)

    def peak_slope(self, min_tokens=None):
        """Log-log slope of the pass's peak memory against tokens."""
        return fit_power_law(self.tokens, self.peak_bytes, min_n=min_tokens)

    def table(self):
        """A plain-text table of the measurements."""
        rows = [f"{self.name} (width {self.width}, batch {self.batch}, {self.backend})",
                f"{'tokens':>8} {'time (ms)':>10} {'peak memory':>12} {'largest tensor':>15}  shape"]
        for n, t, p, b, shape in zip(self.tokens, self.seconds, self.peak_bytes, self.largest_bytes,
                                     self.largest_shapes):
            peak = "n/a" if np.isnan(p) else _format_bytes(p)
            size = "n/a" if np.isnan(b) else _format_bytes(b)
            rows.append(f"{int(n):>8} {1e3 * t:>10.2f} {peak:>12} {size:>15}  {shape}")
        return "\n".join(rows)

    def __str__(self):
        return self.table()


def measure_mixer(
    layer_factory,
    token_counts,
    width,
    batch=1,
    repeats=5,
    warmup=1,
    layout="grid",
    name=None,
    seed=0,
    peak=True,
):
    """Times a token mixer and measures its memory as the token count grows.

    Args:
        layer_factory: ``layer_factory(width)`` returns a fresh Keras layer.
        token_counts: the token counts ``N`` to measure, increasing.
        width: channels ``C`` of the input.
        batch: batch size ``B``.
        repeats: timed calls per token count; the median is kept.
        warmup: untimed calls first (the first one traces and compiles).
        layout: ``"grid"`` (inputs ``(B, sqrt(N), sqrt(N), C)``, ``N`` a square) or ``"tokens"`` (``(B, N, C)``).
        name: label for tables and plots; the layer's class name by default.
        seed: seed of the random inputs.
        peak: also measure each pass's peak memory (:func:`forward_peak_bytes`).

    Returns:
        A ``MixerCost``.
    """
    if layout not in ("grid", "tokens"):
        raise ValueError(f"`layout` must be 'grid' or 'tokens'; received layout={layout!r}.")
    token_counts = [int(n) for n in token_counts]
    if not token_counts or min(token_counts) < 1:
        raise ValueError(f"`token_counts` must be positive integers; received {token_counts!r}.")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"Need repeats >= 1 and warmup >= 0; received repeats={repeats}, warmup={warmup}.")
    rng = np.random.default_rng(seed)
    seconds, largest, shapes, peaks = [], [], [], []
    for n in token_counts:
        if layout == "grid":
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(
                    f"With layout='grid' every token count must be a perfect square (a side x side "
                    f"feature map); received {n}. Use layout='tokens' for (batch, N, channels) inputs."
                )
            shape = (batch, side, side, width)
        else:
            shape = (batch, n, width)
        x = rng.normal(size=shape).astype("float32")
        layer = layer_factory(width)
        layer(x)  # build the weights
        forward = _compiled_forward(layer)
        for _ in range(warmup):
            _sync(forward(x))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            _sync(forward(x))
            times.append(time.perf_counter() - start)
        seconds.append(statistics.median(times))
        peak_size = forward_peak_bytes(layer, x, forward) if peak else None
        peaks.append(np.nan if peak_size is None else peak_size)
        size, tensor_shape = largest_intermediate(layer, x)
        largest.append(np.nan if size is None else size)
        shapes.append(tensor_shape)
        name = name or type(layer).__name__
    return MixerCost(
        name=name,
        width=width,
        batch=batch,
        tokens=np.asarray(token_counts),
        seconds=np.asarray(seconds),
        largest_bytes=np.asarray(largest, dtype="float64"),
        largest_shapes=shapes,
        backend=keras.backend.backend(),
        peak_bytes=np.asarray(peaks, dtype="float64"),
    )


def _compiled_forward(layer):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: layer(x, training=False))
    if backend == "jax":
        step, trainable, non_trainable = _jax_step(layer)
        return lambda x: step(trainable, non_trainable, x)
    return lambda x: layer(x, training=False)


def _jax_step(layer):
    import jax

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    step = jax.jit(lambda tv, ntv, x: layer.stateless_call(tv, ntv, x, training=False)[0])
    return step, trainable, non_trainable


def forward_peak_bytes(layer, x, forward=None):
    """Peak bytes one forward pass of ``layer`` on ``x`` holds beyond what was allocated before it.

    TensorFlow: its allocator's peak (coarse on the CPU, so small results are approximate); JAX: XLA's
    temporaries plus output of the compiled pass; PyTorch: the most bytes alive among the eager pass's tensors.

    Args:
        layer: a built Keras layer.
        x: an input for it (NumPy or a tensor).
        forward: the compiled pass to call (TensorFlow); a new ``tf.function`` by default.

    Returns:
        An ``int``, or ``None`` on other backends or when the backend keeps no statistics.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        device = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"
        forward = forward or _compiled_forward(layer)
        x = tf.convert_to_tensor(x)
        _sync(forward(x))  # traced and warm: tracing allocates too
        try:
            tf.config.experimental.reset_memory_stats(device)
            before = tf.config.experimental.get_memory_info(device)["current"]
            outputs = forward(x)
            peak = tf.config.experimental.get_memory_info(device)["peak"]
        except (ValueError, RuntimeError, tf.errors.OpError):  # no allocator statistics here
            return None
        _sync(outputs)
        return int(peak - before)
    if backend == "jax":
        step, trainable, non_trainable = _jax_step(layer)
        try:
            analysis = step.lower(trainable, non_trainable, x).compile().memory_analysis()
        except Exception:  # not every platform or version reports it
            return None
        if analysis is None:
            return None
        return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)
    if backend == "torch":
        return _torch_pass_memory(layer, x)[0]
    return None


def _sync(outputs):
    # JAX, and torch on a GPU, dispatch asynchronously: copying the result to NumPy waits
    # for it, on every backend, before the clock stops.
    keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)


def largest_intermediate(layer, x):
    """``(bytes, shape)`` of the largest tensor computed from ``x`` in ``layer(x)``, read from the traced graph.

    Tensors that depend only on the weights, and ``x`` itself, are not counted; ``(None, None)`` on other backends.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _largest_in_tf_graph(layer, x)
    if backend == "jax":
        return _largest_in_jaxpr(layer, x)
    if backend == "torch":
        return _torch_pass_memory(layer, x)[1]
    return None, None


def _torch_pass_memory(layer, x):
    """``(peak_bytes, (largest_bytes, shape))`` of one eager ``layer(x)`` under torch's dispatcher."""
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from focaledu.receptive import _built

    x = keras.ops.convert_to_tensor(x)
    _built(layer, x)  # its weights are not the pass's memory
    # Storages that existed before the pass: a view of the input or of a weight allocates nothing.
    existing = {t.untyped_storage().data_ptr() for t in [x] + [v.value for v in layer.weights]}

    class Tracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live = self.peak = 0
            self.largest = (0, None)
            self.storages = {}  # data_ptr -> [bytes, tensors alive on it]
            self.tracked = set()  # ids of the tensors counted, until they are freed
            self.from_input = {id(x)}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = keras.tree.flatten((args, kwargs or {}))
            dependent = any(isinstance(t, torch.Tensor) and id(t) in self.from_input for t in inputs)
            for t in keras.tree.flatten(out):
                if isinstance(t, torch.Tensor) and id(t) not in self.tracked and t is not x:
                    self._track(t, dependent)
            return out

        def _track(self, tensor, dependent):
            ptr, size = tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes()
            if ptr not in existing:
                entry = self.storages.setdefault(ptr, [size, 0])
                if entry[1] == 0:
                    self.live += size
                    self.peak = max(self.peak, self.live)
                entry[1] += 1
            self.tracked.add(id(tensor))
            if dependent:
                self.from_input.add(id(tensor))
                nbytes = tensor.numel() * tensor.element_size()
                if nbytes > self.largest[0]:
                    self.largest = (nbytes, tuple(tensor.shape))
            # Python ids are reused once a tensor is freed: forget it then.
            weakref.finalize(tensor, self._release, id(tensor), ptr)

        def _release(self, key, ptr):
            self.tracked.discard(key)
            self.from_input.discard(key)
            entry = self.storages.get(ptr)
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    self.live -= entry[0]
                    del self.storages[ptr]

    tracker = Tracker()
    with torch.no_grad(), tracker:
        layer(x, training=False)
    return tracker.peak, tracker.largest


def _largest_in_tf_graph(layer, x):
    import tensorflow as tf

    function = tf.function(lambda t: layer(t, training=False))
    graph = function.get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).graph
    inputs = {t.ref() for t in graph.inputs if t.dtype != tf.resource}
    # Walk forward from the input so that weight-only tensors are left out.
    frontier, seen = list(inputs), set(inputs)
    best = (0, None)
    while frontier:
        tensor = frontier.pop().deref()
        for op in tensor.consumers():
            for out in op.outputs:
                if out.ref() in seen or out.dtype == tf.resource:
                    continue
                seen.add(out.ref())
                frontier.append(out.ref())
                if out.shape.is_fully_defined():
                    size = out.shape.num_elements() * out.dtype.size
                    best = max(best, (size, tuple(out.shape.as_list())), key=lambda b: b[0])
    return best


def _largest_in_jaxpr(layer, x):
    import jax

    from focaledu.receptive import _built

    _built(layer, x)  # stateless_call needs the weights
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    closed = jax.make_jaxpr(
        lambda tv, ntv, t: layer.stateless_call(tv, ntv, t, training=False)[0]
    )(trainable, non_trainable, x)
    jaxpr = closed.jaxpr
    n_weights = len(jax.tree_util.tree_leaves((trainable, non_trainable)))
    return _largest_in_jaxpr_body(jaxpr, dependent=[False] * n_weights + [True], best=(0, None))


def _largest_in_jaxpr_body(jaxpr, dependent, best):
    live = {var for var, dep in zip(jaxpr.invars, dependent) if dep}
    for eqn in jaxpr.eqns:
        # Literals (inline constants) never depend on the input.
        uses_input = [type(v).__name__ != "Literal" and v in live for v in eqn.invars]
        if not any(uses_input):
            continue
        for out in eqn.outvars:
            live.add(out)
            aval = out.aval
            if hasattr(aval, "shape") and hasattr(aval, "dtype"):
                size = math.prod(aval.shape) * aval.dtype.itemsize
                best = max(best, (size, tuple(aval.shape)), key=lambda b: b[0])
        # Nested computations (jit, custom_jvp, ...) can hold larger temporaries.
        for param in eqn.params.values():
            sub = getattr(param, "jaxpr", param)
            if hasattr(sub, "eqns") and hasattr(sub, "invars"):
                mapping = uses_input if len(sub.invars) == len(uses_input) else [True] * len(sub.invars)
                best = _largest_in_jaxpr_body(sub, mapping, best)
    return best


def fit_power_law(n, cost, min_n=None, return_prefactor=False):
    """Fits ``cost = a * n**p`` by least squares on ``log cost`` against ``log n``.

    Args:
        n: sizes (positive).
        cost: measurements; non-positive or NaN entries are ignored.
        min_n: fit only the points with ``n >= min_n``.
        return_prefactor: also return ``a``.

    Returns:
        The slope ``p``, or ``(p, a)``.
    """
    n = np.asarray(n, dtype="float64")
    cost = np.asarray(cost, dtype="float64")
    if n.shape != cost.shape or n.ndim != 1:
        raise ValueError(f"`n` and `cost` must be 1-D and aligned; received shapes {n.shape} and {cost.shape}.")
    keep = (n > 0) & np.isfinite(cost) & (cost > 0)
    if min_n is not None:
        keep &= n >= min_n
    if keep.sum() < 2:
        raise ValueError("Need at least two positive measurements to fit a power law.")
    slope, intercept = np.polyfit(np.log(n[keep]), np.log(cost[keep]), 1)
    return (float(slope), float(np.exp(intercept))) if return_prefactor else float(slope)


def plot_scaling(costs, min_tokens=None, axes=None, title=None, panels=("seconds", "peak_bytes", "largest_bytes")):
    """Log-log plots of time and memory against tokens, with fitted slopes.

    Args:
        costs: a ``MixerCost`` or a list of them.
        min_tokens: fit the slopes on ``tokens >= min_tokens`` only.
        axes: Matplotlib axes, one per panel shown; a new figure by default.
        title: figure title.
        panels: among ``"seconds"``, ``"peak_bytes"`` and ``"largest_bytes"``; those without positive values are
            omitted.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    if isinstance(costs, MixerCost):
        costs = [costs]
    known = {
        "seconds": ("forward time (s)", "median forward time"),
        "peak_bytes": ("bytes", "peak memory of one pass"),
        "largest_bytes": ("bytes", "largest intermediate tensor"),
    }
    unknown = [p for p in panels if p not in known]
    if unknown:
        raise ValueError(f"`panels` must be among {', '.join(map(repr, known))}; received {unknown!r}.")
    def measured(values):
        values = np.asarray(values, dtype="float64")
        return np.isfinite(values) & (values > 0)  # zero: below what the allocator counts

    panels = [p for p in panels if any(measured(getattr(c, p)).any() for c in costs)] or ["seconds"]
    if axes is None:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    for ax, attr in zip(axes, panels):
        ylabel, panel_title = known[attr]
        for index, cost in enumerate(costs):
            values = getattr(cost, attr)
            keep_values = measured(values)
            if not keep_values.any():
                continue
            color = f"C{index}"
            keep = cost.tokens >= (min_tokens or 0)
            try:
                slope, prefactor = fit_power_law(cost.tokens, values, min_n=min_tokens, return_prefactor=True)
                label = f"{cost.name}: slope {slope:.2f}"
            except ValueError:
                slope = None
                label = cost.name
            ax.loglog(cost.tokens[keep_values], values[keep_values], "o", color=color, label=label)
            if slope is not None:
                grid = np.geomspace(cost.tokens[keep].min(), cost.tokens[keep].max(), 50)
                ax.loglog(grid, prefactor * grid**slope, "--", color=color, linewidth=1)
        ax.set_xlabel("tokens N")
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _format_bytes(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
