"""Cost of one FocalModulation layer vs one multi-head self-attention layer, same width, same CPU.

For each token count ``N`` (a ``sqrt(N) x sqrt(N)`` feature map, batch 1) both
layers are built fresh and measured with ``focaledu.cost.measure_mixer``:

* **time**: the median of a few compiled forward passes (``tf.function`` on
  TensorFlow) after a warm-up call;
* **memory**: the bytes of the largest tensor the forward pass creates from its
  input, read from the traced graph. It is a lower bound on the pass's peak
  memory and the term that grows fastest (attention: the ``B * heads * N * N``
  score matrix). Process-level counters (RSS) are not used: TensorFlow
  allocates outside Python and reuses memory pools.

Attention stops at ``--max-attention-tokens`` (its score matrix and time grow
as ``N^2``); focal modulation goes on to the largest size. The analytic MACs
and parameters (``focaledu.receptive``) are recorded beside the measurements.
The log-log slopes are fitted on ``N >= --fit-from``.

    .venv/bin/python benchmarks/modulation_vs_attention.py           # ~1 min on 2 cores
    .venv/bin/python benchmarks/modulation_vs_attention.py --smoke   # seconds, temp dir

Writes ``benchmarks/results/modulation_vs_attention.json`` and ``.png``.
"""

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = "modulation_vs_attention"

FULL_TOKENS = [16, 64, 144, 256, 576, 1024, 2304, 4096, 9216, 12544, 16384, 36864, 65536, 147456, 262144]
SMOKE_TOKENS = [16, 64, 144]


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _measure_one(factory, n, width, repeats, name):
    from focaledu import cost

    return cost.measure_mixer(factory, [n], width, batch=1, repeats=repeats, warmup=1, name=name)


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
    )


