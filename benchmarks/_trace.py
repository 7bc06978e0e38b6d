"""Sums a JAX profiler trace (Perfetto / Chrome trace-event JSON) by XLA operation.

Used by ``gpu_step_profile.py``; plain functions on the parsed JSON, so they
are tested on hand-written traces without a GPU.
"""

import collections
import re

#: First match wins, on the HLO name (or a custom call's target, e.g. cuDNN's
#: ``__cudnn$convForward``); XLA CPU thunk names in smoke mode.
CATEGORIES = (
    ("convolution", re.compile(r"conv(?!ert)", re.IGNORECASE)),
    ("matmul", re.compile(r"dot|gemm|cublas|matmul", re.IGNORECASE)),
    ("copy/transpose", re.compile(r"copy|transpose", re.IGNORECASE)),
    ("reduce", re.compile(r"reduce", re.IGNORECASE)),
    ("fusion", re.compile(r"fusion", re.IGNORECASE)),
)


def category(name: str) -> str:
    return next((label for label, pattern in CATEGORIES if pattern.search(name)), "other")


def device_events(trace: dict) -> list[dict]:
    """Complete events of the device's XLA operations: the "XLA Ops" line of a
    GPU/TPU process, else its kernel streams, else every event on that device;
    without a GPU/TPU process (a CPU-only run), the XLA CPU client's threads."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
    devices = {pid for pid, name in processes.items() if re.search(r"/device:(GPU|TPU)", name)}
    if devices:
        on_device = [(threads.get((e["pid"], e.get("tid")), ""), e) for e in complete if e["pid"] in devices]
        ops = [e for line, e in on_device if line == "XLA Ops"]
        # Without that line, the kernels on the streams ("XLA Modules" would count whole steps).
        return ops or [e for line, e in on_device if line.startswith("Stream")] or [e for _, e in on_device]
    return [e for e in complete if threads.get((e["pid"], e.get("tid")), "").startswith("tf_XLA")
            and not e["name"].startswith(("ThreadpoolListener", "ThunkExecutor", "end: "))]


def busy_microseconds(events: list[dict]) -> float:
    """Length of the union of the events' intervals (overlapping streams count once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted((e["ts"], e["ts"] + e["dur"]) for e in events):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def op_label(event: dict) -> str:
    """The HLO name, with the target of a custom call (which names the cuDNN or cuBLAS routine)."""
    target = re.search(r'custom_call_target="([^"]+)"', str(event.get("args", {}).get("long_name", "")))
    return f"{event['name']} {target.group(1)}" if target else event["name"]


def summarize(events: list[dict], steps: int, top: int = 20) -> dict:
    by_op = collections.Counter()
    for e in events:
        by_op[op_label(e)] += e["dur"]
    categories = collections.Counter()
    for label, us in by_op.items():
        categories[category(label)] += us
    ms = 1e-3 / steps
    return {
        "device_busy_ms": busy_microseconds(events) * ms,
        "device_op_ms": sum(by_op.values()) * ms,
        "categories": {k: v * ms for k, v in categories.most_common()},
        "ops": [{"name": label, "category": category(label), "ms": us * ms} for label, us in by_op.most_common(top)],
    }
