"""Dataset files -> raw rows: the readers behind workbench.data.

`resolve_files("a.jsonl,b.csv")` checks every listed file before any is read;
`read_rows(path, name, on_bytes)` yields (place, raw row) one row at a time, where place is
what an error message names ("row 7 (line 9)"), and tells `on_bytes(offset)` how far into the
file it is (for progress bars). Text is decoded from bytes line by line, so a bad byte is
reported by its offset in the file and a large .jsonl is read with bounded memory (a .json
array is parsed whole: use .jsonl for files of hundreds of MB).

This is the boundary for data files (issue 13): whatever a file holds, reading it yields
rows or raises one DataError line naming the file and the place. Only regular files are
opened (a FIFO would block forever); JSON is parsed by `parse_json`, which refuses nesting
deeper than MAX_DEPTH, numbers longer than config.MAX_NUMBER_DIGITS and floats that overflow
(1e400) before they become objects; a line may be at most MAX_LINE_BYTES and a .json file at
most JSON_MAX_BYTES; any other failure while reading (a damaged Parquet page, a library
error) is reported with the last place read.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from workbench import paths
from workbench.config import MAX_NUMBER_DIGITS
from workbench.errors import DataError, WorkbenchError, clip, describe, path_text, plain

SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
MAX_DEPTH = 100                  # nested lists and objects in one row (JSON, Parquet)
MAX_LINE_BYTES = 256 * 2**20     # one line of a .jsonl or .csv file
JSON_MAX_BYTES = 2**30           # a .json array is parsed whole
OnBytes = Callable[[int], None] | None


def _ignore(offset: int) -> None:
    pass


def resolve_files(spec: str) -> list[tuple[str, Path]]:
    if not isinstance(spec, str):
        raise DataError(f"data.path: expected a file name, got {kind(spec)}")
    whole = paths.resolve_data_path(spec, DataError) if spec.strip() else None
    names = [spec] if whole is not None and paths.exists(whole) else [
        s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise DataError("data.path is empty: choose a dataset file (.json, .jsonl, .csv, "
                        ".parquet)")
    out = []
    for name in names:
        path = paths.resolve_data_path(name, DataError)
        shown_name = path_text(name)
        # a file of a kind we never read says so first, found or not (faq.xlsx)
        if path.suffix and path.suffix.lower() not in SUFFIXES:
            raise DataError(unsupported_type(shown_name, path.suffix))
        st = paths.file_stat(path, name, DataError)
        if st is None:
            raise DataError(f"{shown_name}: file not found (looked in "
                            f"{path_text(Path.cwd(), 60)} and {path_text(paths.PROJECT_ROOT, 60)})")
        why = paths.not_regular(st)
        if why:
            raise DataError(f"{shown_name}: {why}")
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(unsupported_type(shown_name, path.suffix))
        out.append((name, path))
    return out


EXCEL_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".xlsb", ".ods", ".numbers")


def unsupported_type(shown_name: str, suffix: str) -> str:
    """The message for a file Workbench does not read, with what to do instead."""
    if suffix.lower() in EXCEL_SUFFIXES:
        return (f"{shown_name}: spreadsheet files ({plain(suffix.lower(), 20)}) are not read; "
                "save it as CSV (File → Save as → CSV) or use .jsonl, .json or .parquet")
    return (f"{shown_name}: unsupported file type {plain(suffix, 20) or '(none)'!r}; use "
            ".json, .jsonl, .csv or .parquet")


# -- JSON within limits --------------------------------------------------------------------

_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise DataError(f"a number of {len(text):,} digits; numbers are limited to "
                        f"{MAX_NUMBER_DIGITS} digits")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise DataError(f"a number of {len(text):,} characters; numbers are limited to "
                        f"{MAX_NUMBER_DIGITS} digits")
    value = float(text)
    if math.isinf(value):
        raise DataError(f"the number {clip(text, 24)} is too large (at most about 1.8e308)")
    return value


def parse_json(text: str, where: str) -> Any:
    """json.loads within the limits: nesting deeper than MAX_DEPTH, numbers longer than
    MAX_NUMBER_DIGITS and floats past 1.8e308 raise DataError("{where}: ..."); bad syntax
    raises json.JSONDecodeError for the caller to place."""
    if text.count("[") + text.count("{") > MAX_DEPTH:  # only then can it be too deep
        depth = 0
        for m in _STRING_OR_BRACKET.finditer(text):
            c = m.group()
            if c == "[" or c == "{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise DataError(f"{where}: nested more than {MAX_DEPTH} levels deep "
                                    "(lists and objects inside each other); flatten it")
            elif c == "]" or c == "}":
                depth -= 1
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    except RecursionError:
        raise DataError(f"{where}: nested more than {MAX_DEPTH} levels deep") from None


# -- readers: (place, raw row) iterators ------------------------------------------------

def _utf8_lines(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[int, str]]:
    """Decode line by line from bytes, so a bad byte is reported by its offset in the file."""
    on_bytes = on_bytes or _ignore
    offset = 0
    with paths.open_regular(path, name, DataError) as fh:
        line_no = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            line_no += 1
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{name}: line {line_no} is longer than "
                                f"{MAX_LINE_BYTES // 2**20} MB; split the row or the file")
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
            value = parse_json(text, f"{name}: line {line_no}")
        except json.JSONDecodeError as e:
            hint = (" (this looks like one JSON array: name the file .json)"
                    if row == 1 and text.lstrip().startswith("[") else "")
            raise DataError(f"{name}: line {line_no}, column {e.colno}: invalid JSON "
                            f"({e.msg}){hint}") from None
        yield f"row {row} (line {line_no})", value


def _read_json(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    with paths.open_regular(path, name, DataError, max_bytes=JSON_MAX_BYTES,
                            what=".json file (parsed whole; use .jsonl for more)") as fh:
        raw = fh.read()
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
        value = parse_json(text, name)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip().startswith("{"):
            yield from _read_jsonl(path, name, on_bytes)  # one object per line in a .json file
            return
        raise DataError(f"{name}: line {e.lineno}, column {e.colno}: invalid JSON "
                        f"({e.msg})") from None
    if isinstance(value, dict):
        raise DataError(f"{name}: expected a JSON array of rows [{{...}}, ...] or one object "
                        f"per line, got a single object with keys: {names_text(value)}")
    if not isinstance(value, list):
        raise DataError(f"{name}: expected a JSON array of rows, got {kind(value)}")
    size = len(raw)
    del raw, text  # the generator would hold both for as long as its rows are read
    for i, item in enumerate(value, 1):
        if on_bytes:  # parsed whole: progress in proportion to the rows
            on_bytes(size * i // len(value))
        yield f"row {i}", item


def _read_csv(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    csv.field_size_limit(MAX_LINE_BYTES)  # long answers exceed the 128 KB default
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
        raise DataError(f"{name}: line {reader.line_num}: cannot read CSV "
                        f"({describe(e)})") from None


def _read_parquet(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{name}: reading .parquet files needs the pyarrow package "
                        "(pip install pyarrow)") from None
    try:
        pf = pq.ParquetFile(path)
        depth = _type_depth(pf.schema_arrow)
        total = max(1, pf.metadata.num_rows)
        batches = pf.iter_batches(batch_size=1024)
    except Exception as e:  # pyarrow raises ArrowInvalid & co. for a broken file
        raise DataError(f"{name}: not a readable Parquet file ({describe(e)})") from None
    if depth > MAX_DEPTH:
        raise DataError(f"{name}: columns nested more than {MAX_DEPTH} levels deep (lists "
                        "and structs inside each other); flatten them")
    size, row = path.stat().st_size, 0
    while True:
        # the footer was fine, but a page can still be damaged: guard every read
        try:
            batch = next(batches, None)
            items = batch.to_pylist() if batch is not None else []
        except Exception as e:
            at = f"row {row + 1} onwards" if row else "its rows"
            raise DataError(f"{name}: cannot read {at}: damaged Parquet data "
                            f"({describe(e)})") from None
        if batch is None:
            return
        for item in items:
            row += 1
            yield f"row {row}", item
        if on_bytes:  # compressed columns: progress in proportion to the rows
            on_bytes(size * row // total)


def _type_depth(schema) -> int:
    """How deep an Arrow schema nests (1 for flat columns), without recursion."""
    best, stack = 0, [(schema.field(i).type, 1) for i in range(len(schema))]
    while stack:
        t, d = stack.pop()
        best = max(best, d)
        if d <= MAX_DEPTH:
            stack += [(t.field(i).type, d + 1) for i in range(t.num_fields)]
    return best


_READERS = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv,
            ".parquet": _read_parquet}


def read_rows(path: Path, name: str, on_bytes: OnBytes = None) -> Iterator[tuple[str, Any]]:
    """(place, raw row) for each row of one file; `name` is how errors call the file;
    `on_bytes(offset)` hears how many bytes of the file are read so far. Any failure while
    reading is a DataError naming the file and the last place read."""
    shown_name = path_text(name)
    reader = _READERS.get(Path(path).suffix.lower())
    if reader is None:
        raise DataError(f"{shown_name}: unsupported file type; use .json, .jsonl, .csv or "
                        ".parquet")
    return _guarded(reader(Path(path), shown_name, on_bytes), shown_name)


def _guarded(rows: Iterator[tuple[str, Any]], name: str) -> Iterator[tuple[str, Any]]:
    where = None
    try:
        for where, raw in rows:
            yield where, raw
    except WorkbenchError:
        raise
    except Exception as exc:
        after = f" after {where}" if where else ""
        why = (exc.strerror if isinstance(exc, OSError) and exc.strerror
               else describe(exc))
        raise DataError(f"{name}: cannot read the file{after} ({why})") from None


def names_text(names, limit: int = 12) -> str:
    """Column or key names for a message: escaped, each cut short, at most `limit`."""
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (", ".join(plain(n, 40) for n in names[:limit]) or "none") + more


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {list: "a list", tuple: "a list", dict: "an object", str: "text",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