def _slope(values_n, values, min_n):
    from focaledu import cost

    try:
        return cost.fit_power_law(values_n, values, min_n=min_n)
    except ValueError:
        return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=96, help="channels C (FocalNet-T / Swin-T stage 1: 96)")
    p.add_argument("--heads", type=int, default=3, help="attention heads (Swin-T stage 1: 3, head width 32)")
    p.add_argument("--focal-level", type=int, default=3, help="FocalNet-T (LRF) uses 3, FocalNet-T (SRF) 2")
    p.add_argument("--focal-window", type=int, default=3)
    p.add_argument("--tokens", type=int, nargs="+", default=None, help="token counts (perfect squares)")
    p.add_argument("--max-attention-tokens", type=int, default=12544,
                   help="largest N for attention: its score matrix (3 heads, float32) is 1.8 GiB at 12544 "
                        "tokens and 3 GiB at 16384, on a machine shared with other jobs")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per size (3 above 4096 tokens)")
    p.add_argument("--fit-from", type=int, default=1024, help="fit slopes on N >= this")
    p.add_argument("--time-budget", type=float, default=240.0,
                   help="seconds; larger sizes are skipped once the run has used this much")
    p.add_argument("--out", type=Path, default=None, help="where the .json/.png go (default benchmarks/results)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and width, seconds, temp dir")
    args = p.parse_args(argv)

    from focaledu import attention, receptive, training
    from focaledu.layers import FocalModulation

    tokens = args.tokens or FULL_TOKENS
    if args.smoke:
        args.width, args.heads, args.focal_level, args.repeats, args.fit_from = 8, 2, 2, 1, 16
        tokens, args.max_attention_tokens = args.tokens or SMOKE_TOKENS, 144
    width, heads = args.width, args.heads

    def focal_factory(dim):
        return FocalModulation(dim, focal_window=args.focal_window, focal_level=args.focal_level)

    def attention_factory(dim):
        return attention.MultiHeadSelfAttention(dim, num_heads=heads)

    load_before = _load_average()
    start = time.perf_counter()
    focal_parts, attention_parts, rows = [], [], []
    for n in tokens:
        if time.perf_counter() - start > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s used up; stopping before N = {n}")
            break
        repeats = args.repeats if n <= 4096 else max(1, min(args.repeats, 3))
        side = int(round(n ** 0.5))
        row = {"tokens": n, "grid": [side, side], "width": width}
        focal = _measure_one(focal_factory, n, width, repeats, "focal modulation")
        focal_parts.append(focal)
        row.update(focal_ms=1e3 * float(focal.seconds[0]), focal_memory_bytes=int(focal.largest_bytes[0]),
                   focal_largest_tensor=list(focal.largest_shapes[0]))
        if n <= args.max_attention_tokens:
            attn = _measure_one(attention_factory, n, width, repeats, "self-attention")
            attention_parts.append(attn)
            row.update(attention_ms=1e3 * float(attn.seconds[0]),
                       attention_memory_bytes=int(attn.largest_bytes[0]),
                       attention_largest_tensor=list(attn.largest_shapes[0]))
        else:
            row.update(attention_ms=None, attention_memory_bytes=None, attention_largest_tensor=None)
        row["focal_macs"] = receptive.modulation_cost(width, side, side, args.focal_level, args.focal_window)["macs"]
        row["attention_macs"] = receptive.attention_cost(width, side, side)["macs"]
        row["repeats"] = repeats
        rows.append(row)
        attn_text = (f"attention {row['attention_ms']:9.2f} ms {row['attention_memory_bytes'] / 2**20:9.2f} MiB"
                     if row["attention_ms"] is not None else "attention  (skipped)")
        print(f"N = {n:6d}: focal {row['focal_ms']:8.2f} ms {row['focal_memory_bytes'] / 2**20:8.2f} MiB | "
              f"{attn_text}  [{time.perf_counter() - start:5.0f} s]", flush=True)
    seconds = time.perf_counter() - start

    focal_cost = _join(focal_parts, "focal modulation", width)
    attention_cost = _join(attention_parts, f"self-attention ({heads} heads)", width)
    both = [r for r in rows if r["attention_ms"] is not None]
    largest = both[-1] if both else None
    slopes = {
        "fitted_on_tokens_at_least": args.fit_from,
        "focal_time": _slope(focal_cost.tokens, focal_cost.seconds, args.fit_from),
        "attention_time": _slope(attention_cost.tokens, attention_cost.seconds, args.fit_from),
        "focal_memory": _slope(focal_cost.tokens, focal_cost.largest_bytes, args.fit_from),
        "attention_memory": _slope(attention_cost.tokens, attention_cost.largest_bytes, args.fit_from),
    }
    record = {
        "benchmark": NAME,
        "width": width,
        "batch": 1,
        "attention_heads": heads,
        "focal_level": args.focal_level,
        "focal_window": args.focal_window,
        "focal_kernel_sizes": receptive.kernel_sizes(args.focal_level, args.focal_window),
        "params": {
            "focal": receptive.modulation_cost(width, 1, 1, args.focal_level, args.focal_window)["params"],
            "attention": receptive.attention_cost(width, 1, 1)["params"],
        },
        "results": rows,
        "slopes": slopes,
        "largest_common_tokens": largest["tokens"] if largest else None,
        "ratio_time": largest["attention_ms"] / largest["focal_ms"] if largest else None,
        "ratio_memory": largest["attention_memory_bytes"] / largest["focal_memory_bytes"] if largest else None,
        "ratio_meaning": "attention / focal modulation at the largest token count where both were measured",
        "memory_meaning": "bytes of the largest tensor the forward pass computes from its input (traced graph): "
                          "a lower bound on the pass's peak memory; for attention it is the B*heads*N*N score matrix",
        "time_meaning": "median wall-clock ms of a compiled forward pass (tf.function), batch 1, after one warm-up",
        "backend": focal_cost.backend,
        "seconds": seconds,
        "smoke": bool(args.smoke),
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "notes": "one run on a 2-core CPU shared with other jobs (see load averages): timings are noisy, "
                 "compare slopes and ratios rather than absolute numbers",
        **training.run_info(shlex.join(["python", os.path.relpath(__file__, ROOT), *(sys.argv[1:] if argv is None else argv)])),
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix=f"focaledu-{NAME}-")) if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{NAME}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, [attention_cost, focal_cost], out / f"{NAME}.png")
    if largest:
        print(f"slopes (N >= {args.fit_from}): time focal {slopes['focal_time']}, attention {slopes['attention_time']}; "
              f"at N = {largest['tokens']} attention/focal time x{record['ratio_time']:.1f}, "
              f"memory x{record['ratio_memory']:.1f}")
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
