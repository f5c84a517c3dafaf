"""Preset fields <-> Gradio widgets, generated from the field metadata in config.py.

One rule picks the widget for a field (checkbox for a bool, dropdown for choices, slider for
a short numeric range, number box for a long one or a nullable number, never a textbox for
a number), so the page, the YAML and the CLI cannot drift apart. `to_preset()` turns the
widget values back into a validated Preset; `from_preset()` gives the values to show.

Also here: `guard`, which turns any exception in a handler into a readable, escaped
message without a traceback or a server path, so the page keeps working.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import os
import re
import threading
import traceback
from pathlib import Path

import gradio as gr
import yaml

from workbench import config, paths
from workbench.config import ALL_LINEAR, Preset, field_path_meta, iter_fields
from workbench.errors import PresetError, WorkbenchError
from workbench.ui.i18n import field_keys, t

log = logging.getLogger("workbench.ui")

# A slider with more positions than this is hard to drag, and a value typed into its box
# past the range is clamped without a word (LoRA rank 5000 became 1024): a number box
# instead, whose value the Preset check names ("lora.r: 5000 is out of range; ...").
MAX_SLIDER_POSITIONS = 100


def field(dotted: str, **overrides):
    """The widget for one Preset field; `overrides` replace constructor arguments."""
    section, key = dotted.split(".", 1)
    meta = field_path_meta(section, key)
    kind, kwargs = widget_spec(dotted, meta)
    if overrides.get("kind", kind) != kind:  # another widget: keep only the value
        kind, kwargs = overrides["kind"], {"value": kwargs.get("value")}
    overrides.pop("kind", None)
    kwargs.update(label=t(dotted), info=t(dotted + ".help"), elem_id=_elem_id(dotted))
    kwargs.update(overrides)
    return getattr(gr, kind)(**kwargs)


def widget_spec(dotted: str, meta: dict) -> tuple[str, dict]:
    """(Gradio class name, constructor kwargs) for a field: the rule, testable alone."""
    kind, default = meta["type"], meta["default"]
    if config.is_switch(meta):  # auto / on / off
        return "Dropdown", {"choices": list(config.SWITCH), "value": config.to_switch(default)}
    if kind == "bool":
        return "Checkbox", {"value": default}
    if meta.get("choices"):
        return "Dropdown", {"choices": list(meta["choices"]), "value": default}
    if kind in ("int", "float"):
        lo, hi, step = meta.get("min"), meta.get("max"), meta.get("step")
        positions = (hi - lo) / step if None not in (lo, hi, step) and step else None
        if positions is not None and positions <= MAX_SLIDER_POSITIONS and not meta.get("nullable"):
            return "Slider", {"minimum": lo, "maximum": hi, "step": step, "value": default}
        # no minimum/maximum on a number box: Gradio's own message for them ("Value 0 is
        # less than minimum value 1.") names no field. The Preset check does, when the
        # value is used (Start, Save, Dry run), beside the button that used it; a
        # nullable number's empty box reaches the server as 0 (to_preset: 0 -> None)
        spec = {"value": default, "precision": 0 if kind == "int" else None}
        if step:
            spec["step"] = step
        return "Number", spec
    if dotted == "lora.target_modules":
        value = to_target_list(default)
        return "Dropdown", {"choices": [ALL_LINEAR], "value": value, "multiselect": True,
                            "allow_custom_value": True}
    if kind == "dict":
        return "Textbox", {"value": dict_to_text(default), "lines": 1,
                           "placeholder": "{key: value}"}
    if kind == "list":  # data.mix: a YAML list of {path, fraction}
        return "Textbox", {"value": list_to_text(default), "lines": 1,
                           "placeholder": "[{path: data/general_mix.jsonl, fraction: 0.5}]"}
    return "Textbox", {"value": default, "lines": 1}


def _elem_id(dotted: str) -> str:
    return "f-" + dotted.replace(".", "-").replace("_", "-")


# -- conversions between widget values and Preset values ------------------------------

def _one_line(value) -> str:
    """A mapping or list as one line of YAML ("" when empty)."""
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True,
                          sort_keys=False, width=10_000).strip() if value else ""


def dict_to_text(value: dict | None) -> str:
    return _one_line(dict(value or {}))


def text_to_dict(text: str | None, dotted: str) -> dict:
    if text is None or not str(text).strip():
        return {}
    try:
        value = yaml.safe_load(str(text))
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise PresetError(f"{dotted}: expected a mapping like {{output: answer}}, got "
                          f"{str(text)[:80]!r}")
    return value


def list_to_text(value: list | None) -> str:
    return _one_line(list(value or []))


def text_to_list(text, dotted: str) -> list:
    """A list field's YAML text -> the list (empty: []); the Preset check names a bad item."""
    if isinstance(text, list) or text is None or not str(text).strip():
        return text if isinstance(text, list) else []
    try:
        value = yaml.safe_load(str(text))
    except yaml.YAMLError:
        raise PresetError(f"{dotted}: expected a list like [{{path: data/general_mix.jsonl, "
                          f"fraction: 0.5}}], got {str(text)[:80]!r}") from None
    return value if isinstance(value, list) else [value]


