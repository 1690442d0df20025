"""An HTTP load generator for benchmarks: aiohttp, in a process of its own.

    python benchmarks/load.py --url http://127.0.0.1:PORT/path --n 2000 --concurrency 32 \\
        --header 'authorization: Bearer …' --body '{"type": "a", "data": {"i": {i}}}'

``concurrency`` tasks share one ``aiohttp.ClientSession`` (a connector of that many
keep-alive connections) and pull request numbers from one counter. ``{i}`` in the body is
replaced by the request's number, so every request is different (events differ); the
bodies are made before the clock starts. With ``--pick K``, ``{r}`` is replaced by a number
drawn at random in ``[0, K)`` per request (seeded by ``--seed``: the same draw every run),
e.g. one of K tenants. A warm-up of ``concurrency`` requests (numbered
after the timed ones, not timed) opens the connections first.

It prints one JSON line: ``n``, ``concurrency``, ``warmup``, ``seconds``, ``per_second``,
``statuses`` (counts, warm-up included), ``p50_ms``, ``p99_ms``, ``max_ms`` and ``sample``
(the last answer's body). Every answer must have the expected status (``--expect``, 202 by
default); otherwise the line also carries ``error`` and the exit status is 1. The whole run
has a deadline (``--deadline``), and only 127.0.0.1 may be loaded.

It runs as its own process so that the client's CPU is not the server's, and the same
client loads every server that is compared: ``run_load`` starts it and returns the line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

COUNTER = "{i}"
PICK = "{r}"
SAMPLE_BYTES = 2000
SCRIPT = str(Path(__file__).resolve())


class LoadError(RuntimeError):
    """The load run failed: an unexpected status, an error, or the deadline."""


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def make_bodies(template: str, count: int, pick: int = 0, seed: int = 0) -> list[bytes]:
    """``count`` bodies: ``{i}`` is the body's number, ``{r}`` (with ``pick``) a seeded
    random number in ``[0, pick)``."""
    draw = random.Random(seed)
    bodies = []
    for i in range(count):
        body = template.replace(COUNTER, str(i))
        if pick:
            body = body.replace(PICK, str(draw.randrange(pick)))
        bodies.append(body.encode())
    return bodies


async def _load(url: str, n: int, concurrency: int, headers: dict[str, str], template: str,
                expect: int, deadline: float, pick: int = 0, seed: int = 0) -> dict[str, Any]:
    import aiohttp

    warmup = concurrency
    # Numbered 0..n-1 timed, then n..n+warmup-1 for the warm-up: all distinct.
    if COUNTER in template or (pick and PICK in template):
        bodies = make_bodies(template, n + warmup, pick, seed)
    else:
        bodies = [template.encode()] * (n + warmup)
    # A header value with {i} (an Idempotency-Key per event) is made per request too.
    numbered = {k: v for k, v in headers.items() if COUNTER in v}
    fixed = {k: v for k, v in headers.items() if k not in numbered}
    per_request = [{k: v.replace(COUNTER, str(i)) for k, v in numbered.items()}
                   for i in range(n + warmup)] if numbered else None
    headers = fixed
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    unexpected: list[str] = []
    sample = b""

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0,
                                     force_close=False, enable_cleanup_closed=False)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers=headers, auto_decompress=False) as session:

        async def pull(numbers: Any, timed: bool) -> None:
            nonlocal sample
            for i in numbers:  # shared: each number is taken by exactly one task
                started = time.perf_counter()
                extra = per_request[i] if per_request is not None else None
                async with session.post(url, data=bodies[i], headers=extra) as response:
                    answer = await response.read()
                    status = response.status
                if timed:
                    latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                sample = answer
                if status != expect and len(unexpected) < 5:
                    unexpected.append(f"{status}: {answer[:300].decode(errors='replace')}")

        async def run(numbers: range, timed: bool) -> float:
            shared = iter(numbers)
            start = time.perf_counter()
            await asyncio.gather(*(pull(shared, timed) for _ in range(concurrency)))
            return time.perf_counter() - start

        async with asyncio.timeout(deadline):
            await run(range(n, n + warmup), timed=False)
            seconds = await run(range(n), timed=True)

    latencies.sort()
    result: dict[str, Any] = {
        "n": n,
        "concurrency": concurrency,
        "warmup": warmup,
        "seconds": seconds,
        "per_second": n / seconds if seconds > 0 else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "sample": sample[:SAMPLE_BYTES].decode(errors="replace"),
    }
    bad = sum(v for k, v in statuses.items() if k != expect)
    if bad:
        result["error"] = (f"{bad} of {n + warmup} answers were not {expect}: "
                           + " | ".join(unexpected))
    return result


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"not 'name: value': {text!r}")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/load.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path")
    parser.add_argument("--n", type=int, required=True, help="timed requests")
    parser.add_argument("--concurrency", type=int, required=True, help="requests in flight")
    parser.add_argument("--header", type=_header, action="append", default=[],
                        help="'name: value', repeatable")
    parser.add_argument("--body", default="{}", help=f"the body; {COUNTER} is the request number")
    parser.add_argument("--pick", type=int, default=0,
                        help=f"{PICK} in the body: a random number in [0, PICK) per request")
    parser.add_argument("--seed", type=int, default=0, help="the seed of --pick's draw")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--expect", type=int, default=202, help="the status every answer has")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds, warm-up included")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1 or args.deadline <= 0 or args.pick < 0:
        parser.error("--n, --concurrency and --deadline must be positive, --pick not negative")
    target = urlsplit(args.url)
    if target.scheme != "http" or target.hostname != "127.0.0.1":
        parser.error("only http://127.0.0.1 may be loaded")
    headers = {"content-type": args.content_type, **dict(args.header)}
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # the same numbers, a little slower
        runner = asyncio.run
    try:
        result = runner(_load(args.url, args.n, args.concurrency, headers, args.body,
                              args.expect, args.deadline, args.pick, args.seed))
    except TimeoutError:
        result = {"error": f"not done within the deadline of {args.deadline:g} s"}
    except Exception as exc:  # noqa: BLE001 - said on the one line, and a failed exit
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 1 if "error" in result else 0


# ---- from another process ------------------------------------------------------------------

async def run_load(url: str, n: int, concurrency: int, *, headers: dict[str, str] | None = None,
                   body: str = "{}", expect: int = 202, deadline: float = 120.0,
                   pick: int = 0, seed: int = 0) -> dict[str, Any]:
    """Run this file as a process of its own; its JSON line. ``LoadError`` on any failure."""
    argv = [sys.executable, SCRIPT, "--url", url, "--n", str(n),
            "--concurrency", str(concurrency), "--body", body, "--expect", str(expect),
            "--deadline", str(deadline), "--pick", str(pick), "--seed", str(seed)]
    for name, value in (headers or {}).items():
        argv += ["--header", f"{name}: {value}"]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with asyncio.timeout(deadline + 30):  # its own deadline, plus start-up
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise LoadError(f"the load process did not finish within {deadline + 30:g} s") from None
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise LoadError(f"the load process said nothing usable (exit {process.returncode}): "
                        f"{err.decode(errors='replace')[-2000:]}") from None
    if "error" in result or process.returncode != 0:
        raise LoadError(f"load on {url}: {result.get('error', f'exit {process.returncode}')}")
    return result


if __name__ == "__main__":
    sys.exit(main())
