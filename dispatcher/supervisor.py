"""``dispatcher serve``'s worker processes: started beside it, restarted when one dies, stopped
with it.

Each is ``python -m dispatcher worker --parent-fd N`` with serve's environment: it shares
nothing with serve but the database (and ``PROMETHEUS_MULTIPROC_DIR``). A worker process
outlives serve by no more than its graceful stop, however serve ended (``kill -9``
included), in two ways:

- it watches the read end of a pipe whose write end only serve holds: the pipe reads
  end-of-file once serve is gone, and the worker stops as on SIGTERM (any POSIX system);
- on Linux it also asks for SIGTERM when serve ends (``prctl(PR_SET_PDEATHSIG)``, set at its
  start), which covers its start-up, before its event loop watches the pipe. That signal
  comes when the *thread* that started it ends: serve starts them from its main thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("dispatcher.supervisor")

FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A worker process that ran this long did not die of its start-up: restart it soon again.
STEADY_SECONDS = 60.0
WATCH_INTERVAL = 0.2
# After the grace period: time for the worker processes to record what finished.
STOP_MARGIN_SECONDS = 15.0
PR_SET_PDEATHSIG = 1


def restart_delay(previous: float | None, lived_seconds: float) -> float:
    """How long to wait before starting a worker process again: briefly after one that ran a
    while, twice as long each time after one that keeps dying at start."""
    if previous is None or lived_seconds >= STEADY_SECONDS:
        return FIRST_RESTART_DELAY
    return min(MAX_RESTART_DELAY, previous * 2)


def stopped_cleanly(returncode: int) -> bool:
    """Status 0, or SIGTERM's default action: a worker stopped before it had set up its
    handler was still starting and had claimed nothing."""
    return returncode in (0, -signal.SIGTERM)


def describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


@dataclass
class _Slot:
    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float | None = None  # the last wait before a restart
    restart_at: float | None = None  # when a dead one is started again


class Supervisor:
    """``count`` worker processes; ``watch`` restarts those that die until ``stop``."""

    def __init__(self, count: int, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self._slots = [_Slot(n) for n in range(1, count + 1)]
        # Not inheritable: each worker gets the read end through pass_fds, and no process
        # but serve ever holds the write end.
        self._read_fd, self._write_fd = os.pipe()
        self._stopping_since: float | None = None
        self._closed = False

    def command(self) -> list[str]:
        return [sys.executable, "-m", "dispatcher", "worker", "--parent-fd", str(self._read_fd)]

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None]

    def start(self) -> None:
        """Start them all (from the main thread: see the module's docstring)."""
        for slot in self._slots:
            self._spawn(slot)
        log.info("started %d worker processes (pids %s)", len(self._slots),
                 ", ".join(map(str, self.pids())))

    def _spawn(self, slot: _Slot) -> None:
        # A process group of its own: a Ctrl-C in the terminal reaches serve, which stops
        # its workers itself.
        slot.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, pass_fds=(self._read_fd,),
            process_group=0)
        slot.started = time.monotonic()

    async def watch(self) -> None:
        """Start a worker process again after each one that dies, until ``terminate``."""
        while self._stopping_since is None:
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None:
                    if now >= slot.restart_at:
                        slot.restart_at = None
                        self._spawn(slot)
                    continue
                code = None if slot.process is None else slot.process.poll()
                if code is None or self._stopping_since is not None:
                    continue
                slot.delay = restart_delay(slot.delay, now - slot.started)
                slot.restart_at = now + slot.delay
                log.warning("worker process %d (pid %d) ended (%s); starting another in %g s",
                            slot.number, slot.process.pid if slot.process else 0,
                            describe_exit(code), slot.delay)
            await asyncio.sleep(WATCH_INTERVAL)

    def terminate(self) -> None:
        """SIGTERM to every worker process, and no more restarts (from a signal handler too)."""
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
        for slot in self._slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)

    async def stop(self) -> bool:
        """Stop them: SIGTERM, up to the grace period and a margin from the first SIGTERM to
        finish, then SIGKILL. True when each that was running stopped cleanly."""
        self.terminate()
        assert self._stopping_since is not None
        deadline = self._stopping_since + self.grace_seconds + STOP_MARGIN_SECONDS
        running = [s.process for s in self._slots if s.process is not None]
        while time.monotonic() < deadline:
            if all(p.poll() is not None for p in running):
                break
            await asyncio.sleep(0.1)
        clean = True
        for process in running:
            if process.poll() is None:
                log.warning("worker process pid %d did not stop within %g s; killing it",
                            process.pid, self.grace_seconds + STOP_MARGIN_SECONDS)
                process.kill()
                await asyncio.to_thread(process.wait, 10)
                clean = False
            elif not stopped_cleanly(process.returncode):
                log.warning("worker process pid %d stopped with %s", process.pid,
                            describe_exit(process.returncode))
                clean = False
        if not self._closed:
            self._closed = True
            for fd in (self._read_fd, self._write_fd):
                os.close(fd)
        return clean


# ---- serve's metrics directory ---------------------------------------------------------------

METRICS_DIR = re.compile(r"dispatcher-metrics-(\d+)-")


def private_metrics_dir() -> str | None:
    """Without PROMETHEUS_MULTIPROC_DIR, one of serve's own, handed to its worker processes
    (they inherit the variable), so that its /metrics adds them up; serve removes it when it
    ends, and one serve starting removes those that serves killed with ``kill -9`` left."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") or "dispatcher.metrics" in sys.modules:
        return None
    remove_left_behind(tempfile.gettempdir())
    folder = tempfile.mkdtemp(prefix=f"dispatcher-metrics-{os.getpid()}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


def remove_left_behind(parent: str) -> None:
    """Remove the metrics directories of this user's serves that are gone."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        found = METRICS_DIR.match(entry.name)
        try:
            if found is None or not entry.is_dir(follow_symlinks=False) or \
                    entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if not _running(int(found[1])):
            shutil.rmtree(entry.path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


# ---- in the worker process -------------------------------------------------------------------

def die_with_parent() -> None:
    """Linux: SIGTERM to this process once the one that started it ends."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))


def on_parent_gone(fd: int, stop: Callable[[], None]) -> None:
    """Call ``stop`` once the pipe from serve reads end-of-file: serve is gone (serve never
    writes to it)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            if os.read(fd, 1):
                return
        except BlockingIOError:
            return
        loop.remove_reader(fd)
        log.warning("dispatcher serve is gone: stopping")
        stop()

    loop.add_reader(fd, readable)
