"""Smoke test of `benchmarks/`: the baseline script, the ideal bound and the result file work.

A tiny table against an in-process emulator with fast, scaled-down limits; our side runs as the
benchmark's child process in its Prefect-free mode, so no Prefect server is needed. Nothing here
looks at timings: the machine that runs the tests is not the one the figures are about.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `benchmarks/` is scripts beside the package, not part of it: import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import baseline
from benchmarks.common import Limits, ideal_seconds, write_table
from benchmarks.run import REQUIRED_KEYS, Setup, measure_main, measure_memory, report
from prefect_nanobanana.emulator import EmulatorServer

# Small and fast, but with every mechanism of the real benchmark: a burst smaller than the table
# (so the rate limit is reached), task latency, and a poll schedule.
LIMITS = Limits(
    submit_rate=50.0,
    submit_burst=4,
    query_rate=200.0,
    query_burst=400,
    latency=0.3,
    latency_spread=0.1,
    poll_first=0.15,
    poll_min=0.1,
    poll_max=0.2,
)


@pytest.fixture()
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(seed=7, **LIMITS.emulator_config()) as emu:
        yield emu


def test_ideal_bound_is_burst_then_rate_plus_latency_and_one_download() -> None:
    limits = Limits()
    assert ideal_seconds(400, limits, 0.05) == pytest.approx(200 / 20 + 2.5 + 0.05)
    assert ideal_seconds(100, limits, 0.0) == pytest.approx(2.5)  # within the burst: no waiting


def test_baseline_script_generates_every_row(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_table(tmp_path / "t.csv", 6, "smoke")
    code = baseline.main(
        [
            "--base-url", emulator.url, "--api-key", "smoke-key", "--table", str(table),
            "--out", str(tmp_path / "out"), "--concurrency", "8", "--first-poll", "0.15",
            "--min-interval", "0.1", "--max-interval", "0.2",
        ]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert result["succeeded"] == 6 and result["failed"] == 0
    assert len(result["finished_at"]) == 6
    assert len(list((tmp_path / "out").glob("*.png"))) == 6
    assert emulator.ledger()["paid"] == 6  # once per row, rate limited or not


def test_benchmark_produces_every_result_key(emulator: EmulatorServer, tmp_path: Path) -> None:
    setup = Setup(emulator.url, emulator, dict(os.environ), tmp_path, LIMITS, concurrency=8, ours_mode="cli")
    results = measure_main(setup, 8)
    results.update(measure_memory(setup, 2))
    report(results, LIMITS, tmp_path / "results")

    saved = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert set(REQUIRED_KEYS) | {"peak_rss_mb_4k"} <= saved.keys()
    assert saved["rows"] == 8
    assert saved["paid_per_row"] == 1.0
    assert saved["rerun_paid"] == 0
    assert len(saved["timeline"]["ours"]) == 8 and len(saved["timeline"]["baseline"]) == 8
    assert all(isinstance(t["pass"], bool) for t in saved["targets"].values())
    assert (tmp_path / "results" / "latest.png").stat().st_size > 0
