"""The repository's documents link only inside it: a clone has everything they point at."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".md", ".py", ".html", ".toml", ".ini", ".sh", ".txt", ".cfg", ".yaml"}
# [text](target) in Markdown, href="target" / src="target" in HTML.
# The folder beside a checkout where the contract was once read; a clone does not have it.
OUTSIDE_CONTRACT = "../" + "shared"
LINK = re.compile(r"\]\(([^)\s]+)\)|(?:href|src)=\"([^\"]+)\"")


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES]


def relative_links(path: Path) -> list[str]:
    links = [a or b for a, b in LINK.findall(path.read_text(errors="replace"))]
    return [link for link in links
            if not re.match(r"^(?:[a-z][a-z0-9+.-]*:|#|/|\{|mailto:)", link)]


def test_no_file_links_outside_the_repository():
    outside, missing = [], []
    for path in tracked_files():
        text = path.read_text(errors="replace")
        if OUTSIDE_CONTRACT in text:
            outside.append(f"{path.relative_to(ROOT)} mentions {OUTSIDE_CONTRACT}")
        if path.suffix not in (".md", ".html"):
            continue
        for link in relative_links(path):
            target = (path.parent / link.split("#", 1)[0]).resolve()
            if not target.is_relative_to(ROOT):
                outside.append(f"{path.relative_to(ROOT)} -> {link}")
            elif not target.exists():
                missing.append(f"{path.relative_to(ROOT)} -> {link}")
    assert outside == [] and missing == []


def test_readme_links_the_api_reference():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/api.md)" in readme
    reference = (ROOT / "docs" / "api.md").read_text()
    for section in ("## Errors", "## Subscriptions", "## Events", "## Deliveries and attempts",
                    "## What a subscriber receives"):
        assert section in reference
