"""README.md's tables, read as data, so tests can hold the README to what the code does."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

_HEADING = re.compile(r"^(#+)\s+(.*?)\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def readme_table(heading: str) -> list[dict[str, str]]:
    """The first table under the README heading ``heading`` (its exact text), as one dict per
    row keyed by the header cells. Raises LookupError naming what is missing."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(
        (
            number
            for number, line in enumerate(lines)
            if (match := _HEADING.match(line)) and match.group(2) == heading
        ),
        None,
    )
    if start is None:
        raise LookupError(f"README.md has no heading {heading!r}")
    table: list[list[str]] = []
    for line in lines[start + 1 :]:
        if _HEADING.match(line) and not table:
            break  # the next section began before any table
        if line.startswith("|"):
            table.append(_cells(line))
        elif table:
            break
    if len(table) < 2:
        raise LookupError(f"README.md has no table under {heading!r}")
    header, _separator, *rows = table
    return [dict(zip(header, row, strict=True)) for row in rows]


def _cells(line: str) -> list[str]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(inner)]


def code_spans(cell: str) -> list[str]:
    """The `code` spans of a cell, in order."""
    return re.findall(r"`([^`]*)`", cell)
