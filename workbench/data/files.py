"""Dataset files -> raw rows: the readers behind workbench.data.

`resolve_files("a.jsonl,b.csv")` checks every listed file before any is read;
`read_rows(path, name, on_bytes)` yields (place, raw row) one row at a time, where place is
what an error message names ("row 7 (line 9)"), and tells `on_bytes(offset)` how far into the
file it is (for progress bars). Text is decoded from bytes line by line, so a bad byte is
reported by its offset in the file and a large .jsonl is read with bounded memory (a .json
array is parsed whole: use .jsonl for files of hundreds of MB).
"""

from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from workbench import paths
from workbench.errors import DataError

SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
OnBytes = Callable[[int], None] | None


def _ignore(offset: int) -> None:
    pass


def resolve_files(spec: str) -> list[tuple[str, Path]]:
    whole = paths.resolve_data_path(spec) if spec.strip() else None
    names = [spec] if whole is not None and whole.exists() else [
        s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise DataError("data.path is empty: choose a dataset file (.json, .jsonl, .csv, "
                        ".parquet)")
    out = []
    for name in names:
        path = paths.resolve_data_path(name)
        if not path.exists():
            raise DataError(f"{name}: file not found (looked in {Path.cwd()} and "
                            f"{paths.PROJECT_ROOT})")
        if path.is_dir():
            raise DataError(f"{name}: is a folder; choose a dataset file inside it")
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"{name}: unsupported file type {path.suffix or '(none)'!r}; "
                            "use .json, .jsonl, .csv or .parquet")
        out.append((name, path))
    return out


# -- readers: (place, raw row) iterators ------------------------------------------------

def _utf8_lines(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[int, str]]:
    """Decode line by line from bytes, so a bad byte is reported by its offset in the file."""
    on_bytes = on_bytes or _ignore
    offset = 0
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            if line_no == 1:
                _check_utf16(raw, name)
                if raw.startswith(codecs.BOM_UTF8):  # Excel and Notepad add one
                    raw, offset = raw[3:], 3
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _encoding_error(name, offset + e.start, line_no) from None
            offset += len(raw)
            on_bytes(offset)
            yield line_no, text


def _check_utf16(head: bytes, name: str) -> None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{name}: the file is UTF-16 text, not valid UTF-8 (encoding) at "
                        "byte 0, line 1: save the file as UTF-8")


def _encoding_error(name: str, byte: int, line: int) -> DataError:
    return DataError(f"{name}: not valid UTF-8 (encoding) at byte {byte}, line {line}: "
                     "save the file as UTF-8")


def _read_jsonl(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    row = 0
    for line_no, text in _utf8_lines(path, name, on_bytes):
        if not text.strip():
            continue
        row += 1
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            hint = (" (this looks like one JSON array: name the file .json)"
                    if row == 1 and text.lstrip().startswith("[") else "")
            raise DataError(f"{name}: line {line_no}, column {e.colno}: invalid JSON "
                            f"({e.msg}){hint}") from None
        yield f"row {row} (line {line_no})", value


def _read_json(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    raw = path.read_bytes()
    _check_utf16(raw[:2], name)
    skip = 3 if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = skip + e.start
        raise _encoding_error(name, at, raw.count(b"\n", 0, at) + 1) from None
    if not text.strip():
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip().startswith("{"):
            yield from _read_jsonl(path, name, on_bytes)  # one object per line in a .json file
            return
        raise DataError(f"{name}: line {e.lineno}, column {e.colno}: invalid JSON "
                        f"({e.msg})") from None
    if isinstance(value, dict):
        raise DataError(f"{name}: expected a JSON array of rows [{{...}}, ...] or one object "
                        f"per line, got a single object with keys: {', '.join(value)}")
    if not isinstance(value, list):
        raise DataError(f"{name}: expected a JSON array of rows, got {kind(value)}")
    size = len(raw)
    del raw, text  # the generator would hold both for as long as its rows are read
    for i, item in enumerate(value, 1):
        if on_bytes:  # parsed whole: progress in proportion to the rows
            on_bytes(size * i // len(value))
        yield f"row {i}", item


def _read_csv(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    csv.field_size_limit(2**31 - 1)  # long answers exceed the 128 KB default
    reader = csv.reader(text for _, text in _utf8_lines(path, name, on_bytes))
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        row = 0
        for cells in reader:
            if not cells:
                continue  # blank line
            row += 1
            where = f"row {row} (line {reader.line_num})"
            if len(cells) > len(header):
                raise DataError(f"{name}: {where}: {len(cells)} cells but the header has "
                                f"{len(header)} columns (a comma in an unquoted value?)")
            yield where, dict(zip(header, cells + [""] * (len(header) - len(cells))))
    except csv.Error as e:
        raise DataError(f"{name}: line {reader.line_num}: cannot read CSV ({e})") from None


def _read_parquet(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{name}: reading .parquet files needs the pyarrow package "
                        "(pip install pyarrow)") from None
    try:
        pf = pq.ParquetFile(path)
        batches = pf.iter_batches(batch_size=1024)
    except Exception as e:  # pyarrow raises ArrowInvalid & co. for a broken file
        raise DataError(f"{name}: not a readable Parquet file ({e})") from None
    total, size, row = max(1, pf.metadata.num_rows), path.stat().st_size, 0
    for batch in batches:
        for item in batch.to_pylist():
            row += 1
            yield f"row {row}", item
        if on_bytes:  # compressed columns: progress in proportion to the rows
            on_bytes(size * row // total)


_READERS = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv,
            ".parquet": _read_parquet}


def read_rows(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    """(place, raw row) for each row of one file; `name` is how errors call the file;
    `on_bytes(offset)` hears how many bytes of the file are read so far."""
    return _READERS[path.suffix.lower()](path, name, on_bytes)


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {list: "a list", tuple: "a list", dict: "an object", str: "text",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
