"""serve's worker processes: the pure decisions (how many, how long before a restart, what a
clean stop is) and the pipe that tells a worker process serve is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from pydantic import ValidationError

from dispatcher.config import Settings, usable_cpus, worker_processes_for
from dispatcher.supervisor import (
    FIRST_RESTART_DELAY,
    MAX_RESTART_DELAY,
    STEADY_SECONDS,
    describe_exit,
    on_parent_gone,
    remove_left_behind,
    restart_delay,
    stopped_cleanly,
)


@pytest.mark.parametrize(("cpus", "processes"), [
    (1, 0), (2, 1), (4, 3), (64, 63), (65, 64), (200, 64), (0, 0),
])
def test_one_worker_process_per_further_cpu(cpus, processes):
    assert worker_processes_for(cpus) == processes


def test_the_default_follows_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv("DISPATCHER_WORKER_PROCESSES", raising=False)
    assert Settings().worker_processes == worker_processes_for(usable_cpus())
    assert usable_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert Settings().worker_processes == 2


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_worker_processes_is_bounded(monkeypatch, value):
    monkeypatch.setenv("DISPATCHER_WORKER_PROCESSES", value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(("previous", "lived", "delay"), [
    (None, 0.5, FIRST_RESTART_DELAY),  # the first death
    (1.0, 0.5, 2.0),  # dying at start again: twice as long
    (8.0, 3.0, 16.0),
    (16.0, 3.0, MAX_RESTART_DELAY),
    (MAX_RESTART_DELAY, 3.0, MAX_RESTART_DELAY),
    (MAX_RESTART_DELAY, STEADY_SECONDS, FIRST_RESTART_DELAY),  # it ran a while: soon again
])
def test_restart_delay(previous, lived, delay):
    assert restart_delay(previous, lived) == delay


@pytest.mark.parametrize(("returncode", "clean", "said"), [
    (0, True, "exit status 0"),
    (-signal.SIGTERM, True, "killed by SIGTERM"),  # before its handler was set: starting
    (1, False, "exit status 1"),
    (-signal.SIGKILL, False, "killed by SIGKILL"),
    (-200, False, "killed by signal 200"),
])
def test_what_a_worker_process_exit_means(returncode, clean, said):
    assert stopped_cleanly(returncode) is clean
    assert describe_exit(returncode) == said


def test_a_worker_process_stops_when_the_pipe_from_serve_ends():
    async def main() -> list[str]:
        read_fd, write_fd = os.pipe()
        stopped: list[str] = []
        try:
            on_parent_gone(read_fd, lambda: stopped.append("stop"))
            await asyncio.sleep(0.05)
            assert stopped == []  # serve is there
            os.close(write_fd)  # as the kernel does when serve ends, however it ends
            for _ in range(100):
                if stopped:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            return stopped
        finally:
            os.close(read_fd)

    assert asyncio.run(main()) == ["stop"]  # once


def test_metrics_directories_of_serves_that_are_gone_are_removed(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    left = tmp_path / f"dispatcher-metrics-{dead_pid}-abc123"
    live = tmp_path / f"dispatcher-metrics-{os.getpid()}-def456"  # a serve still running
    other = tmp_path / "dispatcher-metrics-ghi789"  # not named by a serve
    for folder in (left, live, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"")
    remove_left_behind(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
