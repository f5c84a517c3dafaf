"""One family of user-facing errors, and the helpers that keep their messages one line.

Anything a user can fix (a bad preset, a broken data file, a missing model) raises a
subclass of `WorkbenchError` with a message that says what and where. The CLI prints it as
one `error: ...` line and exits 2; the UI shows it as a message. Anything else is a bug.

A message is always one line of at most MAX_MESSAGE characters: `str(error)` escapes
control characters (newlines, escape codes, lone surrogates) and cuts a longer message
with "…". Values echoed from user input go through `shown` (a short, escaped repr),
names and paths through `plain` and `path_text`, so a data file cannot print a second
line that looks like another `error:` line, and one huge value cannot crowd out the place
and the fix.
"""

from __future__ import annotations

import re
import reprlib

MAX_MESSAGE = 300     # characters in one error message, "…" included
ELLIPSIS = "…"

# C0 and C1 controls, DEL, line and paragraph separators, bidirectional overrides and
# isolates, the BOM and lone surrogates: anything that moves the cursor, starts a line,
# reorders text or cannot be encoded
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e"
                     "\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class WorkbenchError(Exception):
    """An error the user can fix; the message names the file, field or value."""

    def __str__(self) -> str:
        return one_line(super().__str__())


class PresetError(WorkbenchError):
    """A preset (YAML or override) is invalid: unknown key, wrong type, out of range."""


class DataError(WorkbenchError):
    """A dataset file cannot be read or normalised."""


class ModelError(WorkbenchError):
    """A model cannot be found, imported or loaded."""


class RunError(WorkbenchError):
    """A run folder is missing, busy or in the wrong state for what was asked."""


# -- making text safe to echo -------------------------------------------------------------

def _escape(m: re.Match) -> str:
    c = m.group(0)
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def printable(text: str) -> str:
    """`text` with control characters, line breaks and lone surrogates escaped (\\n,
    \\x1b, \\ud800), everything else as it is."""
    return _UNSAFE.sub(_escape, text)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the last one "…" when anything was cut."""
    return text if len(text) <= limit else text[:max(0, limit - 1)] + ELLIPSIS


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """A message as one printable line of at most `limit` characters."""
    return clip(printable(str(text).strip()), limit)


def plain(value, limit: int = 80) -> str:
    """A name (a column, a key, a file name) as escaped text without quotes, cut at
    `limit` characters."""
    return clip(printable(value if isinstance(value, str) else shown(value, limit)), limit)


def path_text(path, limit: int = 80) -> str:
    """A path as escaped text; a long one keeps its end (the file name): "…/data/x.jsonl"."""
    text = printable(str(path))
    return text if len(text) <= limit else ELLIPSIS + text[len(text) - limit + 1:]


class _Repr(reprlib.Repr):
    """reprlib with limits on nesting, lengths and digits: never raises, never recurses
    deeper than `maxlevel`, never prints a huge number in full."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 2, 60, 60, 40
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 6

    def repr_int(self, x, level):
        if x.bit_length() > 128:
            return f"<a number of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)

    def repr_instance(self, x, level):
        try:
            return clip(repr(x), self.maxother)
        except Exception:
            return f"<{type(x).__name__}>"


_REPR = _Repr()


def shown(value, limit: int = 60) -> str:
    """A value echoed in a message: a short escaped repr ('text', 42, [1, 2, ...])."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a value whose repr breaks: name its type
        text = f"<{type(value).__name__}>"
    return clip(printable(text), limit)


def describe(exc: BaseException, limit: int = 120) -> str:
    """A library's exception as a short clause: its first non-empty line, escaped."""
    lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
    text = lines[0] if lines else type(exc).__name__
    if isinstance(exc, RecursionError):
        text = "nested too deeply"
    return clip(printable(text), limit)


def error_line(exc: BaseException) -> str:
    """The one line the command line prints for a user error: `error: ...`."""
    return one_line(f"error: {exc}")
