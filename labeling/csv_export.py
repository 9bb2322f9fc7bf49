"""CSV for the reports' downloads: plain cells, streamed lines, no spreadsheet formulas."""

import csv
from collections.abc import Iterable, Iterator


def csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 4)
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_safe(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading quote (review ids and user
    names come from outside)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Each row as one CSV line, text cells made safe for spreadsheets."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([_csv_safe(value) for value in row])