def to_target_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def from_target_list(value) -> str | list[str]:
    chosen = [v for v in to_target_list(value) if v]
    if not chosen:
        raise PresetError("lora.target_modules: choose at least one layer, or all-linear")
    if ALL_LINEAR in chosen:
        return ALL_LINEAR  # it already includes every named layer
    return chosen


def to_preset(values, keys: list[str] | None = None) -> Preset:
    """Widget values (in `keys` order, default: every field in config order) -> Preset."""
    keys = keys or field_keys()
    if len(values) != len(keys):
        raise ValueError(f"expected {len(keys)} values, got {len(values)}")
    data: dict[str, dict] = {}
    for dotted, value in zip(keys, values):
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = _to_field_value(dotted, value)
    return Preset.from_dict(data, where="page")


def to_section(section: str, values: dict):
    """{key: widget value} of one section -> that section's validated config object."""
    data = {k: _to_field_value(f"{section}.{k}", v) for k, v in values.items()}
    return getattr(Preset.from_dict({section: data}, where="page"), section)


def _to_field_value(dotted: str, value):
    section, key = dotted.split(".", 1)
    kind = field_path_meta(section, key)["type"]
    if dotted == "lora.target_modules":
        return from_target_list(value)
    if kind == "dict":
        return text_to_dict(value, dotted)
    if kind == "list":
        return text_to_list(value, dotted)
    if kind in ("int", "float") and isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            raise PresetError(f"{dotted}: expected a number, got {value!r}") from None
    meta = field_path_meta(section, key)
    if meta.get("nullable") and value in (None, 0) and (meta.get("min") or 0) > 0:
        return None  # "empty = no limit"; 0 is what an emptied number box sends
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "str" and value is None:
        return ""
    return value


def from_preset(preset: Preset, keys: list[str] | None = None) -> list:
    """The widget values that show `preset`, in `keys` order."""
    data = preset.to_dict()
    out = []
    for dotted in keys or field_keys():
        section, key = dotted.split(".", 1)
        value = data[section][key]
        if dotted == "lora.target_modules":
            value = to_target_list(value)
        elif config.is_switch(field_path_meta(section, key)):
            value = config.to_switch(value)
        elif isinstance(value, dict):
            value = dict_to_text(value)
        elif isinstance(value, list):
            value = list_to_text(value)
        out.append(value)
    return out


def section_keys(section: str) -> list[str]:
    return [f"{s}.{k}" for s, k, _ in iter_fields() if s == section]


# -- errors -----------------------------------------------------------------------------

# a server path; not the rest of a Windows path the user typed (C:/Users/ada/faq.xlsx)
_ABS_PATH = re.compile(r"(?<![\w.~<>-])(?<![A-Za-z]:)/(?:[^\s/'\"():,;]+/)+"
                       r"([^\s/'\"():,;]*)")


def clean_message(message: str) -> str:
    """Drop server paths from a message: WORKBENCH_HOME and the project folder become
    short names, any other absolute path keeps only its last part."""
    text = str(message)
    replacements = []
    try:
        replacements.append((str(paths.home()), "WORKBENCH_HOME"))
    except OSError:
        pass
    replacements.append((str(paths.PROJECT_ROOT) + os.sep, ""))
    replacements.append((str(paths.PROJECT_ROOT), "."))
    replacements.append((str(Path.home()), "~"))
    for old, new in sorted(replacements, key=lambda r: -len(r[0])):
        if old and old not in ("/", "."):
            text = text.replace(old, new)
    return _ABS_PATH.sub(lambda mt: mt.group(1) or "…", text)


def error_text(exc: BaseException) -> str:
    """The message a user sees for an exception: theirs to fix, or a short bug note."""
    if isinstance(exc, WorkbenchError):
        msg = str(exc)
    elif isinstance(exc, gr.Error):
        return str(exc.message)
    else:
        msg = f"unexpected {type(exc).__name__}: {exc}"
    return html.escape(clean_message(msg).strip() or type(exc).__name__)


def _log_if_bug(exc: BaseException, fn_name: str) -> None:
    """A bug (not the user's to fix): the full story goes to the server log, not the page."""
    if not isinstance(exc, (WorkbenchError, gr.Error)):
        log.error("handler %s failed:\n%s", fn_name, traceback.format_exc())


def _raise_readable(exc: BaseException, fn_name: str):
    if isinstance(exc, gr.Error):
        raise exc
    _log_if_bug(exc, fn_name)
    raise gr.Error(error_text(exc), duration=20, print_exception=False) from None


