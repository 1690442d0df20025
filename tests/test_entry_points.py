"""``python -m dispatcher`` runs every command, and the CLI hides only aiosqlite's thread
noise."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import cast

from dispatcher.cli.direct import quiet_aiosqlite_threads


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_python_m_dispatcher_lists_every_command() -> None:
    done = run_module("--help")
    assert done.returncode == 0, done.stderr
    for name in ("serve", "api", "worker", "replay", "prune", "db", "deliveries",
                 "subscriptions", "keys", "secrets"):
        assert name in done.stdout


def test_python_m_dispatcher_runs_a_subcommand() -> None:
    done = run_module("secrets", "generate-key")
    assert done.returncode == 0, done.stderr
    assert len(base64.urlsafe_b64decode(done.stdout.strip())) == 32


def _raise_in_thread(body: Callable[[], None]) -> None:
    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()


def _as_if_from(module: str, error: BaseException) -> Callable[[], None]:
    """A function whose frame belongs to ``module`` and raises ``error``."""
    scope: dict[str, object] = {"__name__": module, "error": error}
    exec("def body():\n    raise error\n", scope)  # noqa: S102 - a frame of another module
    return cast(Callable[[], None], scope["body"])


def test_only_aiosqlite_thread_noise_is_hidden() -> None:
    seen: list[BaseException | None] = []
    before = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_value)
    try:
        restore = quiet_aiosqlite_threads()
        try:
            noise = RuntimeError("Event loop is closed")
            _raise_in_thread(_as_if_from("aiosqlite.core", noise))
            ours = RuntimeError("a bug of ours")
            _raise_in_thread(_as_if_from("dispatcher.worker", ours))
            other = ValueError("anything else")
            _raise_in_thread(_as_if_from("aiosqlite.core", other))
        finally:
            restore()
        assert seen == [ours, other]
        last = KeyError("after restore")
        _raise_in_thread(_as_if_from("aiosqlite.core", last))
        assert seen == [ours, other, last]
    finally:
        threading.excepthook = before
