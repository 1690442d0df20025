"""How the operator commands print rows: never a value cut short.

A table when the terminal is wide enough for every short value (ids, statuses, times) on one
line and some room for the long ones (URLs, errors), which wrap; otherwise one block per row,
its other fields one under the other (as psql's expanded display), long values wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

# The least room a long value gets in a table before rows are shown as blocks instead.
TEXT_MIN = 20
# What a table takes beyond its cells: one space each side of a cell and a rule between
# columns, none at the outer edges (show_edge and pad_edge off).
GAP = 3


@dataclass(frozen=True)
class Column:
    name: str
    whole: bool = True  # kept on one line in a table; False: long text that may wrap


def _longest_word(text: str) -> int:
    return max((cell_len(word) for word in text.split()), default=0)


def needed_width(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    """The narrowest table with each whole value on one line and long ones given TEXT_MIN."""
    total = GAP * (len(columns) - 1)
    for index, column in enumerate(columns):
        longest = max((cell_len(row[index]) for row in rows), default=0)
        if column.whole:  # its heading stays on one line too
            total += max(longest, cell_len(column.name))
        else:
            total += max(min(longest, TEXT_MIN), _longest_word(column.name))
    return total


def fits(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> bool:
    return needed_width(columns, rows) <= width


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
           ) -> RenderableType:
    """``rows`` as a table when it fits in ``width``, else as blocks; values whole or wrapped."""
    if fits(columns, rows, width):
        return _table(columns, rows)
    return _blocks(columns, rows)


def _table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for index, column in enumerate(columns):
        if column.whole:
            longest = max((cell_len(row[index]) for row in rows), default=0)
            table.add_column(column.name, no_wrap=True, min_width=longest)
        else:
            table.add_column(column.name, overflow="fold")
    for row in rows:
        # Text, not markup: a value such as "[x]" in a name or an error shows as it is.
        table.add_row(*(Text(value) for value in row))
    return table


def _blocks(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> Group:
    """Each row as its first two values (an id and its status or role) on a line, then one
    ``name  value`` line per other field."""
    parts: list[RenderableType] = []
    for number, row in enumerate(rows):
        if number:
            parts.append(Text(""))
        title = Text(row[0], style="bold")
        if len(row) > 1:
            title.append(f"  {row[1]}")
        parts.append(title)
        fields = Table.grid(padding=(0, 2))
        fields.add_column(no_wrap=True)
        fields.add_column(overflow="fold")
        for column, value in zip(columns[2:], row[2:], strict=True):
            fields.add_row(Text(column.name), Text(value))
        parts.append(Padding(fields, (0, 0, 0, 2), expand=False))
    return Group(*parts)
