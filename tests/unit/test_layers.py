"""The architecture, enforced (issue 10; docs/architecture.md draws it).

Walks the imports of every module under workbench/ with `ast` (nothing is imported, so
this takes milliseconds) and checks the rules:

1. a module imports only from its own layer or lower ones (LAYERS, lowest first); nothing
   in the core imports `cli/` or `ui/` (`ui/__main__.py` is an entry point, like launch.py);
2. across packages only public names: what a package's `__init__` lists in `__all__`
   (submodules it lists there are part of its public face), never a `_name`;
3. argparse only in `cli/`, gradio only in `ui/`;
4. no import circle among the core modules;
5. one spawn function: subprocess.Popen / subprocess.run only in `runs/jobs.py`;
6. no module over MAX_LINES lines without a reason written at its top ("Long because").

Each rule is checked by a function that takes the parsed tree, so the tests below also
feed it small fake trees and see it fail: a rule that cannot fail checks nothing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "workbench"
MAX_LINES = 400

# lowest first; a module may import from its own layer or any lower one. The longest
# matching prefix decides a module's layer.
LAYERS = [
    ["workbench.errors", "workbench.paths", "workbench.fsio", "workbench.units",
     "workbench.hardware", "workbench.votes"],
    ["workbench.config", "workbench.presets"],
    ["workbench.quant", "workbench.models", "workbench.runs"],
    ["workbench.data"],
    # measuring quantisation quality needs a loaded model and the data's eval split, so
    # quant.compare sits with training, above data, although it lives in quant/
    ["workbench.train", "workbench.quant.compare"],
    ["workbench.export", "workbench.chat", "workbench.evaluate"],
    ["workbench.promptset"],  # shapes evaluate() answers for the Chat tab
    ["workbench.cli", "workbench.ui"],
]
# the top layer's two halves do not import each other, with one exception: the `ui`
# command of the CLI starts the app
TOP_EXCEPTIONS = {("workbench.cli.ui", "workbench.ui")}
ENTRY_POINTS = {"workbench.ui.__main__"}
SPAWN_MODULE = "workbench.runs.jobs"


@dataclass
class Module:
    name: str            # dotted, e.g. workbench.train.loop
    path: Path
    tree: ast.Module
    lines: int
    imports: list = field(default_factory=list)   # (target module, imported name|None, line)


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(name: str, modules: dict) -> bool:
    m = modules.get(name)
    return m is not None and m.path.name == "__init__.py"


def collect(root: Path = ROOT) -> dict[str, Module]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = module_name(path, root)
        modules[name] = Module(name, path, ast.parse(text), text.count("\n") + 1)
    for mod in modules.values():
        mod.imports = list(imports_of(mod, modules))
    return modules


def imports_of(mod: Module, modules: dict):
    """(module imported, name imported from it or None, line) for every workbench import,
    top level or inside functions."""
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("workbench"):
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("workbench"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in modules:  # `from workbench.x import submodule`
                    yield sub, None, node.lineno
                    if node.module != "workbench":
                        yield node.module, alias.name, node.lineno
                else:
                    yield node.module, alias.name, node.lineno


def layer_of(name: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(f"{name}: not in any layer of LAYERS; add it")
    return best


def package_of(name: str, modules: dict) -> str:
    """The package a module belongs to: workbench.train.loop -> workbench.train;
    a top-level module is its own package (workbench.chat)."""
    parts = name.split(".")
    if len(parts) >= 2 and is_package(".".join(parts[:2]), modules):
        return ".".join(parts[:2])
    return name


def public_names(pkg: str, modules: dict) -> set[str] | None:
    """A package's __all__, or None when it has none."""
    m = modules.get(pkg)
    if m is None:
        return None
    for node in m.tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return None


# -- the rules: each returns a list of violations ------------------------------------

def layer_violations(modules: dict) -> list[str]:
    out = []
    for mod in modules.values():
        if mod.name in ENTRY_POINTS or mod.name == "workbench":
            continue
        mine = layer_of(mod.name)
        for target, _, line in mod.imports:
            if target == "workbench":
                continue
            theirs = layer_of(target)
            if theirs > mine:
                out.append(f"{mod.name}:{line} imports {target} (layer {theirs} > {mine})")
            elif theirs == mine == len(LAYERS) - 1:
                a, b = mod.name.split(".")[1], target.split(".")[1]
                if a != b and not any(mod.name == x and (target == y or target.startswith(y + "."))
                                      for x, y in TOP_EXCEPTIONS):
                    out.append(f"{mod.name}:{line} imports {target} (cli/ and ui/ stay apart)")
    return out


def private_violations(modules: dict) -> list[str]:
    out = []
    for mod in modules.values():
        own = package_of(mod.name, modules)
        for target, name, line in mod.imports:
            if target == "workbench":
                continue
            other = package_of(target, modules)
            if other == own:
                continue
            last = target.rsplit(".", 1)[-1]
            if last.startswith("_") and last != "__init__":
                out.append(f"{mod.name}:{line} imports private module {target}")
            if name is not None and name.startswith("_"):
                out.append(f"{mod.name}:{line} imports private name {target}.{name}")
            if target != other:
                # `from workbench.pkg import sub` or `from workbench.pkg.sub import x`: the
                # submodule must be public, named in pkg's __all__
                sub = target[len(other) + 1:].split(".")[0]
                allowed = public_names(other, modules)
                if allowed is not None and sub not in allowed:
                    out.append(f"{mod.name}:{line} reaches into {target}: {sub} not in "
                               f"{other}.__all__")
            elif name is not None and target == other and is_package(other, modules):
                allowed = public_names(other, modules)
                if allowed is not None and name not in allowed:
                    out.append(f"{mod.name}:{line} imports {other}.{name}: not in __all__")
        out += attribute_violations(mod, modules, own)
    return out


