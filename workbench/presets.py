"""YAML <-> Preset, and the preset library: built-ins (read-only, in presets/) and user
presets (in WORKBENCH_HOME/presets/). Only a safe loader (`config.load_yaml`, with limits
on size, nesting, numbers and aliases); names are checked so a preset name can never point
outside its folder. Every way a preset file can be wrong ends in one PresetError line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from workbench import fsio, paths
from workbench.config import YAML_MAX_CHARS, Preset, load_yaml
from workbench.errors import PresetError, path_text, plain, printable, shown

# \A...\Z, not ^...$: "name\n" must not pass (`$` matches before a final newline)
NAME_RE = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")


def _is_name(name) -> bool:
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def check_name(name: str) -> str:
    if not _is_name(name) or name in (".", ".."):
        raise PresetError(f"preset name {shown(name)}: use 1-64 letters, digits, '.', '_' "
                          "or '-'")
    return name


def parse_yaml(text: str, where: str) -> Preset:
    """A preset from YAML text; `where` (a file name) opens every error message."""
    where = path_text(where, 120)
    raw = load_yaml(text, where)
    if raw is None:  # nothing but comments or blanks: not the default preset by accident
        raise PresetError(f"{where}: empty preset file; write at least one section (model, "
                          "data, quantization, lora, train, generation) or `{}` for the "
                          "defaults")
    return Preset.from_dict(raw, where)


def description(text: str) -> str:
    """The opening comment of a preset file, without '#' (control characters escaped)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.lower().startswith("run it:"):  # the command line is not the description
            break
        lines.append(text)
    return printable(" ".join(l for l in lines if l))


def _names(folder: Path) -> list[str]:
    """Preset names in a folder: regular *.yaml files whose stem is a valid name."""
    return sorted(p.stem for p in folder.glob("*.yaml") if _is_name(p.stem) and p.is_file())


def builtin_names() -> list[str]:
    return _names(paths.builtin_presets_dir())


def user_names() -> list[str]:
    return _names(paths.user_presets_dir(create=False))


def _head(path: Path) -> str:
    """The first few KB of a preset file as text, for its description; '' if unreadable."""
    try:
        with paths.open_regular(path, str(path), PresetError) as fh:
            return fh.read(8192).decode("utf-8", errors="replace")
    except (OSError, PresetError):
        return ""


def list_presets() -> list[dict]:
    """[{name, kind: builtin|user, description, path}], built-ins first."""
    out = []
    for kind, folder, names in (("builtin", paths.builtin_presets_dir(), builtin_names()),
                                ("user", paths.user_presets_dir(create=False),
                                 user_names())):
        for name in names:
            path = folder / f"{name}.yaml"
            out.append({"name": name, "kind": kind, "path": str(path),
                        "description": description(_head(path))})
    return out


def find(name_or_path: str, *, names_only: bool = False) -> Path:
    """A built-in name, a user preset name, or a path to a YAML file. `names_only` (what
    comes from a request: the script API, a page): a name, never a path, so a request
    cannot make the app read a file of its choosing."""
    if not isinstance(name_or_path, str):
        raise PresetError(f"preset {shown(name_or_path)}: expected a name or a path")
    if _is_name(name_or_path) and not name_or_path.endswith((".yaml", ".yml")):
        for folder in (paths.user_presets_dir(create=False), paths.builtin_presets_dir()):
            candidate = folder / f"{name_or_path}.yaml"
            if candidate.is_file():
                return candidate
    if names_only:
        raise PresetError(f"preset {shown(name_or_path)} not found; give the name of a "
                          f"preset (known presets: {_known()})")
    path = paths.expand(name_or_path, PresetError)
    st = paths.file_stat(path, name_or_path, PresetError)
    if st is not None:
        why = paths.not_regular(st)
        if why:
            raise PresetError(f"preset {path_text(name_or_path)}: {why}")
        return path
    known = _known()
    raise PresetError(f"preset {shown(name_or_path)} not found (known presets: {known}; or "
                      "give a path to a .yaml file)")


def _known(limit: int = 8) -> str:
    names = builtin_names() + user_names()
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(plain(n) for n in names[:limit]) + more


def load(name_or_path: str, overrides: list[str] | None = None, *,
         names_only: bool = False) -> Preset:
    """The preset a name or path names (`find`), with `section.key=value` overrides."""
    path = find(name_or_path, names_only=names_only)
    where = path_text(path, 120)
    try:
        with paths.open_regular(path, str(path), PresetError, max_bytes=YAML_MAX_CHARS,
                                what="preset file") as fh:
            data = fh.read()
    except OSError as exc:
        raise PresetError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PresetError(f"{where}: not UTF-8 text (byte {exc.start}); save it as "
                          "UTF-8") from None
    if text.startswith("\ufeff"):  # a BOM from Notepad
        text = text[1:]
    preset = parse_yaml(text, str(path))
    return preset.with_overrides(overrides) if overrides else preset


def to_yaml(preset: Preset, comment: str = "") -> str:
    head = "".join(f"# {line}\n" for line in comment.splitlines() if line.strip())
    body = yaml.safe_dump(preset.to_dict(), sort_keys=False, allow_unicode=True)
    return head + body


def atomic_write(path: Path, text: str) -> None:
    """A preset file written whole and durably (fsio.atomic_write)."""
    fsio.atomic_write(path, text)


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
