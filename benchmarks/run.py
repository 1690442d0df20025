"""The benchmark: one command, every measurement side by side.

    .venv/bin/python -m benchmarks.run [--quick] [--only PARTS] [--engines sqlite,postgresql]
                                       [--n N] [--concurrency C ...] [--out DIR] [--readme]

Parts, in order (``--only`` picks some, comma-separated):

- ``delivery``: ``bare-httpx``, ``bare-aiohttp``, ``httpx-over-aiohttp`` and
  ``dispatcher-delivery`` per engine, at each concurrency (``benchmarks/delivery.py``);
- ``ingest``: ``bare-fastapi``, ``dispatcher-ingest``, ``ingest-without-key``,
  ``ingest-with-key``, ``ingest-unvalidated`` and ``ingest-validated`` per engine
  (``benchmarks/ingest.py``);
- ``filters``: ``ingest-unfiltered`` and ``ingest-filtered`` per engine: events to
  1,000 subscriptions, without filters and with one each that every event matches
  (``benchmarks/ingest.py``);
- ``latency``, ``fanout``, ``backlog`` per engine (``benchmarks/scenarios.py``);
- ``tenants``: ``tenant-less-ingest`` and ``tenant-ingest`` per engine, 100,000 tenants of 3
  subscriptions each (``benchmarks/tenants.py``);
- ``busy``: ``busy-subscription`` and ``spread-subscriptions`` per engine, 20,000 deliveries
  for one subscription or over 1,000 (``benchmarks/sharing.py``);
- ``slow``: ``slow-receivers-200ms`` per engine, 20,000 deliveries over 1,000 subscriptions
  of a receiver answering after 200 ms, with the worker's memory and the connections held;
- ``dead``: ``healthy-alone`` and ``healthy-with-5-dead`` per engine, 10,000 deliveries over
  100 healthy subscriptions, and 5 more whose receiver never answers (500 pending each);
- ``storm``: ``calm p99`` and ``storm p99`` per engine, latency at 200 events/s alone and
  under a retry storm of 5,000 deliveries to 50 subscriptions answering 503
  (``benchmarks/scenarios.py``);
- ``processes``: ``serve-default`` and ``serve-one-process`` (``WORKER_PROCESSES=0``) per
  engine, ``dispatcher serve`` on 40,000 deliveries over 1,000 subscriptions.

Every measurement runs on dispatcher's defaults, but for the settings its name gives
(``dispatcher-delivery`` runs at each concurrency C) and ``DISPATCHER_ALLOW_PRIVATE_TARGETS``
everywhere (the receivers are on 127.0.0.1); ``DISPATCHER_*`` settings in the environment
are left out. Processes log at WARNING (``DISPATCHER_LOG_LEVEL``), as in production.

It prints each figure as it comes, then the ratios and the targets (issues 6, 14 and 16),
and writes
``DIR/benchmark.json`` and ``DIR/throughput.png`` (default ``docs/benchmarks``); with
``--readme`` it also puts the table and the chart into README.md. ``--quick`` makes every
part small (two minutes or so, SQLite only) so that ``make test`` runs it and it cannot rot.
All traffic goes to 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.cli import run_loop
from dispatcher.config import Settings

from . import delivery, ingest, report, scenarios, sharing, tenants
from .common import Result, postgres_problem
from .receiver import Receiver

PARTS = ("delivery", "ingest", "filters", "latency", "fanout", "backlog", "tenants", "busy",
         "ordered", "slow", "dead", "storm", "processes")
ROOT = Path(__file__).resolve().parent.parent


async def measure(args: argparse.Namespace, report_one: Callable[[Result], None]
                  ) -> tuple[list[Result], list[str]]:
    # As a dispatcher process does once started (service.running): what start-up made is
    # kept out of the collector's full passes, for every measurement alike.
    gc.freeze()
    engines = list(args.engines)
    if "postgresql" in engines and (problem := await postgres_problem()):
        print(f"PostgreSQL SKIPPED: it does not answer ({problem})", flush=True)
        engines.remove("postgresql")
    results: list[Result] = []

    def keep(*found: Result) -> None:
        for r in found:
            results.append(r)
            report_one(r)

    if "delivery" in args.only:
        with Receiver() as port:
            url = f"http://127.0.0.1:{port}/hook"
            for c in args.concurrency:
                keep(await delivery.bare_httpx(url, args.n, c))
                keep(await delivery.bare_aiohttp(url, args.n, c))
                keep(await delivery.httpx_over_aiohttp(url, args.n, c))
                for engine in engines:
                    keep(await delivery.dispatcher_delivery(url, args.n, c, engine))
                if c == report.MAIN_CONCURRENCY and not args.quick:
                    # The default transport stays selectable: how the whole path does on it.
                    keep(await delivery.dispatcher_delivery(url, args.n, c, "sqlite", "httpx"))
    if "ingest" in args.only:
        n = args.ingest_n
        keep(await ingest.bare_fastapi(n, args.ingest_concurrency))
        for engine in engines:
            keep(await ingest.dispatcher_ingest(engine, n, args.ingest_concurrency))
            keep(*await ingest.idempotent_ingest(engine, n, args.ingest_concurrency,
                                                 3 if args.quick else 5))
            keep(*await ingest.validated_ingest(engine, n, args.ingest_concurrency,
                                                3 if args.quick else 5))
    if "filters" in args.only:
        for engine in engines:
            keep(*await (ingest.filtered_ingest(engine, 50, args.ingest_concurrency, 3, 100)
                         if args.quick else
                         ingest.filtered_ingest(engine, 200, args.ingest_concurrency, 5)))
    for engine in engines:
        if "latency" in args.only:
            keep(await scenarios.latency(engine, seconds=2.0 if args.quick else 10.0))
        if "fanout" in args.only:
            keep(await scenarios.fanout(engine, 300 if args.quick else 10_000))
        if "backlog" in args.only:
            keep(*await (scenarios.backlog(engine, 20_000, 2_000) if args.quick
                         else scenarios.backlog(engine)))
        if "tenants" in args.only:
            keep(*await tenants.tenant_ingest(
                engine, 1_000 if args.quick else 100_000, args.ingest_n,
                args.ingest_concurrency, 3 if args.quick else 5))
        if "busy" in args.only:
            keep(*await (sharing.busy_and_spread(engine, 1_000, 100) if args.quick
                         else sharing.busy_and_spread(engine)))
        if "ordered" in args.only:
            keep(await sharing.ordered_subscription(engine, 200 if args.quick else 2_000))
        if "slow" in args.only:
            keep(await (sharing.slow_receivers(engine, 1_000, 100) if args.quick
                        else sharing.slow_receivers(engine)))
        if "dead" in args.only:
            keep(*await (sharing.dead_receivers(engine, 1_000, dead_each=50) if args.quick
                         else sharing.dead_receivers(engine)))
        if "storm" in args.only:
            keep(*await (scenarios.storm_latency(engine, 2.0, storm=1_000) if args.quick
                         else scenarios.storm_latency(engine)))
        if "processes" in args.only:
            keep(*await (scenarios.serve_processes(engine, 3_000, 100) if args.quick
                         else scenarios.serve_processes(engine)))
    return results, engines


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small N everywhere, SQLite only: about a minute, for make test")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts: {','.join(PARTS)} (default: all)")
    parser.add_argument("--engines", default=None,
                        help="comma-separated: sqlite,postgresql (default both; sqlite with "
                        "--quick)")
    parser.add_argument("--n", type=int, default=None,
                        help="requests / deliveries per delivery measurement (default 5000; "
                        "500 with --quick)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=None,
                        help="concurrencies of the delivery part (default 1 8 32 64 128; "
                        "16 64 with --quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where benchmark.json and throughput.png go "
                        "(default docs/benchmarks)")
    parser.add_argument("--readme", action="store_true",
                        help="also put the table and chart into README.md")
    args = parser.parse_args(argv)
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    if unknown := set(args.only) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    args.engines = (args.engines or ("sqlite" if args.quick else "sqlite,postgresql")).split(",")
    if unknown := set(args.engines) - {"sqlite", "postgresql"}:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    args.n = args.n or (500 if args.quick else 5000)
    args.concurrency = args.concurrency or ([16, 64] if args.quick else [1, 8, 32, 64, 128])
    args.ingest_n = 300 if args.quick else 3000
    args.ingest_concurrency = 16 if args.quick else 32
    if args.n < 1 or any(c < 1 for c in args.concurrency):
        parser.error("--n and --concurrency must be positive")
    args.out = args.out or ROOT / "docs" / "benchmarks"
    return args


def settings_from_environment() -> list[str]:
    """Remove the ``DISPATCHER_*`` variables that set a setting from this process's
    environment (its processes inherit it, ``Settings()`` reads it): the measurements run
    on the defaults. The names removed."""
    removed = sorted(name for name in os.environ if name.startswith("DISPATCHER_")
                     and name.removeprefix("DISPATCHER_").lower() in Settings.model_fields)
    for name in removed:
        del os.environ[name]
    return removed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if removed := settings_from_environment():
        print(f"left out of the environment (the benchmark runs on defaults): "
              f"{', '.join(removed)}", flush=True)
    print(report.defaults_line(), flush=True)
    print(f"{'name':<60} {'N':>9} {'conc':>5} {'seconds':>8} {'per second':>11}  also")

    def report_one(r: Result) -> None:
        also = "  ".join(f"{k}={v}" for k, v in r.extra.items())
        print(f"{r.name:<60} {r.n:>9,} {r.concurrency:>5} {r.seconds:>8.3f} "
              f"{r.per_second:>11,.0f}  {also}", flush=True)

    results, engines = run_loop(measure(args, report_one))
    print(report.text(results))
    info = report.machine()
    args.out.mkdir(parents=True, exist_ok=True)
    parameters = {"quick": args.quick, "engines": engines, "n": args.n,
                  "concurrency": args.concurrency, "only": args.only}
    report.write_json(args.out / "benchmark.json", results, info, parameters)
    if "delivery" in args.only:
        report.write_chart(args.out / "throughput.png", results, info)
    if args.readme:
        when = datetime.now(UTC).strftime("%Y-%m-%d")
        command = " ".join(["python -m benchmarks.run", *argv])
        table = report.markdown(results, info, when, command)
        (args.out / "benchmark.md").write_text(table)
        chart = (args.out / "throughput.png").relative_to(ROOT)
        report.update_readme(ROOT / "README.md", table, str(chart))
    print(f"\nwritten: {args.out / 'benchmark.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