def attribute_violations(mod: Module, modules: dict, own: str) -> list[str]:
    """`from workbench import runs` ... `runs._private(...)`: a private attribute of a
    module of another package."""
    bound = {}
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "workbench") and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in modules:
                    bound[alias.asname or alias.name] = full
    out = []
    for node in ast.walk(mod.tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in bound and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            target = bound[node.value.id]
            if package_of(target, modules) != own:
                out.append(f"{mod.name}:{node.lineno} uses private {target}.{node.attr}")
    return out


def library_violations(modules: dict) -> list[str]:
    out = []
    for mod in modules.values():
        for node in ast.walk(mod.tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            for lib, home in (("argparse", "workbench.cli"), ("gradio", "workbench.ui")):
                if lib in names and not (mod.name == home or mod.name.startswith(home + ".")):
                    out.append(f"{mod.name}:{node.lineno} imports {lib} (only in {home}/)")
    return out


def spawn_violations(modules: dict) -> list[str]:
    out = []
    for mod in modules.values():
        if mod.name == SPAWN_MODULE:
            continue
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Attribute) and node.attr in ("Popen", "run", "call",
                                                                 "check_output", "check_call"):
                if isinstance(node.value, ast.Name) and node.value.id == "subprocess":
                    out.append(f"{mod.name}:{node.lineno} subprocess.{node.attr} (spawn "
                               f"through {SPAWN_MODULE})")
            if isinstance(node, ast.ImportFrom) and node.module == "subprocess":
                out.append(f"{mod.name}:{node.lineno} imports from subprocess")
    return out


def cycles(modules: dict) -> list[list[str]]:
    """Import circles among the core modules (module-level imports only: an import inside
    a function runs late and cannot deadlock, but is still checked by the layer rule)."""
    core = {n: m for n, m in modules.items()
            if n != "workbench" and layer_of(n) < len(LAYERS) - 1}
    graph = {n: set() for n in core}
    for n, m in core.items():
        for node in m.tree.body:
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[n] |= {t for t in targets if t in core and t != n}
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in graph[n]:
            if state.get(t) == 1:
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[n] = 2
    for n in graph:
        if n not in state:
            visit(n)
    return found


def size_violations(modules: dict) -> list[str]:
    out = []
    for mod in modules.values():
        if mod.lines > MAX_LINES:
            head = mod.path.read_text(encoding="utf-8")[:3000]
            if "Long because" not in head:
                out.append(f"{mod.name}: {mod.lines} lines, over {MAX_LINES} without a "
                           "'Long because' reason at its top")
    return out


# -- the tree as it is ------------------------------------------------------------------

@pytest.fixture(scope="module")
def modules():
    return collect()


def test_every_module_has_a_layer(modules):
    for name in modules:
        if name != "workbench":
            layer_of(name)


def test_imports_go_downwards(modules):
    assert layer_violations(modules) == []


def test_only_public_names_cross_packages(modules):
    assert private_violations(modules) == []


def test_argparse_in_cli_and_gradio_in_ui_only(modules):
    assert library_violations(modules) == []


def test_one_spawn_function(modules):
    assert spawn_violations(modules) == []


def test_no_import_circle_in_the_core(modules):
    assert cycles(modules) == []


def test_no_overlong_module_without_a_reason(modules):
    assert size_violations(modules) == []


# -- each rule fails on a violation (fake trees) ----------------------------------------

def fake(tmp_path, files: dict[str, str]) -> dict:
    root = tmp_path / "workbench"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return collect(root)


def test_rules_catch_violations(tmp_path):
    mods = fake(tmp_path, {
        "__init__.py": "",
        "paths.py": "from workbench.train import loop\n",               # downward import
        "runs/__init__.py": "__all__ = ['find']\nfrom workbench.runs import jobs\n",
        "runs/jobs.py": "import subprocess\nsubprocess.Popen(['x'])\n",
        "runs/_secret.py": "",
        "train/__init__.py": "__all__ = ['train']\n",
        "train/loop.py": ("from workbench.runs import _secret\n"         # private module
                          "from workbench.runs import jobs\n"            # not in __all__
                          "from workbench import runs\nruns._hidden()\n"  # private attr
                          "import argparse\nimport subprocess\nsubprocess.run(['x'])\n"),
        "ui/__init__.py": "import gradio\n",
        "ui/app.py": "from workbench.cli import main\n",                 # ui -> cli
        "cli/__init__.py": "",
        "config.py": "from workbench import presets\n",
        "presets.py": "from workbench import config\n",                  # circle
        "chat.py": "import gradio\n" + "x = 1\n" * (MAX_LINES + 5),      # gradio, too long
    })
    assert any("workbench.paths" in v and "workbench.train" in v
               for v in layer_violations(mods))
    assert any("workbench.ui.app" in v and "stay apart" in v for v in layer_violations(mods))
    priv = private_violations(mods)
    assert any("private module workbench.runs._secret" in v for v in priv)
    assert any("reaches into workbench.runs.jobs" in v for v in priv)
    assert any("uses private workbench.runs._hidden" in v for v in priv)
    libs = library_violations(mods)
    assert any("train.loop" in v and "argparse" in v for v in libs)
    assert any("workbench.chat" in v and "gradio" in v for v in libs)
    assert not any("workbench.ui" == v.split(":")[0] for v in libs)
    spawn = spawn_violations(mods)
    assert any("train.loop" in v for v in spawn)
    assert not any(v.startswith("workbench.runs.jobs") for v in spawn)
    assert any(set(c) >= {"workbench.config", "workbench.presets"} for c in cycles(mods))
    assert any("workbench.chat" in v for v in size_violations(mods))
