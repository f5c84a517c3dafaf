"""The Training tab's log box: the tail of a run's train.log as a person reads it.

The run's train.log keeps everything the trainer printed; the page shows it without the
library warnings, with the trainer's metric dicts as plain lines and each progress bar
as "what: n/total" (the progress box above it draws the bar itself).
"""

from __future__ import annotations

import html
import re

from workbench.ui.i18n import m

_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")
_BAR = re.compile(r"^\s*(?:(?P<what>.*?):\s*)?\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\b")
_METRIC = re.compile(r"^\s*(\{'[a-z_]+': .*\})\s*$")
METRIC_NAMES = {"loss": "loss", "eval_loss": "eval loss", "learning_rate": "learning rate",
                "epoch": "epoch", "train_loss": "average loss", "train_runtime": "seconds"}


def readable_log(text: str) -> str:
    """train.log's last lines for the page: library warnings (and their indented source
    line) left out, {'loss': '1.2', ...} as "loss 1.2 · learning rate 0.0002 · epoch 0.5",
    a progress bar as "Tokenizing train dataset: 65/65"; a bar without a name only when it
    is the last line (where the run is now)."""
    import ast
    lines = text.split("\n")
    out, in_warning = [], False
    for i, line in enumerate(lines):
        if _WARNING.match(line):
            in_warning = True
            continue
        if in_warning and line[:1].isspace():
            continue
        in_warning = False
        if not line.strip():  # what a progress bar left when it cleared itself
            continue
        metric = _METRIC.match(line)
        if metric:
            try:
                values = ast.literal_eval(metric.group(1))
            except (ValueError, SyntaxError):
                values = None
            if isinstance(values, dict):
                shown = [f"{METRIC_NAMES[k]} {_short(k, v)}" for k, v in values.items()
                         if k in METRIC_NAMES]
                if shown:
                    out.append(" · ".join(shown))
                continue
        bar = _BAR.match(line)
        if bar:
            what = (bar.group("what") or "").strip()
            if what:
                out.append(f"{what}: {bar.group('n')}/{bar.group('total')}")
            elif i == len(lines) - 1 or not any(x.strip() for x in lines[i + 1:]):
                out.append(f"step {bar.group('n')}/{bar.group('total')}")
            continue
        out.append(line)
    return "\n".join(out)


def _short(key: str, value) -> str:
    if key == "epoch":
        try:
            return f"{float(value):.2f}"
        except (TypeError, ValueError):
            pass
    return str(value)


def log_html(text: str) -> str:
    """The log's last lines in a box of their own (the poll writes it in place, scrolled to
    the end unless the reader scrolled up)."""
    return (f"<div class='wb-log-label'>{m('train.log')}</div>"
            f"<pre class='wb-log-text'>{html.escape(text)}</pre>")
