"""Cost of one FocalModulation layer vs global and window self-attention, same width, same CPU.

For each token count ``N`` (a ``sqrt(N) x sqrt(N)`` feature map, batch 1)
three token mixers are built fresh and measured with
``focaledu.cost.measure_mixer``:

* ``focal``: ``FocalModulation`` (FocalNet-T with large receptive fields: 3 levels);
* ``attention``: ``MultiHeadSelfAttention`` over all ``N`` tokens (ViT style);
* ``window``: ``WindowAttention``, Swin's window attention in ``M x M``
  windows (``--window-size``, Swin-T's 7), the baseline of the FocalNet paper.

For each mixer and size:

* **time**: the median of a few compiled forward passes (``tf.function`` on
  TensorFlow) after a warm-up call;
* **peak memory**: the most bytes the pass held at once beyond what was
  allocated before it, from TensorFlow's allocator statistics
  (``cost.forward_peak_bytes``; on the CPU, allocations under 256 KiB are not
  counted, so small sizes read low);
* **largest tensor**: the bytes of the largest tensor the pass computes from
  its input, read from the traced graph (attention: the ``B * heads * N * N``
  score matrix).

The default sizes are multiples of the window (sides 7, 14, ..., 511) so that
the windows tile every map. Global attention stops at
``--max-attention-tokens``, or earlier when the machine has too little free
memory for its score matrices. The analytic MACs are recorded beside the
measurements, and log-log slopes are fitted on ``N >= --fit-from``.
``headline`` holds the rows nearest 1k, 4k and 16k tokens.

    .venv/bin/python benchmarks/modulation_vs_attention.py           # 1-3 minutes on 2 cores
    .venv/bin/python benchmarks/modulation_vs_attention.py --smoke   # seconds, temp dir

Writes ``benchmarks/results/modulation_vs_attention.json`` and ``.png``.
"""

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = "modulation_vs_attention"

