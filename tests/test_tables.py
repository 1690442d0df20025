"""How the CLI lays out rows: a table only when every short value fits on one line."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dispatcher.tables import TEXT_MIN, Column, fits, needed_width, render

from .screens import row_of, squashed

ID = "dlv_01m8sw2d6n6mscrd3w950b7vpf"
ERROR = "HTTP 500: " + "the receiver is down " * 8
URL = "https://hooks.example.com/" + "a/" * 40


@pytest.mark.parametrize(("columns", "rows", "width"), [
    # whole columns take their longest value, or their heading when that is longer
    ([Column("id"), Column("status")], [[ID, "succeeded"]], 30 + 3 + 9),
    ([Column("id"), Column("attempts")], [[ID, "3"]], 30 + 3 + 8),
    # long text is given TEXT_MIN, or less when all of it is shorter
    ([Column("id"), Column("last error", whole=False)], [[ID, ERROR]], 30 + 3 + TEXT_MIN),
    ([Column("id"), Column("last error", whole=False)], [[ID, "timeout"]], 30 + 3 + 7),
    # ...but at least its heading's longest word, as headings of long text wrap at words
    ([Column("id"), Column("event types", whole=False)], [[ID, "a.b"]], 30 + 3 + 5),
    # the longest row decides; no rows: the headings alone
    ([Column("id"), Column("role")], [["key_1", "admin"], [ID, "publisher"]], 30 + 3 + 9),
    ([Column("id"), Column("role")], [], 2 + 3 + 4),
])
def test_needed_width(columns: list[Column], rows: list[list[str]], width: int) -> None:
    assert needed_width(columns, rows) == width
    assert fits(columns, rows, width)
    assert not fits(columns, rows, width - 1)


def shown(columns: list[Column], rows: list[list[str]], width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(render(columns, rows, width))
    return console.export_text()


@pytest.mark.parametrize("width", [40, 80, 100, 120, 200])
def test_render_never_cuts_a_value(width: int) -> None:
    columns = [Column("id"), Column("status"), Column("url", whole=False),
               Column("last error", whole=False)]
    rows = [[ID, "succeeded", URL, ERROR], [ID.replace("dlv_01", "dlv_02"), "held", "", ""]]
    out = shown(columns, rows, width)
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= width
    for row in rows:
        for whole in row[:2]:  # the id and status on one line each
            assert any(whole in line for line in out.splitlines()), whole
        assert all(squashed(value) in row_of(out, row[0]) for value in row)
    # A table when it fits (headings on a rule), else one block per row.
    assert ("━" in out) == fits(columns, rows, width)


def test_values_are_text_not_markup() -> None:
    out = shown([Column("id"), Column("name", whole=False)], [["key_1", "[bold]ops[/bold]"]], 80)
    assert "[bold]ops[/bold]" in out
