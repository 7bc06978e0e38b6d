"""Chapter 10's ablations: variants of ``focalnet_cifar_tiny`` (:data:`VARIANTS`) trained and compared on CIFAR-10.

``benchmarks/ablations.py`` runs every variant with :func:`run_variant`; :func:`load_results`,
:func:`results_table` and :func:`plot_results` read the results back.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from focaledu.records import load_result

__all__ = [
    "BENCHMARK_RECIPE",
    "PRESET",
    "VARIANTS",
    "Variant",
    "benchmark_recipe",
    "build_variant",
    "data_label",
    "load_results",
    "matched_mlp_ratio",
    "merge_run",
    "model_config",
    "parameter_counts",
    "plot_differences",
    "plot_results",
    "results_table",
    "standard_error",
    "run_variant",
    "summarize",
    "variant",
    "z_score",
]

PRESET = "focalnet_cifar_tiny"


@dataclass(frozen=True)
class Variant:
    """One ablation: ``PRESET`` with ``overrides`` passed to ``AblatedFocalNet``."""

    name: str
    description: str
    overrides: dict = field(default_factory=dict)
    group: str = "baseline"


VARIANTS: tuple[Variant, ...] = (
    Variant("baseline", "focalnet_cifar_tiny as defined: L = 2 (kernels 3, 5), learned gates, "
                        "global context, pre-norm"),
    Variant("levels_1", "1 focal level (kernel 3) + global", {"focal_levels": [1, 1, 1]}, "focal levels"),
    Variant("levels_3", "3 focal levels (kernels 3, 5, 7) + global", {"focal_levels": [3, 3, 3]}, "focal levels"),
    Variant("levels_4", "4 focal levels (kernels 3, 5, 7, 9) + global", {"focal_levels": [4, 4, 4]},
            "focal levels"),
    Variant("uniform_gates", "no gating: every level (global included) weighted by 1", {"gating": False},
            "aggregation"),
    Variant("no_global", "no global-context level (only the 2 local levels)", {"global_context": False},
            "aggregation"),
    Variant("no_prenorm", "no LayerNorm before the token mixer (as the keras.io tutorial)", {"pre_norm": False},
            "block"),
    # mlp_ratio: matched_mlp_ratio(...) to the baseline's 2,280,540 parameters (tests/test_ablations.py).
    Variant("attention", "self-attention over each stage's tokens (head width 32, relative position bias); "
                         "MLP widened to the baseline's parameters",
            {"mixer": "attention", "mlp_ratio": 4.09375}, "mixer"),
    Variant("dwconv", "depthwise convolutions only (expand x2, kernels 3, 5 with GELU, project; no gates, "
                      "no modulation); MLP narrowed to the baseline's parameters",
            {"mixer": "dwconv", "mlp_ratio": 3.921875}, "mixer"),
    Variant("window", "Swin window attention, 4x4 windows (stage 0: four windows, shifted by 2 in every second "
                      "block; stages 1-2 fit in one window), head width 32, relative position bias; MLP widened "
                      "to the baseline's parameters",
            {"mixer": "window", "window_size": 4, "mlp_ratio": 4.09375}, "mixer"),
)

_BY_NAME = {v.name: v for v in VARIANTS}

#: The benchmark's budget, as overrides of the ``full`` recipe (AdamW 2e-3,
#: warm-up + cosine, crop + flip, label smoothing 0.1, batch 128): 2 epochs on
#: the first 4,000 training images of each class (36,000 trained on, 4,000
#: held out for validation), the full 10,000-image test set, a half-epoch
#: warm-up and no monitor figures. See ``benchmarks/ablations.py`` for the
#: time this takes.
BENCHMARK_RECIPE = dict(epochs=2, train_per_class=4000, warmup_epochs=0.5, monitor_every=0)


def variant(name: str) -> Variant:
    """The :class:`Variant` called ``name``."""
    if name not in _BY_NAME:
        raise ValueError(f"Unknown ablation `name` {name!r}. Accepted values: {', '.join(_BY_NAME)}.")
    return _BY_NAME[name]


def model_config(name: str, **extra) -> dict:
    """``AblatedFocalNet`` constructor arguments of variant ``name`` (``extra`` overrides them)."""
    from focaledu.model import preset_config

    return preset_config(PRESET, **{**copy.deepcopy(variant(name).overrides), **extra})


def build_variant(name: str, **extra):
    """``AblatedFocalNet`` of variant ``name`` (``extra`` overrides, e.g. ``num_classes``)."""
    from focaledu.ablation_layers import AblatedFocalNet

    return AblatedFocalNet(**model_config(name, **extra))


def parameter_counts(names=None) -> dict[str, int]:
    """``{variant: parameters}`` of the built models (all variants by default)."""
    return {name: int(build_variant(name).count_params()) for name in (names or [v.name for v in VARIANTS])}


def matched_mlp_ratio(overrides: dict, target: int, step: float = 1 / 64, span: float = 1.0,
                      preset: str = PRESET) -> float:
    """The ``mlp_ratio`` that brings ``preset`` with ``overrides`` closest to ``target`` parameters.

    Scans ``mlp_ratio +- span`` in steps of ``step`` from the parameter count of one built model.
    """
    from focaledu.ablation_layers import AblatedFocalNet
    from focaledu.model import preset_config

    config = preset_config(preset, **overrides)
    built = AblatedFocalNet(**config).count_params()
    ratio0 = float(config.get("mlp_ratio", 4.0))
    dims = [config["embed_dim"] * 2**i for i, depth in enumerate(config["depths"]) for _ in range(depth)]

    def params(ratio):
        return built + sum((2 * d + 1) * (int(d * ratio) - int(d * ratio0)) for d in dims)

    candidates = ratio0 + step * np.arange(-round(span / step), round(span / step) + 1)
    candidates = [float(r) for r in candidates if r > 0]
    return min(candidates, key=lambda r: (abs(params(r) - target), abs(r - ratio0)))


def benchmark_recipe(**overrides):
    """The ``full`` recipe with :data:`BENCHMARK_RECIPE` and ``overrides`` applied."""
    from focaledu import training

    return training.recipe("full", **{**BENCHMARK_RECIPE, **overrides})


def data_label(source_label: str) -> str:
    """A short caption for a dataset's ``source_label``: ``"CIFAR-10, JPEG mirror"``, or the synthetic label."""
    if "JPEG mirror" in source_label:
        return "CIFAR-10, JPEG mirror"
    return source_label


