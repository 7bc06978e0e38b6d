"""The cost benchmark (``benchmarks/modulation_vs_attention.py``) and Chapter 9's checks.

The benchmark runs in ``--smoke`` mode (tiny sizes, seconds, a temporary
directory); its timings are never asserted, only the shape of the results file.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from focaledu import checks, cost, receptive

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "modulation_vs_attention.py"
RESULT = ROOT / "benchmarks" / "results" / "modulation_vs_attention.json"


def _load_script():
    spec = importlib.util.spec_from_file_location("modulation_vs_attention", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_record(record):
    for key in ("results", "headline", "slopes", "command", "machine", "versions", "date", "load_average_before",
                "width", "window_size", "ratio_time", "ratio_memory", "ratio_window_time", "notes", "peak_meaning"):
        assert key in record, key
    assert "shared" in record["notes"]
    assert "load_average_1min" in record["machine"]
    rows = record["results"]
    tokens = [r["tokens"] for r in rows]
    assert tokens == sorted(tokens) and len(tokens) >= 3
    heads, window, width = record["attention_heads"], record["window_size"], record["width"]
    for row in rows:
        assert row["width"] == width
        assert row["focal_ms"] > 0 and row["focal_memory_bytes"] > 0
        if row["attention_ms"] is not None:
            assert row["attention_ms"] > 0 and row["attention_memory_bytes"] > 0
            # Once heads * N >= C the largest tensor of attention is the (B, heads, N, N) score matrix.
            if heads * row["tokens"] >= width:
                assert row["attention_memory_bytes"] == 4 * heads * row["tokens"] ** 2
        if row["window_ms"] is not None:
            side = row["grid"][0]
            assert row["window_ms"] > 0
            assert row["window_macs"] == cost.window_attention_cost(width, side, side, window, heads)["macs"]
            # Window attention's score tensor, (B, windows, heads, M^2, M^2), is B * heads * N * M^2 values;
            # the (B, N, 3C) output of qkv is larger when heads * M^2 < 3C.
            m2 = min(window, side) ** 2
            assert row["window_memory_bytes"] == 4 * row["tokens"] * max(heads * m2, 3 * width)
    assert record["slopes"]["attention_memory"] == pytest.approx(2.0, abs=1e-6)
    assert record["slopes"]["focal_memory"] == pytest.approx(1.0, abs=0.05)
    assert record["slopes"]["window_memory"] == pytest.approx(1.0, abs=0.05)
    assert record["headline"] and all(r["tokens"] in tokens for r in record["headline"])


def test_smoke_run_writes_json_and_png(tmp_path):
    record = _load_script().main(["--smoke", "--out", str(tmp_path)])
    assert record["smoke"] is True
    written = json.loads((tmp_path / "modulation_vs_attention.json").read_text())
    _check_record(written)
    assert (tmp_path / "modulation_vs_attention.png").stat().st_size > 1000


def test_committed_results_are_complete():
    if not RESULT.exists():
        pytest.skip("benchmarks/results/modulation_vs_attention.json not committed yet")
    record = json.loads(RESULT.read_text())
    _check_record(record)
    assert record["smoke"] is False
    tokens = [r["tokens"] for r in record["results"]]
    assert tokens[0] <= 64 and tokens[-1] >= 4096
    assert RESULT.with_suffix(".png").exists()


# --- Chapter 9's checks: the reference passes, each recognised mistake is named ---------------


def _attention(c, n):
    return 4 * n * c * c + 2 * n * n * c


def _modulation(c, n, level, window, factor):
    return receptive.modulation_cost(c, n, 1, level, window, factor)["macs"]


def _crossover(c, level, window, factor):
    per_token = _modulation(c, 1, level, window, factor)
    return max(1, (per_token - 4 * c * c) // (2 * c) + 1)


def _slope(n, cost):
    return np.polyfit(np.log(n), np.log(cost), 1)[0]


@pytest.mark.parametrize("check, solution", [
    (checks.attention_macs, _attention),
    (checks.modulation_macs, _modulation),
    (checks.crossover_tokens, _crossover),
    (checks.power_law_slope, _slope),
], ids=["attention_macs", "modulation_macs", "crossover_tokens", "power_law_slope"])
def test_reference_solutions_pass(check, solution):
    result = check(solution)
    assert result, result


@pytest.mark.parametrize("name", ["attention_macs", "modulation_macs", "crossover_tokens", "power_law_slope"])
def test_every_mistake_is_recognised(name):
    from focaledu.checks import cost

    mistakes = {
        "attention_macs": cost._ATTN_MISTAKES,
        "modulation_macs": cost._MOD_MISTAKES,
        "crossover_tokens": cost._CROSS_MISTAKES,
        "power_law_slope": cost._SLOPE_MISTAKES,
    }[name]
    messages = [message for message, _ in mistakes]
    for message, wrong in mistakes:
        result = getattr(checks, name)(wrong)
        assert not result
        # Some mistakes coincide on an input (e.g. ">=" and "one token early" when the
        # costs tie); then an earlier message is named, never a bare "values differ".
        named = [m for m in messages if m in result.message]
        assert named and messages.index(named[0]) <= messages.index(message), (message, result.message)


def test_crossover_does_not_depend_on_width():
    # 2 N^2 C + 4 N C^2 > N * per_token  <=>  N > (2L + 3 + sum k_l^2) / 2, whatever C.
    assert {_crossover(c, 3, 3, 2) for c in (32, 96, 768)} == {47}
    assert checks.cost._crossover(96, 2, 3, 2) == 21


def test_unfinished_exercise_is_reported():
    def todo(*args):
        raise NotImplementedError("count the projections first")

    result = checks.crossover_tokens(todo)
    assert not result and "not implemented" in result.message


# --- Chapter 9's window-attention checks ------------------------------------------------------


def _window(c, h, w, m):
    side = min(m, h, w) if max(h, w) > m else None
    window = (h * w) if side is None else m * m
    return 4 * h * w * c * c + 2 * h * w * window * c


def test_window_attention_macs_check_accepts_the_reference_and_names_each_mistake():
    from focaledu.checks import cost as cost_checks

    assert cost_checks.window_attention_macs(_window)
    messages = [message for message, _ in cost_checks._WINDOW_MISTAKES]
    for message, wrong in cost_checks._WINDOW_MISTAKES:
        result = cost_checks.window_attention_macs(wrong)
        assert not result and message in result.message, (message, result.message)
    assert len(set(messages)) == len(messages)


def test_window_prediction_check():
    from focaledu.checks import cost as cost_checks

    # (4 * 96 + 2 * 3969) / (4 * 96 + 2 * 49) = 8322 / 482
    assert cost_checks.window_prediction(49, 17.3)
    assert cost_checks.window_prediction(49, 8322 / 482 * 1.08)
    assert "side of the window" in cost_checks.window_prediction(7, 17.3).message
    assert "up to 7 x 7 = 49 tokens" in cost_checks.window_prediction(3969, 17.3).message
    assert "pairwise" in cost_checks.window_prediction(49, 81).message
    assert "(4 C + 2 N) / (4 C + 2 M^2)" in cost_checks.window_prediction(49, 2.0).message
    assert "make your prediction first" in cost_checks.window_prediction(..., 17.3).message
    assert "must be a number" in cost_checks.window_prediction(49, "17").message
