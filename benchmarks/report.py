"""What a benchmark run says: the machine, the table, the ratios, the targets, a chart.

Targets are ratios measured side by side in one run (or absolute figures where the issue
sets one: latency, fan-out time, memory), so a noisy machine moves both sides together.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from dispatcher.config import Settings

from .common import Result
from .delivery import delivery_name

MAIN_CONCURRENCY = 64
# The defaults the table states, read from ``Settings`` so that it cannot go stale.
DEFAULTS_SHOWN = ("worker_concurrency", "max_in_flight_per_subscription", "claim_batch_size",
                  "worker_processes", "http_max_connections", "http_transport",
                  "delivery_timeout_seconds", "poll_interval_seconds", "retry_schedule",
                  "sqlite_synchronous", "db_pool_size")
README_BEGIN = "<!-- benchmark:begin -->"
README_END = "<!-- benchmark:end -->"
PACKAGES = ("httpx", "aiohttp", "httpx-aiohttp", "uvloop", "SQLAlchemy", "aiosqlite",
            "asyncpg", "fastapi", "uvicorn")


@dataclass
class Check:
    """One target: ``value`` (a ratio, milliseconds, seconds or MB) against ``limit``."""

    what: str
    value: float | None  # None: not measured in this run
    op: str  # ">=" or "<="
    limit: float
    unit: str = "×"

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.op == ">=" else self.value <= self.limit

    def describe(self) -> str:
        if self.value is None:
            return "not measured"
        return f"{_num(self.value)} {self.unit}".strip()


def _num(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def _find(results: list[Result], name: str, concurrency: int | None = None) -> Result | None:
    for r in results:
        if r.name == name and (concurrency is None or r.concurrency == concurrency):
            return r
    return None


def _ratio(results: list[Result], a: str, b: str, concurrency: int | None = None
           ) -> float | None:
    ra, rb = _find(results, a, concurrency), _find(results, b, concurrency)
    if ra is None or rb is None:
        return None
    return ra.per_second / rb.per_second


def ratios(results: list[Result]) -> list[tuple[str, float]]:
    """Every ratio worth reading, at the main concurrency where there is a choice."""
    c = MAIN_CONCURRENCY
    pairs: list[tuple[str, str, int | None]] = [
        ("httpx-over-aiohttp", "bare-httpx", c), ("httpx-over-aiohttp", "bare-aiohttp", c)]
    for engine in ("sqlite", "postgresql"):
        delivery = delivery_name(engine, c)
        pairs += [(delivery, base, c) for base in
                  ("bare-httpx", "bare-aiohttp", "httpx-over-aiohttp")]
        pairs += [(f"dispatcher-ingest ({engine})", "bare-fastapi", None),
                  (f"ingest-with-key ({engine})", f"ingest-without-key ({engine})", None),
                  (f"ingest-filtered ({engine})", f"ingest-unfiltered ({engine})",
                   None),
                  (f"ingest-validated ({engine})", f"ingest-unvalidated ({engine})", None),
                  (f"backlog-1m ({engine})", f"backlog-empty ({engine})", None),
                  (f"tenant-ingest ({engine})", f"tenant-less-ingest ({engine})", None),
                  (f"busy-subscription ({engine})", f"spread-subscriptions ({engine})", None),
                  (f"healthy-with-5-dead ({engine})", f"healthy-alone ({engine})", None),
                  (f"serve-default ({engine})", ONE_PROCESS.format(engine=engine), None)]
    out = []
    for a, b, conc in pairs:
        value = _ratio(results, a, b, conc)
        if value is not None:
            out.append((f"{a} / {b}" + (f" (C={conc})" if conc else ""), value))
    return out


def checks(results: list[Result]) -> list[Check]:
    """The targets of issues 6, 14 and 16, each with this run's figure."""
    c = MAIN_CONCURRENCY
    sqlite_delivery = delivery_name("sqlite", c)
    out = [
        Check(f"delivery: {sqlite_delivery} / bare-httpx, C={c}",
              _ratio(results, sqlite_delivery, "bare-httpx", c), ">=", 3),
        Check(f"delivery: {sqlite_delivery} / bare-aiohttp, C={c}",
              _ratio(results, sqlite_delivery, "bare-aiohttp", c), ">=", 0.24),
    ]
    for engine in ("sqlite", "postgresql"):
        out.append(Check(f"ingest: dispatcher-ingest ({engine}) / bare-fastapi",
                         _ratio(results, f"dispatcher-ingest ({engine})", "bare-fastapi"),
                         ">=", 0.5))
    for engine in ("sqlite", "postgresql"):
        # Issue 16 (f): an Idempotency-Key on every event costs little.
        out.append(Check(f"ingest with a unique Idempotency-Key / without ({engine})",
                         _ratio(results, f"ingest-with-key ({engine})",
                                f"ingest-without-key ({engine})"), ">=", 0.8))
    for engine in ("sqlite", "postgresql"):
        # Issue 18: checking every event's data against its type's JSON Schema costs little.
        out.append(Check(f"ingest of events checked against a JSON Schema / unchecked ({engine})",
                         _ratio(results, f"ingest-validated ({engine})",
                                f"ingest-unvalidated ({engine})"), ">=", 0.8))
    for engine in ("sqlite", "postgresql"):
        # Issue 17: a filter on each of 1,000 subscriptions costs ingest little.
        out.append(Check(f"ingest to 1,000 subscriptions with filters / without ({engine})",
                         _ratio(results, f"ingest-filtered ({engine})",
                                f"ingest-unfiltered ({engine})"), ">=", 0.7))
    for engine, limit in (("sqlite", 25), ("postgresql", 50)):
        r = _find(results, f"latency ({engine})")
        out.append(Check(f"latency p99 at 200 events/s ({engine})",
                         r.extra.get("p99_ms") if r else None, "<=", limit, "ms"))
    for engine in ("sqlite", "postgresql"):
        r = _find(results, f"fan-out ({engine})")
        label = f"fan-out to {r.n:,} subscriptions ({engine})" if r else \
            f"fan-out ({engine})"
        out.append(Check(label, r.seconds if r else None, "<=", 10, "s"))
    for engine in ("sqlite", "postgresql"):
        r = _find(results, f"backlog-1m ({engine})")
        backlog = f"{r.extra.get('backlog', 0):,}" if r else "1,000,000"
        peak = r.extra.get("peak_rss_mb") if r else None
        out.append(Check(f"backlog of {backlog}: worker peak RSS ({engine})", peak, "<=", 300,
                         "MB"))
        out.append(Check(f"backlog of {backlog}: rate / empty-backlog rate ({engine})",
                         _ratio(results, f"backlog-1m ({engine})", f"backlog-empty ({engine})"),
                         ">=", 0.8))
    for engine in ("sqlite", "postgresql"):
        # Issue 14: an event for one of many tenants is taken about as fast as one of none.
        r = _find(results, f"tenant-ingest ({engine})")
        tenants = f"{r.extra.get('tenants', 0):,}" if r else "100,000"
        out.append(Check(f"tenants: ingest, 1 of {tenants} tenants / tenant-less ({engine})",
                         _ratio(results, f"tenant-ingest ({engine})",
                                f"tenant-less-ingest ({engine})"), ">=", 0.9))
    for engine in ("sqlite", "postgresql"):
        out += _worker_checks(results, engine)
    return out


