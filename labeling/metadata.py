"""Per-image metadata (review id, review type, uploader, …) as people supply it:
a JSON object, or a CSV / JSON Lines table keyed by file name."""

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import PurePath

from labeling.ingest import Upload

FILE_COLUMNS = ("file", "filename", "name", "path")


class MetadataError(ValueError):
    """The metadata cannot be read; the message says where and why."""


def _file_key(row: Mapping[str, object], where: str) -> str:
    for column in FILE_COLUMNS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return PurePath(value.strip()).name
    raise MetadataError(
        f"{where}: no file name (expected a column named {' / '.join(FILE_COLUMNS)})"
    )


def metadata_table_parse(text: str, fmt: str) -> dict[str, dict]:
    """Parse a CSV or JSON Lines table into {file name: metadata}."""
    table: dict[str, dict] = {}
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise MetadataError("the CSV file has no header row")
        for line_no, row in enumerate(reader, start=2):
            key = _file_key(row, f"line {line_no}")
            table[key] = {k: v for k, v in row.items() if k and k not in FILE_COLUMNS and v != ""}
    elif fmt == "jsonl":
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MetadataError(f"line {line_no}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise MetadataError(f"line {line_no}: expected a JSON object")
            key = _file_key(row, f"line {line_no}")
            table[key] = {k: v for k, v in row.items() if k not in FILE_COLUMNS}
    else:
        raise MetadataError(f"unknown metadata format {fmt!r}; use csv or jsonl")
    return table


def metadata_format_for(name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise MetadataError(f"{name}: metadata must be a .csv or .jsonl file")


def metadata_for_uploads(
    files: Iterable, metadata: str | None, table: dict | None = None
) -> list[Upload]:
    """Pair uploaded files with metadata: a JSON object for all of them, a JSON object keyed by
    file name, or a parsed table."""
    files = list(files)
    shared: dict = {}
    per_file: dict[str, dict] = dict(table or {})
    if metadata:
        try:
            parsed = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"metadata is not valid JSON ({exc.msg})") from exc
        if not isinstance(parsed, dict):
            raise MetadataError("metadata must be a JSON object")
        names = {PurePath(f.name).name for f in files}
        if parsed and all(isinstance(v, dict) for v in parsed.values()) and set(parsed) <= names:
            per_file.update(parsed)
        else:
            shared = parsed
    return [
        Upload(
            name=PurePath(f.name).name,
            content=f,
            metadata={**shared, **per_file.get(PurePath(f.name).name, {})},
        )
        for f in files
    ]
