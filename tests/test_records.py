"""The recorded results ship with the package: a checkout and a wheel both have them."""

import json
from pathlib import Path

import pytest

from focaledu import ablations, records

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def test_every_benchmark_result_is_recorded():
    on_disk = sorted(p.stem for p in RESULTS.glob("*.json"))
    assert on_disk and records.recorded_results() == on_disk
    for name in on_disk:
        assert records.load_result(name) == json.loads((RESULTS / f"{name}.json").read_text())
    assert records.load_result("cifar10_cpu.json") == records.load_result("cifar10_cpu")


def test_unknown_result_names_the_recorded_ones():
    with pytest.raises(FileNotFoundError, match=r"name='nope' is not a recorded result; recorded: .*ablations_15ep"):
        records.load_result("nope")


def test_ablations_reads_the_recorded_runs_or_a_file(tmp_path):
    assert ablations.load_results() == records.load_result("ablations")
    assert ablations.load_results(name="ablations_15ep")["runs"]
    (tmp_path / "mine.json").write_text(json.dumps({"runs": []}))
    assert ablations.load_results(tmp_path / "mine.json") == {"runs": []}


def test_the_wheel_holds_the_results(wheel_files):
    shipped = {Path(n).name: data for n, data in wheel_files.items() if n.startswith("focaledu/_results/")}
    assert sorted(shipped) == sorted(p.name for p in RESULTS.glob("*.json"))
    assert all(shipped[p.name] == p.read_bytes() for p in RESULTS.glob("*.json"))