ONE_PROCESS = "serve-one-process ({engine}, WORKER_PROCESSES=0)"


def _worker_checks(results: list[Result], engine: str) -> list[Check]:
    """Issue 16's targets for the worker, on defaults: how it shares itself among
    subscriptions, keeps latency under a retry storm, and uses the machine's cores."""
    spread = _find(results, f"spread-subscriptions ({engine})")
    slow = _find(results, f"slow-receivers-200ms ({engine})")
    calm, storm = (_find(results, f"{which} p99 ({engine})") for which in ("calm", "storm"))
    storm_ratio = storm.extra["p99_ms"] / calm.extra["p99_ms"] if storm and calm else None
    many = f"{spread.extra['subscriptions']:,}" if spread else "1,000"
    slow_subs = f"{slow.extra['subscriptions']:,}" if slow else "1,000"
    return [
        Check(f"one busy subscription / the same deliveries over {many} subscriptions, "
              f"rate ({engine})",
              _ratio(results, f"busy-subscription ({engine})",
                     f"spread-subscriptions ({engine})"), ">=", 0.8),
        Check(f"receivers answering after 200 ms, {slow_subs} subscriptions: deliveries per "
              f"second ({engine})", slow.per_second if slow else None, ">=", 2000, "/s"),
        Check(f"100 healthy subscriptions beside 5 that never answer / alone, rate ({engine})",
              _ratio(results, f"healthy-with-5-dead ({engine})", f"healthy-alone ({engine})"),
              ">=", 0.9),
        Check(f"latency p99 under a retry storm / without one ({engine})", storm_ratio,
              "<=", 2),
        Check(f"dispatcher serve on defaults / with one process (WORKER_PROCESSES=0), rate "
              f"({engine})",
              _ratio(results, f"serve-default ({engine})", ONE_PROCESS.format(engine=engine)),
              ">=", 1.4),
    ]


# ---- the defaults --------------------------------------------------------------------------

def defaults() -> dict[str, Any]:
    """The defaults of ``DEFAULTS_SHOWN`` as ``Settings`` declares them (None: unset, the
    setting decides at run time; a setting this version lacks is left out)."""
    found = {}
    for name in DEFAULTS_SHOWN:
        field = Settings.model_fields.get(name)
        if field is not None:
            value = field.get_default(call_default_factory=True)
            found[name] = list(value) if isinstance(value, tuple) else value
    return found


