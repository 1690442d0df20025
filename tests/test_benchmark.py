"""The benchmark's quick mode runs with the suite, so that it cannot rot.

It asserts that every part ran and wrote what it should: figures, ratios, targets, the
chart. It asserts nothing about speed (that is what the full run is for, side by side).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DELIVERY = ("dispatcher-delivery (sqlite, WORKER_CONCURRENCY=64, HTTP_MAX_CONNECTIONS=64, "
            "MAX_IN_FLIGHT_PER_SUBSCRIPTION=64)")
ONE_PROCESS = "serve-one-process (sqlite, WORKER_PROCESSES=0)"
EXPECTED = {
    "bare-httpx", "bare-aiohttp", "httpx-over-aiohttp", DELIVERY,
    "bare-fastapi", "dispatcher-ingest (sqlite)", "ingest-with-key (sqlite)",
    "ingest-without-key (sqlite)", "ingest-validated (sqlite)", "ingest-unvalidated (sqlite)",
    "latency (sqlite)", "fan-out (sqlite)",
    "backlog-empty (sqlite)", "backlog-1m (sqlite)",
    "tenant-less-ingest (sqlite)", "tenant-ingest (sqlite)",
    "busy-subscription (sqlite)", "spread-subscriptions (sqlite)",
    "ingest-filtered (sqlite)", "ingest-unfiltered (sqlite)", "ordered-subscription (sqlite)",
    "slow-receivers-200ms (sqlite)",
    "healthy-alone (sqlite)", "healthy-with-5-dead (sqlite)",
    "calm p99 (sqlite)", "storm p99 (sqlite)",
    "serve-default (sqlite)", ONE_PROCESS,
}


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # see conftest.py
def test_quick_benchmark_runs_every_part(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "benchmark.json").read_text())
    names = {r["name"] for r in report["results"]}
    assert EXPECTED <= names, f"missing: {EXPECTED - names}"
    for r in report["results"]:
        assert r["n"] > 0 and r["seconds"] > 0 and r["per_second"] > 0, r
    by_name = {r["name"]: r for r in report["results"]}
    latency = by_name["latency (sqlite)"]["extra"]
    assert latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert by_name["backlog-1m (sqlite)"]["extra"]["peak_rss_mb"] > 0
    tenants = by_name["tenant-ingest (sqlite)"]["extra"]
    assert tenants["tenants"] == 1_000 and tenants["rounds"] == 3
    assert len(tenants["round_rates"]) == 3 and tenants["vs_tenant_less"] > 0
    # Issue 16's scenarios did what they say.
    assert by_name["busy-subscription (sqlite)"]["extra"]["subscriptions"] == 1
    assert by_name["spread-subscriptions (sqlite)"]["extra"]["subscriptions"] == 100
    slow = by_name["slow-receivers-200ms (sqlite)"]["extra"]
    pool = Settings.model_fields["http_max_connections"].default
    assert slow["peak_rss_mb"] > 0 and 0 < slow["receiver_connections_peak"] <= pool
    # at most one answer per connection each 200 ms: the receiver did wait
    assert by_name["slow-receivers-200ms (sqlite)"]["per_second"] <= \
        slow["receiver_connections_peak"] / 0.2 * 1.1
    dead = by_name["healthy-with-5-dead (sqlite)"]["extra"]
    assert dead["dead_pending"] == 250 and dead["dead_connections_peak"] > 0
    storm = by_name["storm p99 (sqlite)"]["extra"]
    assert storm["storm_deliveries"] == 1_000 and storm["storm_attempts"] > 0
    assert "storm_attempts" not in by_name["calm p99 (sqlite)"]["extra"]
    assert by_name[ONE_PROCESS]["extra"]["processes"] == 1
    # Issue 17's: both kinds fan out to the same subscriptions; the ordered one is ordered.
    assert by_name["ingest-filtered (sqlite)"]["extra"]["subscriptions"] == 100
    assert by_name["ordered-subscription (sqlite)"]["extra"]["ordered"] is True
    # Every target of the issue is evaluated; on SQLite each one has a figure.
    sqlite_targets = [t for t in report["targets"] if "postgresql" not in t["what"]]
    # issue 17 added one per engine (filters), issue 18 one (schemas)
    assert len(report["targets"]) == 30
    assert all(t["value"] is not None and t["met"] in (True, False) for t in sqlite_targets)
    assert any(f"{DELIVERY} / bare-aiohttp" in r["ratio"] for r in report["ratios"])
    assert report["defaults"]["worker_concurrency"] == \
        Settings.model_fields["worker_concurrency"].default
    assert any("tenant-ingest (sqlite) / tenant-less-ingest (sqlite)" in r["ratio"]
               for r in report["ratios"])
    assert report["machine"]["cores"] >= 1
    png = (tmp_path / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "ratios (per-second rates)" in done.stdout and "targets" in done.stdout
