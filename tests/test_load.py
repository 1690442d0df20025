"""benchmarks/load.py, the load generator of the ingest benchmark: it counts what it was
asked to, and a run with any unexpected answer fails loudly."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from benchmarks.load import SCRIPT, LoadError, percentile, run_load
from benchmarks.receiver import Receiver


def test_a_run_reports_its_figures():
    with Receiver() as port:
        found = asyncio.run(run_load(f"http://127.0.0.1:{port}/hook", 200, 8, expect=200,
                                     body='{"i": {i}}', deadline=60))
    assert (found["n"], found["concurrency"], found["warmup"]) == (200, 8, 8)
    assert found["statuses"] == {"200": 208}  # the warm-up's answers too
    assert found["seconds"] > 0 and found["per_second"] > 0
    assert 0 < found["p50_ms"] <= found["p99_ms"] <= found["max_ms"]


def test_one_unexpected_status_fails_the_run():
    with Receiver() as port, pytest.raises(LoadError, match="were not 202"):
        asyncio.run(run_load(f"http://127.0.0.1:{port}/hook", 20, 4, expect=202, deadline=60))


def test_only_127_0_0_1_may_be_loaded():
    done = subprocess.run(
        [sys.executable, SCRIPT, "--url", "http://example.com/", "--n", "1",
         "--concurrency", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "127.0.0.1" in done.stderr


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) == 0.0
