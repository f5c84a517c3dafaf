"""Row normalisation behind workbench.data: one raw row (a dict of columns) of a detected
format -> {"messages": [{"role", "content"}, ...]} or {"text": str}, with errors that name
the place and field; placeholder filling; and why a row would be dropped.

Tests: python -m pytest tests/unit/test_data.py
"""

from __future__ import annotations

import json
import re
from typing import Any

from workbench.config import PLACEHOLDER_NAME
from workbench.data.files import kind, names_text, parse_json
from workbench.errors import DataError, describe, plain, shown

ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "function_call": "assistant", "system": "system", "tool": "tool",
         "observation": "tool"}
PLACEHOLDER = re.compile(r"\{\{\s*(" + PLACEHOLDER_NAME + r")\s*\}\}")
SURROGATE = re.compile("[\ud800-\udfff]")


# -- normalisation -----------------------------------------------------------------------

def normalise(fmt: str, raw: dict, cols: dict, at: str) -> dict:
    def get(role, required=False):
        col = cols.get(role, role)
        if required and col not in raw:
            mapped = f" (the {role} column)" if col != role else ""
            raise DataError(f"{at}: missing field '{plain(col)}'{mapped}")
        return raw.get(col)

    def label(role):
        return f"field '{plain(cols.get(role, role))}'"

    if fmt == "text":
        return {"text": _text(get("text", True), at, label("text"))}
    if fmt == "alpaca":
        msgs = []
        history = _maybe_json(get("history"), at, label("history"))
        if history is not None and history != "" and not isinstance(history, list):
            raise DataError(f"{at}: {label('history')} should be a list of [user, answer] "
                            f"pairs, got {kind(history)}")
        for j, pair in enumerate(history or [], 1):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise DataError(f"{at}: {label('history')} item {j} should be a [user, answer]"
                                f" pair, got {kind(pair)}")
            where = f"{label('history')} item {j}"
            msgs += [_msg("user", _text(pair[0], at, where)),
                     _msg("assistant", _text(pair[1], at, where))]
        prompt = [_text(get("instruction", True), at, label("instruction")),
                  _text(get("input"), at, label("input"))]
        msgs += [_msg("user", "\n\n".join(p for p in prompt if p.strip())),
                 _msg("assistant", _text(get("output", True), at, label("output")))]
    elif fmt in ("sharegpt", "messages"):
        role = "conversations" if fmt == "sharegpt" else "messages"
        msgs = _messages(get(role, True), at, label(role))
    else:  # prompt_completion: each side is text or a list of messages
        msgs = []
        for role, default in (("prompt", "user"), ("completion", "assistant")):
            value = _maybe_json(get(role, True), at, label(role))
            msgs += (_messages(value, at, label(role)) if isinstance(value, list)
                     else [_msg(default, _text(value, at, label(role)))])
    return {"messages": _with_system(msgs, _text(get("system"), at, label("system")),
                                     raw.get("tools"), at)}


