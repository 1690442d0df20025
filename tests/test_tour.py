"""The README's 60-second tour runs as written: ``examples/tour.sh`` against a real server
started with the settings the README's terminal 1 gives."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from dispatcher.config import Settings

from .harness import AppServer, free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TOUR = ROOT / "examples" / "tour.sh"

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")) and not os.environ.get("CI"),
    reason="the tour needs curl and jq",
)


def terminal_1_settings() -> dict[str, str]:
    """The DISPATCHER_* settings of the tour's first shell block, as the README writes them."""
    tour = README[README.index("## A 60-second tour"):]
    block = tour[tour.index("```sh") + 5:]
    block = block[:block.index("```")]
    return dict(re.findall(r"DISPATCHER_([A-Z_]+)=(\S+)", block))


def run_tour(server: AppServer, token: str, receiver_port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "DISPATCHER_URL": server.url, "DISPATCHER_ADMIN_TOKEN": token,
           "RECEIVER_PORT": str(receiver_port)}
    return subprocess.run(["bash", str(TOUR)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_readme_runs_the_tour_script():
    assert "bash examples/tour.sh" in README
    assert set(terminal_1_settings()) == {"ADMIN_TOKEN", "ALLOW_PRIVATE_TARGETS",
                                          "RETRY_SCHEDULE"}


def test_the_tour_runs_and_step_6_shows_the_retries(make_settings):
    values = terminal_1_settings()
    settings: Settings = make_settings(
        admin_token=values["ADMIN_TOKEN"],
        allow_private_targets=values["ALLOW_PRIVATE_TARGETS"] == "true",
        retry_schedule=tuple(float(s) for s in values["RETRY_SCHEDULE"].split(",")),
        retry_jitter=0.2)
    port = free_port()
    with AppServer(settings) as server:
        done = run_tour(server, values["ADMIN_TOKEN"], port)
        assert done.returncode == 0, done.stderr
        assert "verified evt_" in done.stdout
        step_6 = done.stdout[done.stdout.index("6. "):]
        failed = [line for line in step_6.splitlines() if '"outcome":"failed"' in line]
        assert len(failed) >= 3 and all("ConnectionRefusedError" in line for line in failed)
        # The receiver was stopped by its pid, and the service it ran beside still answers.
        assert port_is_free(port)
        assert not port_is_free(server.port)


def test_a_forgotten_setting_stops_the_tour_with_the_services_message(make_settings):
    values = terminal_1_settings()
    settings = make_settings(admin_token=values["ADMIN_TOKEN"], allow_private_targets=False)
    with AppServer(settings) as server:
        done = run_tour(server, values["ADMIN_TOKEN"], free_port())
    assert done.returncode != 0
    assert "tour stopped: POST /v1/subscriptions answered 422" in done.stderr
    assert "DISPATCHER_ALLOW_PRIVATE_TARGETS" in done.stderr
    assert "null" not in done.stdout and "3. " not in done.stdout


def test_a_service_that_is_not_there_stops_the_tour_at_once(tmp_path):
    env = {**os.environ, "DISPATCHER_URL": f"http://127.0.0.1:{free_port()}",
           "DISPATCHER_ADMIN_TOKEN": "x" * 20}
    done = subprocess.run(["bash", str(TOUR)], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert "does not answer; is terminal 1 running?" in done.stderr