FULL_SIDES = [7, 14, 21, 28, 35, 42, 56, 63, 84, 112, 126, 168, 252, 364, 511]
SMOKE_SIDES = [4, 8, 12]
MIXERS = ("focal", "attention", "window")
HEADLINE_TOKENS = (1024, 4096, 16384)


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _available_bytes():
    """MemAvailable from /proc/meminfo, or None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _join(parts, name, width):
    """One ``MixerCost`` from single-size measurements."""
    import numpy as np

    from focaledu import cost

    if not parts:
        return cost.MixerCost(name, width, 1, np.zeros(0, int), np.zeros(0), np.zeros(0))
    return cost.MixerCost(
        name=name, width=width, batch=1,
        tokens=np.concatenate([p.tokens for p in parts]),
        seconds=np.concatenate([p.seconds for p in parts]),
        largest_bytes=np.concatenate([p.largest_bytes for p in parts]),
        largest_shapes=[s for p in parts for s in p.largest_shapes],
        backend=parts[0].backend,
        peak_bytes=np.concatenate([p.peak_bytes for p in parts]),
    )


def _slope(values_n, values, min_n):
    from focaledu import cost

    try:
        return cost.fit_power_law(values_n, values, min_n=min_n)
    except ValueError:
        return None


def _nearest(rows, target):
    return min(rows, key=lambda r: abs(math.log(r["tokens"] / target)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=96, help="channels C (FocalNet-T / Swin-T stage 1: 96)")
    p.add_argument("--heads", type=int, default=3, help="attention heads (Swin-T stage 1: 3, head width 32)")
    p.add_argument("--window-size", type=int, default=7, help="window side M of window attention (Swin-T: 7)")
    p.add_argument("--focal-level", type=int, default=3, help="FocalNet-T (LRF) uses 3, FocalNet-T (SRF) 2")
    p.add_argument("--focal-window", type=int, default=3)
    p.add_argument("--sides", type=int, nargs="+", default=None, help="feature-map sides (N = side^2)")
    p.add_argument("--max-attention-tokens", type=int, default=15876,
                   help="largest N for global attention: its score matrices (3 heads, float32) take 3 GiB at "
                        "126 x 126 = 15876 tokens, on a machine shared with other jobs")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per size up to 4096 tokens")
    p.add_argument("--repeats-large", type=int, default=3, help="timed calls per size above 4096 tokens")
    p.add_argument("--fit-from", type=int, default=1024, help="fit slopes on N >= this")
    p.add_argument("--time-budget", type=float, default=420.0,
                   help="seconds; larger sizes are skipped once the run has used this much")
    p.add_argument("--out", type=Path, default=None, help="where the .json/.png go (default benchmarks/results)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and width, seconds, temp dir")
    args = p.parse_args(argv)

    from focaledu import attention, cost, receptive, training
    from focaledu.layers import FocalModulation

    sides = args.sides or FULL_SIDES
    if args.smoke:
        args.width, args.heads, args.focal_level, args.repeats, args.fit_from = 8, 2, 2, 1, 16
        args.window_size, args.max_attention_tokens = 4, 144
        sides = args.sides or SMOKE_SIDES
    width, heads, window_size = args.width, args.heads, args.window_size

    factories = {
        "focal": lambda dim: FocalModulation(dim, focal_window=args.focal_window, focal_level=args.focal_level),
        "attention": lambda dim: attention.MultiHeadSelfAttention(dim, num_heads=heads),
        "window": lambda dim: attention.WindowAttention(dim, num_heads=heads, window_size=window_size),
    }
    names = {"focal": "focal modulation", "attention": f"global attention ({heads} heads)",
             "window": f"window attention ({window_size}x{window_size}, {heads} heads)"}

    def macs(key, side):
        if key == "focal":
            return receptive.modulation_cost(width, side, side, args.focal_level, args.focal_window)["macs"]
        if key == "attention":
            return receptive.attention_cost(width, side, side)["macs"]
        return cost.window_attention_cost(width, side, side, window_size, heads)["macs"]

    load_before = _load_average()
    start = time.perf_counter()
    parts = {key: [] for key in MIXERS}
    rows, skipped = [], []
    for side in sides:
        n = side * side
        if time.perf_counter() - start > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s used up; stopping before N = {n}")
            skipped.append({"tokens": n, "why": "time budget"})
            break
        repeats = args.repeats if n <= 4096 else max(1, min(args.repeats, args.repeats_large))
        row = {"tokens": n, "grid": [side, side], "width": width, "repeats": repeats}
        for key in MIXERS:
            why = None
            if key == "attention" and n > args.max_attention_tokens:
                why = f"N > --max-attention-tokens={args.max_attention_tokens}"
            elif key == "attention":
                # Scores and softmax output side by side, with room to spare on a shared machine.
                need, free = 3 * cost.score_matrix_bytes(1, heads, n), _available_bytes()
                if free is not None and need > 0.6 * free:
                    why = f"needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB available"
            elif key == "window":
                try:
                    attention.window_plan(side, side, window_size)
                except ValueError as error:
                    why = str(error)
            if why:
                row.update({f"{key}_ms": None, f"{key}_peak_bytes": None, f"{key}_memory_bytes": None,
                            f"{key}_largest_tensor": None, f"{key}_macs": macs(key, side) if key != "window" else None})
                skipped.append({"tokens": n, "mixer": key, "why": why})
                continue
            measured = cost.measure_mixer(factories[key], [n], width, batch=1, repeats=repeats, warmup=1,
                                          name=names[key])
            parts[key].append(measured)
            peak = measured.peak_bytes[0]
            row.update({
                f"{key}_ms": 1e3 * float(measured.seconds[0]),
                f"{key}_peak_bytes": None if math.isnan(peak) else int(peak),
                f"{key}_memory_bytes": int(measured.largest_bytes[0]),
                f"{key}_largest_tensor": list(measured.largest_shapes[0]),
                f"{key}_macs": macs(key, side),
            })
        rows.append(row)
        text = " | ".join(
            f"{key} {row[f'{key}_ms']:8.2f} ms {(row[f'{key}_peak_bytes'] or 0) / 2**20:8.2f} MiB"
            if row[f"{key}_ms"] is not None else f"{key} (skipped)" for key in MIXERS)
        print(f"N = {n:6d}: {text}  [{time.perf_counter() - start:5.0f} s]", flush=True)
    seconds = time.perf_counter() - start

    costs = {key: _join(parts[key], names[key], width) for key in MIXERS}
    slopes = {"fitted_on_tokens_at_least": args.fit_from}
    for key, c in costs.items():
        slopes[f"{key}_time"] = _slope(c.tokens, c.seconds, args.fit_from)
        slopes[f"{key}_peak"] = _slope(c.tokens, c.peak_bytes, args.fit_from)
        slopes[f"{key}_memory"] = _slope(c.tokens, c.largest_bytes, args.fit_from)
    common = [r for r in rows if all(r[f"{key}_ms"] is not None for key in MIXERS)]
    largest = common[-1] if common else None

    def ratio(a, b, field):
        if not largest or not largest[f"{b}_{field}"] or largest[f"{a}_{field}"] is None:
            return None
        return largest[f"{a}_{field}"] / largest[f"{b}_{field}"]

    headline = []
    for target in HEADLINE_TOKENS:
        if rows:
            nearest = _nearest(rows, target)
            if nearest not in headline:
                headline.append(nearest)
    record = {
        "benchmark": NAME,
        "width": width,
        "batch": 1,
        "attention_heads": heads,
        "window_size": window_size,
        "focal_level": args.focal_level,
        "focal_window": args.focal_window,
        "focal_kernel_sizes": receptive.kernel_sizes(args.focal_level, args.focal_window),
        "mixers": names,
        "params": {
            "focal": receptive.modulation_cost(width, 1, 1, args.focal_level, args.focal_window)["params"],
            "attention": receptive.attention_cost(width, 1, 1)["params"],
            "window": cost.window_attention_cost(width, window_size, window_size, window_size, heads)["params"],
        },
        "results": rows,
        "headline": [{key: r[key] for key in r if not key.endswith("_tensor")} for r in headline],
        "skipped": skipped,
        "slopes": slopes,
        "largest_common_tokens": largest["tokens"] if largest else None,
        "ratio_time": ratio("attention", "focal", "ms"),
        "ratio_memory": ratio("attention", "focal", "memory_bytes"),
        "ratio_peak": ratio("attention", "focal", "peak_bytes"),
        "ratio_window_time": ratio("window", "focal", "ms"),
        "ratio_window_peak": ratio("window", "focal", "peak_bytes"),
        "ratio_meaning": "global attention / focal modulation (ratio_window_*: window attention / focal modulation) "
                         "at the largest token count where all three were measured",
        "peak_meaning": "peak bytes TensorFlow's allocator held during one compiled forward pass beyond what was "
                        "allocated before it (focaledu.cost.forward_peak_bytes); on the CPU allocations under 256 KiB "
                        "are not counted and a block may be counted up to twice its size",
        "memory_meaning": "bytes of the largest tensor the forward pass computes from its input (traced graph): "
                          "a lower bound on the pass's peak memory; for global attention the B*heads*N*N score matrix",
        "time_meaning": "median wall-clock ms of a compiled forward pass (tf.function), batch 1, after one warm-up",
        "backend": costs["focal"].backend,
        "seconds": seconds,
        "smoke": bool(args.smoke),
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "notes": "one run on a 2-core CPU shared with other jobs (see load averages): timings are noisy, "
                 "compare slopes and ratios rather than absolute numbers",
        **training.run_info(shlex.join(["python", os.path.relpath(__file__, ROOT),
                                        *(sys.argv[1:] if argv is None else argv)])),
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix=f"focaledu-{NAME}-")) if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{NAME}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, [costs[key] for key in ("attention", "window", "focal")], out / f"{NAME}.png")
    print(f"slopes (N >= {args.fit_from}): " + ", ".join(
        f"{key} time {slopes[f'{key}_time']:.2f} peak {slopes[f'{key}_peak']:.2f}"
        for key in MIXERS if slopes[f"{key}_time"] is not None and slopes[f"{key}_peak"] is not None))
    if largest:
        print(f"at N = {largest['tokens']}: global/focal time x{record['ratio_time']:.1f}, "
              f"window/focal time x{record['ratio_window_time']:.2f}")
    print(f"{seconds:.0f} s; wrote {path}")
    return record


def _plot(record, costs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from focaledu import cost

    costs = [c for c in costs if len(c.tokens)]
    min_tokens = record["slopes"]["fitted_on_tokens_at_least"]
    if any((c.tokens >= min_tokens).sum() < 2 for c in costs):
        min_tokens = None
    machine = record["machine"]
    fig = cost.plot_scaling(
        costs, min_tokens=min_tokens,
        title=(f"one layer, width {record['width']}, batch 1 ({record['backend']}, {machine['cpu_count']}-core CPU, "
               f"shared; load {machine.get('load_average_1min', '?')})"),
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
