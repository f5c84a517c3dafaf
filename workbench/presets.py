"""YAML <-> Preset, and the preset library: built-ins (read-only, in presets/) and user
presets (in WORKBENCH_HOME/presets/). Only `yaml.safe_load`; names are checked so a
preset name can never point outside its folder."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import yaml

from workbench import paths
from workbench.config import Preset
from workbench.errors import PresetError

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise PresetError(f"preset name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def parse_yaml(text: str, where: str) -> Preset:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PresetError(f"{where}:{place}: invalid YAML: {problem}") from None
    return Preset.from_dict(raw, where)


def description(text: str) -> str:
    """The opening comment of a preset file, without '#'."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.lower().startswith("run it:"):  # the command line is not the description
            break
        lines.append(text)
    return " ".join(l for l in lines if l)


def builtin_names() -> list[str]:
    return sorted(p.stem for p in paths.builtin_presets_dir().glob("*.yaml"))


def user_names() -> list[str]:
    return sorted(p.stem for p in paths.user_presets_dir().glob("*.yaml"))


def list_presets() -> list[dict]:
    """[{name, kind: builtin|user, description, path}], built-ins first."""
    out = []
    for kind, folder, names in (("builtin", paths.builtin_presets_dir(), builtin_names()),
                                ("user", paths.user_presets_dir(), user_names())):
        for name in names:
            path = folder / f"{name}.yaml"
            out.append({"name": name, "kind": kind, "path": str(path),
                        "description": description(path.read_text(encoding="utf-8"))})
    return out


def find(name_or_path: str) -> Path:
    """A built-in name, a user preset name, or a path to a YAML file."""
    if NAME_RE.match(name_or_path) and not name_or_path.endswith((".yaml", ".yml")):
        for folder in (paths.user_presets_dir(), paths.builtin_presets_dir()):
            candidate = folder / f"{name_or_path}.yaml"
            if candidate.is_file():
                return candidate
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    known = ", ".join(builtin_names() + user_names())
    raise PresetError(f"preset {name_or_path!r} not found (known presets: {known}; or give "
                      "a path to a .yaml file)")


def load(name_or_path: str, overrides: list[str] | None = None) -> Preset:
    path = find(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PresetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    preset = parse_yaml(text, str(path))
    return preset.with_overrides(overrides) if overrides else preset


def to_yaml(preset: Preset, comment: str = "") -> str:
    head = "".join(f"# {line}\n" for line in comment.splitlines() if line.strip())
    body = yaml.safe_dump(preset.to_dict(), sort_keys=False, allow_unicode=True)
    return head + body


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(name: str, preset: Preset, comment: str = "", overwrite: bool = False) -> Path:
    """Save a user preset. Built-in names are refused (they are read-only)."""
    check_name(name)
    if name in builtin_names():
        raise PresetError(f"preset {name!r} is built in and read-only; save under a new name")
    path = paths.user_presets_dir() / f"{name}.yaml"
    if path.exists() and not overwrite:
        raise PresetError(f"user preset {name!r} already exists; choose another name")
    preset = Preset.from_dict(preset.to_dict())  # validate what we write
    atomic_write(path, to_yaml(preset, comment or f"{name}: saved from Workbench"))
    return path


def delete(name: str) -> None:
    check_name(name)
    if name in builtin_names():
        raise PresetError(f"preset {name!r} is built in and cannot be deleted")
    path = paths.user_presets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise PresetError(f"user preset {name!r} not found")
    path.unlink()
