"""Debian's Chromium for the browser tests, driven by Playwright (which downloads no browser).

Locally, without Chromium, the tests skip; with ``DISPATCHER_TEST_REQUIRE_BROWSER`` set (CI)
they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(os.environ.get("DISPATCHER_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))
# What the machine's Chromium needs to start headless as root, in a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@contextmanager
def chromium(profile: Path, args: Sequence[str] = CHROMIUM_ARGS) -> Iterator[object]:
    """A headless Chromium context with a fresh profile of our own choosing."""
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("DISPATCHER_TEST_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (apt-get install chromium) but not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as pw:
        # A persistent context only to choose a fresh, empty profile directory ourselves.
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=list(args),
            viewport={"width": 1280, "height": 900})
        yield context
        context.close()