def _with_system(msgs: list[dict], system: str, tools: Any, at: str = "row") -> list[dict]:
    """Top-level system text and tool specs go first in the system message: TRL would pass
    a `tools` column to the chat template, but SmolLM2's template ignores tools."""
    tools = _maybe_json(tools, at, "field 'tools'")
    parts = [system] if system.strip() else []
    if isinstance(tools, str):
        spec = tools
    elif isinstance(tools, (list, dict, int, float)):  # bool is an int
        try:
            spec = "" if tools == [] or tools == {} else json.dumps(tools, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise DataError(f"{at}: field 'tools' holds something JSON cannot write "
                            f"({describe(exc, 60)}); give the tool specs as JSON") from None
    elif tools is None:
        spec = ""
    else:  # bytes from a binary Parquet column, a date, ...
        raise DataError(f"{at}: field 'tools' should be a list of tool specs or JSON text, "
                        f"got {kind(tools)}")
    if spec:
        parts.append("You can call these tools:\n" + _text(spec, at, "field 'tools'"))
    if not parts:
        return msgs
    if msgs and msgs[0]["role"] == "system":
        parts.append(msgs[0]["content"])
        msgs = msgs[1:]
    return [_msg("system", "\n\n".join(parts))] + msgs


def _messages(items: Any, at: str, label: str) -> list[dict]:
    items = _maybe_json(items, at, label)
    if not isinstance(items, list):
        raise DataError(f"{at}: {label} should be a list of messages, got {kind(items)}")
    out = []
    for i, m in enumerate(items, 1):
        where = f"{label} item {i}"
        if not isinstance(m, dict):
            raise DataError(f'{at}: {where} should be an object like {{"role": "user", '
                            f'"content": "..."}}, got {kind(m)}')
        if "role" in m or "content" in m:
            role, content = m.get("role"), m.get("content")
        elif "from" in m or "value" in m:
            role, content = m.get("from"), m.get("value")
        else:
            raise DataError(f"{at}: {where} has neither role/content nor from/value "
                            f"(keys: {names_text(m)})")
        mapped = ROLES.get(role.strip().lower()) if isinstance(role, str) else None
        if mapped is None:
            raise DataError(f"{at}: {where}: unknown role {shown(role)} (expected one of "
                            f"{', '.join(ROLES)})")
        if isinstance(content, list) and all(isinstance(p, dict) for p in content):
            # multimodal-style parts: keep the text ones, refuse images & co.
            if any(p.get("type", "text") != "text" for p in content):
                raise DataError(f"{at}: {where}: only text content is supported")
            content = "".join(str(p.get("text") or "") for p in content)
        out.append(_msg(mapped, _text(content, at, f"{where} content")))
    return out


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def _text(value: Any, at: str, label: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return check_text(value, at, label)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a number is a fine answer ("42")
    raise DataError(f"{at}: {label} should be text, got {kind(value)}")


def check_text(value: str, at: str, label: str) -> str:
    """Text as it is, unless it holds a lone surrogate (a JSON "\\ud800" escape without its
    pair): not valid Unicode, so neither the tokenizer nor a terminal could take it."""
    if not value.isascii():
        bad = SURROGATE.search(value)
        if bad:
            raise DataError(f"{at}: {label} contains a lone surrogate "
                            f"\\u{ord(bad.group()):04x} at character {bad.start()}, which is "
                            "not valid Unicode; fix that \\u escape")
    return value


def _maybe_json(value: Any, at: str = "row", label: str = "field") -> Any:
    """CSV (and some Parquet) files store lists as JSON text; read those back as lists
    (within the JSON limits of files.parse_json)."""
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:
            parsed = parse_json(value, f"{at}: {label}")
        except json.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, (list, dict)) else value
    return value


def has_prompt(msgs: list[dict]) -> bool:
    return any(m["role"] in ("user", "tool") and m["content"].strip() for m in msgs)


def drop_reason(row: dict) -> str | None:
    """Why a normalised row teaches nothing, or None to keep it. Trailing turns after the
    last answer are trimmed in place (a question with no answer trains nothing)."""
    if "text" in row:
        return None if row["text"].strip() else "empty text"
    msgs = row["messages"]
    if not any(m["content"].strip() for m in msgs):
        return "empty row"
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None:
        return "no answer"
    del msgs[last + 1:]
    if not msgs[last]["content"].strip():
        return "empty answer"
    if not has_prompt(msgs[:last]):
        return "empty prompt"
    return None


def fill(value: Any, mapping: dict, unfilled: set) -> Any:
    """Replace {{name}} in every string; remember names that have no value."""
    if isinstance(value, str):
        if "{{" not in value:
            return value

        def sub(m):
            if m.group(1) in mapping:
                return str(mapping[m.group(1)])
            unfilled.add(m.group(1))
            return m.group(0)
        return PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [fill(v, mapping, unfilled) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, mapping, unfilled) for k, v in value.items()}
    return value