# The app imports transformers in the background right after it starts (server.py).
# Handlers wait for that instead of importing it themselves: transformers' lazy module
# is not safe to import from several handler threads at once on page load ("cannot
# import name 'AutoConfig'").
HEAVY_IMPORTS_STARTED = threading.Event()
HEAVY_IMPORTS_DONE = threading.Event()


def warm_heavy_imports() -> None:
    HEAVY_IMPORTS_STARTED.set()
    try:
        import transformers  # noqa: F401
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    except Exception:  # noqa: BLE001 - a handler that needs it will say what is wrong
        pass
    finally:
        HEAVY_IMPORTS_DONE.set()


def _wait_for_imports() -> None:
    if HEAVY_IMPORTS_STARTED.is_set():
        HEAVY_IMPORTS_DONE.wait(120)


def guard(fn):
    """Decorate a handler so every error reaches the page as a readable message."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            _wait_for_imports()
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - turned into a message
                _raise_readable(exc, fn.__name__)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _wait_for_imports()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - turned into a message
            _raise_readable(exc, fn.__name__)
    return wrapper


# -- page handlers whose errors stay on the page ------------------------------------------

def error_markup(text: str) -> str:
    """An error as it stays on the page, beside the control that caused it."""
    return f'<div class="wb-error" role="alert">⚠ {text}</div>'


def on(triggers, fn, inputs, outputs, notice, **kwargs):
    """Wire a page handler so that its errors never blank its outputs.

    Gradio marks every output of a handler that raises with an "Error" badge (a selector
    or a chat pane shows "Error" instead of its value) and says why only in a toast that
    vanishes. Here a failing handler changes nothing but `notice`, a Markdown beside the
    control, where the reason stays (escaped, no server paths) until the next action;
    the toast is extra. A successful call clears `notice` unless the handler fills it
    itself (`notice` among `outputs`). `triggers`: an event listener, a list of them, or
    an event (its .then). Returns the event, for .then() chains."""
    handler, wired = keep_page(fn, outputs, notice)
    kwargs.setdefault("api_visibility", "private")
    if hasattr(triggers, "then"):  # an event: run after it
        return triggers.then(handler, inputs, wired, **kwargs)
    triggers = triggers if isinstance(triggers, (list, tuple)) else [triggers]
    return gr.on(triggers, handler, inputs, wired, **kwargs)


def keep_page(fn, outputs, notice):
    """(handler, its outputs) for `on`: errors go to `notice` only."""
    outputs = list(outputs)
    own = any(o is notice for o in outputs)
    wired = outputs if own else [*outputs, notice]
    single = len(outputs) == 1

    def shape(result, first: bool):
        # a {component: value} result (not a gr.update(), which is a dict too)
        by_component = isinstance(result, dict) and bool(result) and not any(
            isinstance(k, str) for k in result)
        if own or by_component:
            if by_component and not own:
                result = {**result, notice: "" if first else gr.skip()}
            return result
        values = (result,) if single else tuple(result)
        return (*values, "" if first else gr.skip())

    def failed(exc: BaseException) -> dict:
        _log_if_bug(exc, fn.__name__)
        text = error_text(exc)
        gr.Warning(text, duration=10)
        return {notice: error_markup(text)}

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def handler(*args):
            _wait_for_imports()
            first = True
            try:
                for result in fn(*args):
                    yield shape(result, first)
                    first = False
            except Exception as exc:  # noqa: BLE001 - shown beside the control
                yield failed(exc)
    else:
        @functools.wraps(fn)
        def handler(*args):
            _wait_for_imports()
            try:
                return shape(fn(*args), True)
            except Exception as exc:  # noqa: BLE001 - shown beside the control
                return failed(exc)
    return handler, wired


# A number box is an <input type=number>: the browser drops a decimal comma without a word
# (typed "0,0002" arrives as 2 after "00002"). This page script turns a typed or pasted
# decimal comma into a point, so "0,0002" means 0.0002 as its writer meant.
NUMBER_SCRIPT = """<script>
(() => {
  const isNumberBox = (el) => el instanceof HTMLInputElement && el.type === "number";
  document.addEventListener("keydown", (e) => {
    if (e.key !== "," || !isNumberBox(e.target)) return;
    e.preventDefault();
    document.execCommand("insertText", false, ".");
  }, true);
  document.addEventListener("paste", (e) => {
    if (!isNumberBox(e.target)) return;
    const text = (e.clipboardData || window.clipboardData).getData("text").trim();
    if (!/^[-+]?\\d*,\\d+(e[-+]?\\d+)?$/i.test(text)) return;
    e.preventDefault();
    document.execCommand("insertText", false, text.replace(",", "."));
  }, true);
})();
</script>"""
