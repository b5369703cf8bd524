"""The CPU benches the docs quote, run small, so that a change of an interface they call cannot leave them
broken (bench_batch's progress callback and bench_load's two-patient "exam" did, unnoticed). Their figures
are not checked: speed is measured by hand, never asserted."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import require_shared
from tests.helpers import run_isolated

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_load_runs_through():
    require_shared()
    done = run_isolated([str(BENCH / "bench_load.py"), "--runs", "1"], timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "4-view PNG exam:" in done.stdout and done.stdout.count("1-view CBIS-DDSM RLE exam") == 2


def test_bench_batch_runs_through_on_the_local_engine():
    require_shared()
    done = run_isolated([str(BENCH / "bench_batch.py"), "--exams", "2", "--shape", "400x300", "--no-ray"],
                        timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "exams/min" in done.stdout and "local, 1 thread" in done.stdout