def run_variant(name: str, data=None, out_dir=None, *, profile="quick", epochs=None, seed: int = 0,
                verbose=2, command: str | None = None, model_overrides: dict | None = None,
                **recipe_overrides) -> dict:
    """Trains variant ``name`` with ``focaledu.training.fit`` and returns its run record.

    Args:
        name: a :data:`VARIANTS` name.
        data, out_dir, profile, epochs, seed, verbose, command, recipe_overrides: as ``training.fit``.
        model_overrides: applied after the variant's own (e.g. a tiny width for smoke tests).

    Returns:
        A JSON-ready dict: the variant, its parameters, test accuracy and loss, timings, settings,
        history and provenance (``command``, ``machine``, ``versions``, ``date``).
    """
    from focaledu import training
    from focaledu.ablation_layers import AblatedFocalNet

    chosen = variant(name)
    overrides = {**copy.deepcopy(chosen.overrides), **(model_overrides or {})}
    if command is None:
        command = f"focaledu.ablations.run_variant({name!r}, seed={seed})"
    start = time.perf_counter()
    result = training.fit(PRESET, data, out_dir, profile=profile, epochs=epochs, seed=seed, verbose=verbose,
                          command=command, model_overrides=overrides, model_class=AblatedFocalNet,
                          **recipe_overrides)
    seconds = time.perf_counter() - start
    m = result.metrics
    recipe = m["recipe"]
    fit_images = m["steps_per_epoch"] * recipe["batch_size"]
    return {
        "variant": name,
        "description": chosen.description,
        "group": chosen.group,
        "seed": seed,
        "model_overrides": overrides,
        "parameters": m["parameters"],
        "test_accuracy": m["test_accuracy"],
        "test_loss": m["test_loss"],
        "test_images": m["test_images"],
        "best_val_accuracy": m["best_val_accuracy"],
        "train_seconds": m["train_seconds"],
        "seconds": seconds,
        "images_per_second": fit_images * m["epochs"] / m["train_seconds"],
        "settings": {
            "epochs": m["epochs"],
            "train_images": m["data"]["train_images"],
            "images_per_epoch": fit_images,
            "steps_per_epoch": m["steps_per_epoch"],
            "batch_size": recipe["batch_size"],
            "learning_rate": recipe["learning_rate"],
            "warmup_steps": m["warmup_steps"],
            "decay_steps": m["decay_steps"],
            "jit_compile": m["jit_compile"],
            "recipe": recipe,
        },
        "data": {k: m["data"][k] for k in ("source_label", "train_images", "test_images")},
        "history": {k: v for k, v in result.history.items() if k != "epoch"},
        "command": m["command"],
        "machine": m["machine"],
        "versions": m["versions"],
        "date": m["date"],
    }


