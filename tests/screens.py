"""Reading the rows that the CLI's list commands print, with their wrapped values joined up."""

from __future__ import annotations


def squashed(text: str) -> str:
    """``text`` without whitespace: wrapping moves spaces about but keeps every other char."""
    return "".join(text.split())


def unwrapped_rows(out: str) -> list[str]:
    """Each printed row, its cells' wrapped lines joined up again, whitespace removed.

    A table (headings over a ━ rule) has one column per │; a row begins where its first
    cell is not empty. Blocks (one row per block, blank lines between) are joined line by
    line: their values wrap within their own column, so each value's lines follow each other.
    """
    lines = out.splitlines()
    rule = next((n for n, line in enumerate(lines) if line and set(line) <= {"━", "╇"}), None)
    if rule is None:
        return [squashed(block) for block in out.split("\n\n") if block.strip()]
    rows: list[list[list[str]]] = []
    for line in lines[rule + 1:]:
        cells = line.split("│")
        if cells[0].strip():
            rows.append([[] for _ in cells])
        assert rows, f"a table row with no first cell: {line!r}"
        for parts, cell in zip(rows[-1], cells, strict=True):
            parts.append(cell)
    return [squashed("".join("".join(parts) for parts in row)) for row in rows]


def row_of(out: str, key: str) -> str:
    """The one printed row that holds ``key`` (an id), unwrapped."""
    (row,) = [row for row in unwrapped_rows(out) if key in row]
    return row