def defaults_line() -> str:
    """What every row runs on, for the table's header."""
    shown = []
    for name, value in defaults().items():
        if isinstance(value, list):
            value = ",".join(f"{v:g}" for v in value)
        shown.append(f"{name.upper()} {'unset' if value is None else value}")
    absent = "" if "worker_processes" in Settings.model_fields else \
        " (WORKER_PROCESSES is not a setting of this version: serve is one process)"
    return ("Every row runs on dispatcher's defaults unless its name gives a setting: "
            f"{'; '.join(shown)}{absent}. DISPATCHER_ALLOW_PRIVATE_TARGETS=true throughout "
            "(every receiver is on 127.0.0.1), and dispatcher's processes log at WARNING.")


# ---- the machine ---------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    info["packages"] = {}
    for name in PACKAGES:
        try:
            info["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info.get("packages", {}).items())
    postgres = f", PostgreSQL {info['postgresql']}" if info.get("postgresql") else ""
    return (f"{info.get('cores')} cores ({info.get('cpu', 'unknown CPU')}), "
            f"{info.get('memory_gib', '?')} GiB, Linux {info.get('kernel')}, "
            f"Python {info.get('python')}, SQLite {info.get('sqlite')}{postgres}; {packages}")


# ---- output --------------------------------------------------------------------------------

def _extra(r: Result) -> str:
    return ", ".join(f"{k} {_num(v) if isinstance(v, float) else v}"
                     for k, v in r.extra.items())


def markdown(results: list[Result], info: dict[str, Any], when: str, command: str) -> str:
    lines = [f"Measured {when} with `{command}` on {machine_line(info)}.", "",
             defaults_line(), "",
             "| measurement | N | concurrency | seconds | per second | also |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.n:,} | {r.concurrency} | {r.seconds:.3f} | "
                     f"{r.per_second:,.0f} | {_extra(r)} |")
    lines += ["", "| target | this run | wanted | met |", "|---|---:|---:|:---:|"]
    for check in checks(results):
        met = {True: "yes", False: "**no**", None: "–"}[check.met]
        lines.append(f"| {check.what} | {check.describe()} | {check.op} "
                     f"{_num(check.limit)} {check.unit} | {met} |")
    found = ratios(results)
    if found:
        lines += ["", "| ratio of rates | value |", "|---|---:|"]
        lines += [f"| {what} | {value:.2f} |" for what, value in found]
    return "\n".join(lines) + "\n"


def text(results: list[Result]) -> str:
    """The ratios and targets, for the terminal."""
    lines = ["", "ratios (per-second rates)"]
    lines += [f"  {what:<72} {value:7.2f}" for what, value in ratios(results)]
    lines += ["", "targets"]
    for check in checks(results):
        met = {True: "met", False: "NOT MET", None: "-"}[check.met]
        lines.append(f"  {check.what:<60} {check.describe():>12}  "
                     f"({check.op} {_num(check.limit)} {check.unit})  {met}")
    return "\n".join(lines)


def write_json(path: Path, results: list[Result], info: dict[str, Any],
               parameters: dict[str, Any]) -> None:
    path.write_text(json.dumps({
        "machine": info,
        "parameters": parameters,
        "defaults": defaults(),
        "results": [asdict(r) | {"per_second": r.per_second} for r in results],
        "ratios": [{"ratio": what, "value": value} for what, value in ratios(results)],
        "targets": [asdict(c) | {"met": c.met} for c in checks(results)],
    }, indent=2) + "\n")


CHART_SERIES = ("bare-httpx", "bare-aiohttp", "httpx-over-aiohttp",
                "dispatcher-delivery (sqlite)", "dispatcher-delivery (postgresql)")


def _in_series(series: str, r: Result) -> bool:
    """Whether ``r`` is a point of the chart's line ``series`` (dispatcher-delivery's names
    carry their concurrency)."""
    for engine in ("sqlite", "postgresql"):
        if series == f"dispatcher-delivery ({engine})":
            return r.name == delivery_name(engine, r.concurrency)
    return r.name == series


def write_chart(path: Path, results: list[Result], info: dict[str, Any]) -> None:
    """Throughput against concurrency, one line per client or engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name in CHART_SERIES:
        points = sorted((r.concurrency, r.per_second) for r in results if _in_series(name, r))
        if points:
            xs, ys = zip(*points, strict=True)
            style = "-o" if name.startswith("dispatcher") else "--s"
            ax.plot(xs, ys, style, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrency (requests or attempts in flight)")
    ax.set_ylabel("requests or deliveries per second")
    ax.set_title("Delivery throughput against one receiver on 127.0.0.1")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.text(0.01, 0.01, f"{info.get('cores')} cores, {info.get('cpu', '')}, "
             f"Python {info.get('python')}", fontsize=7, alpha=0.7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def update_readme(readme: Path, table: str, chart: str) -> None:
    """Put ``table`` and the chart between the README's benchmark markers."""
    content = readme.read_text()
    begin, end = content.index(README_BEGIN), content.index(README_END)
    block = f"{README_BEGIN}\n{table}\n![throughput against concurrency]({chart})\n"
    readme.write_text(content[:begin] + block + content[end:])