# --------------------------------------------------------------------------
# Results file
# --------------------------------------------------------------------------


def merge_run(path, record: dict, header: dict | None = None) -> dict:
    """Adds ``record`` to the results file at ``path`` and returns the file's content.

    A run of the same variant and seed is replaced.

    ``header`` replaces the file's top-level fields; the file is written atomically.
    """
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(header or {})
    runs = [r for r in results.get("runs", []) if (r["variant"], r["seed"]) != (record["variant"], record["seed"])]
    runs.append(record)
    order = {v.name: i for i, v in enumerate(VARIANTS)}
    results["runs"] = sorted(runs, key=lambda r: (order.get(r["variant"], len(order)), r["seed"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return results


def load_results(path=None, name="ablations") -> dict | None:
    """The ablation runs in ``path`` (None if it does not exist), else the packaged result ``name``."""
    if path is None:
        return load_result(name)
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def summarize(results: dict) -> list[dict]:
    """One row per variant (in :data:`VARIANTS` order): means over seeds, ``delta`` to the baseline and its ``z``."""
    by_variant: dict[str, list[dict]] = {}
    for run in results.get("runs", []):
        by_variant.setdefault(run["variant"], []).append(run)
    order = [v.name for v in VARIANTS] + sorted(set(by_variant) - set(_BY_NAME))
    rows = []
    for name in order:
        runs = by_variant.get(name)
        if not runs:
            continue
        acc = np.array([r["test_accuracy"] for r in runs])
        rows.append({
            "variant": name,
            "description": runs[0]["description"],
            "parameters": runs[0]["parameters"],
            "seeds": [r["seed"] for r in runs],
            "test_accuracy": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
            "images_per_second": float(np.mean([r["images_per_second"] for r in runs])),
            "epochs": runs[0]["settings"]["epochs"],
            "train_images": runs[0]["settings"]["images_per_epoch"],
            "test_images": runs[0]["test_images"],
            "source_label": runs[0]["data"]["source_label"],
        })
    base = next((r["test_accuracy"] for r in rows if r["variant"] == "baseline"), None)
    for row in rows:
        row["delta"] = None if base is None else row["test_accuracy"] - base
        compare = base is not None and row["variant"] != "baseline"
        row["z"] = z_score(row["test_accuracy"], base, row["test_images"]) if compare else None
    return rows


def standard_error(acc_a, acc_b, n):
    """Standard error of ``acc_a - acc_b``, two accuracies on ``n`` images each (test-set noise only)."""
    return math.sqrt(acc_a * (1 - acc_a) / n + acc_b * (1 - acc_b) / n)


def z_score(acc_a, acc_b, n):
    """The difference ``acc_a - acc_b`` over its :func:`standard_error`; 0 for equal accuracies."""
    if acc_a == acc_b:
        return 0.0
    return (acc_a - acc_b) / standard_error(acc_a, acc_b, n)


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def results_table(results: dict) -> str:
    """A plain-text table of :func:`summarize`, with each run's settings."""
    rows = summarize(results)
    lines = [f"{'variant':14s} {'parameters':>10s} {'epochs':>6s} {'imgs/ep':>7s} {'runs':>4s} "
             f"{'test acc':>8s} {'vs base':>8s} {'z':>6s} {'train s':>8s} {'img/s':>6s}"]
    for r in rows:
        delta = "" if r["z"] is None else f"{100 * r['delta']:+5.1f} pt"
        z = "" if r["z"] is None else f"{r['z']:+.1f}"
        acc = f"{100 * r['test_accuracy']:.1f}%"
        if len(r["seeds"]) > 1:
            acc += f" +-{100 * r['test_accuracy_std']:.1f}"
        lines.append(f"{r['variant']:14s} {r['parameters']:10,d} {r['epochs']:6d} {r['train_images']:7d} "
                     f"{len(r['seeds']):4d} {acc:>8s} {delta:>8s} {z:>6s} {r['train_seconds']:8.0f} "
                     f"{r['images_per_second']:6.0f}")
    return "\n".join(lines)


def plot_differences(results: dict, ax=None):
    """Each variant's test accuracy minus the baseline's, in points, with a two-standard-error band."""
    import matplotlib.pyplot as plt

    rows = [r for r in summarize(results) if r["z"] is not None]
    if not rows:
        raise ValueError("`results` holds no baseline run and other variant to compare with it.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    else:
        fig = ax.figure
    base = rows[0]["test_accuracy"] - rows[0]["delta"]
    two_se = 200 * math.sqrt(2 * base * (1 - base) / rows[0]["test_images"])
    deltas = [100 * r["delta"] for r in rows]
    ax.axhspan(-two_se, two_se, color="0.85", label="± 2 standard errors (test-set noise)")
    bars = ax.bar([r["variant"] for r in rows], deltas, color=["C3" if abs(r["z"]) >= 2 else "C0" for r in rows])
    ax.bar_label(bars, fmt="%+.1f", fontsize=8, padding=2)
    ax.axhline(0, color="0.35", linewidth=1)
    runs = sorted({len(r["seeds"]) for r in rows})
    ax.set(ylabel="test accuracy minus baseline (points)", ylim=(min(deltas + [-two_se]) - 2, max(deltas + [two_se]) + 2),
           title=f"difference to the baseline ({100 * base:.1f} %), {'/'.join(map(str, runs))} run(s) per variant")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_results(results: dict, ax=None, title: str | None = None):
    """Bar chart of the test accuracy per variant, the baseline's as a dashed line. Returns the figure."""
    import matplotlib.pyplot as plt

    rows = summarize(results)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    else:
        fig = ax.figure
    groups = {v.name: v.group for v in VARIANTS}
    palette = {"baseline": "0.35", "focal levels": "C0", "aggregation": "C1", "block": "C2", "mixer": "C3"}
    names = [r["variant"] for r in rows]
    acc = np.array([100 * r["test_accuracy"] for r in rows])
    err = np.array([100 * r["test_accuracy_std"] for r in rows])
    colors = [palette.get(groups.get(n), "C7") for n in names]
    bars = ax.bar(names, acc, color=colors, yerr=err if err.any() else None, capsize=3)
    for bar, value in zip(bars, acc):
        ax.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    base = next((100 * r["test_accuracy"] for r in rows if r["variant"] == "baseline"), None)
    if base is not None:
        ax.axhline(base, color="0.35", linestyle="--", linewidth=1)
    ax.set_ylim(0.0, min(100.0, float(acc.max() + err.max()) + 8) if len(acc) else 100.0)
    ax.set_ylabel("test accuracy (%)")
    ax.tick_params(axis="x", rotation=30)
    if title is None and rows:
        r = rows[0]
        seeds = sorted({len(x["seeds"]) for x in rows})
        title = (f"{data_label(r['source_label'])}: {_plural(r['epochs'], 'epoch')} on {r['train_images']:,} "
                 f"training images, {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''} per variant")
    if title:
        ax.set_title(title, fontsize=9)
    return fig
