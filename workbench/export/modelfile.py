"""Ollama Modelfile and README for an exported GGUF, and proof the template is right.

The Modelfile's TEMPLATE is Go text/template, Ollama's language; it is derived from the
model's Jinja chat template by rendering that template (only ChatML is translated: it is
what SmolLM2 and the test tokenizer use). `render_ollama` renders the Go subset written
here with Ollama's /api/chat semantics, so `template_check` can compare it with the HF
rendering of the same conversations.
"""

from __future__ import annotations

import re
from pathlib import Path

from workbench.errors import WorkbenchError

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def _chatml(messages) -> str:
    return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)


def ollama_template(tok) -> tuple[str | None, str]:
    """(Go template equivalent to the tokenizer's chat template, note). Derived by rendering
    the HF template: it must be ChatML; a default system block is kept, shown only when
    the conversation has no system message (SmolLM2's behaviour)."""
    def render(msgs):
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    conv = [{"role": "system", "content": "S1"}, {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]
    gen = f"{IM_START}assistant\n"
    try:
        if render(conv) != _chatml(conv) + gen:
            return None, "the chat template is not ChatML: Ollama will use its own guess"
        plain = render(conv[1:2])
    except Exception as exc:  # noqa: BLE001 - a template that cannot render is 'unknown'
        return None, f"the chat template does not render ({type(exc).__name__})"
    tail = _chatml(conv[1:2]) + gen
    prefix = plain[:-len(tail)] if plain.endswith(tail) else None
    body = ("{{ range .Messages }}" + IM_START + "{{ .Role }}\n{{ .Content }}" + IM_END
            + "\n{{ end }}" + gen)
    if prefix == "":
        return body, "ChatML"
    found = re.fullmatch(re.escape(IM_START) + r"system\n(.*)" + re.escape(IM_END) + r"\n",
                         prefix or "", re.S)
    if not found or "{{" in found.group(1) or '"""' in found.group(1):
        return None, "the chat template adds text this exporter cannot express in Go"
    return ("{{ if not .System }}" + prefix + "{{ end }}" + body,
            "ChatML with the model's default system prompt when none is given")


def render_ollama(template: str, messages: list[dict], system: str = "") -> str:
    """Render the Go-template subset `ollama_template` writes the way Ollama's /api/chat
    does: the Modelfile SYSTEM becomes the first message when the chat has none, and
    .System is the system messages joined by blank lines. Used to prove equivalence.
    Supports {{ .X }}, {{ if [not] .X }}, {{ range .Messages }} and {{ end }}; no trim
    markers (the templates written here have none)."""
    if system and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system}] + list(messages)
    ctx = {"System": "\n\n".join(m["content"] for m in messages if m["role"] == "system"),
           "Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}
    parts = re.split(r"(\{\{.*?\}\})", template)

    def run(i: int, scope: dict, out: list) -> int:  # returns index after the block's end
        while i < len(parts):
            part = parts[i]
            if not part.startswith("{{"):
                out.append(part)
                i += 1
                continue
            action = part.strip("{}-").strip()
            if action == "end":
                return i + 1
            if action.startswith(("if ", "range ")):
                kind, _, expr = action.partition(" ")
                negate = expr.startswith("not ")
                value = scope[expr.removeprefix("not ").strip().lstrip(".")]
                items = value if kind == "range" else [scope] if bool(value) != negate else []
                end = _skip(i + 1)
                for item in items:
                    run(i + 1, {**scope, **item}, out)
                i = end
                continue
            out.append(str(scope[action.lstrip(".")]))
            i += 1
        return i

    def _skip(i: int) -> int:
        depth = 1
        while depth:
            action = parts[i].strip("{}-").strip() if parts[i].startswith("{{") else ""
            depth += action.startswith(("if ", "range ")) - (action == "end")
            i += 1
        return i

    out: list = []
    run(0, ctx, out)
    return "".join(out)


def _fmt(x) -> str:
    return f"{float(x):g}" if isinstance(x, float) else str(x)


def modelfile_text(gguf_name: str, template: str | None, system: str, gen: dict,
                   stop: str | None) -> str:
    if '"""' in (system or ""):
        raise WorkbenchError('system prompt: contains """, which an Ollama Modelfile '
                             'cannot hold')
    lines = ["# Written by Workbench. Use: ollama create NAME -f <this file>",
             f"FROM ./{gguf_name}", ""]
    if template:
        lines += [f'TEMPLATE """{template}"""', ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    if stop:
        lines.append(f'PARAMETER stop "{stop}"')
    for key, param in (("temperature", "temperature"), ("top_p", "top_p"),
                       ("repetition_penalty", "repeat_penalty"),
                       ("max_new_tokens", "num_predict")):
        if gen.get(key) is not None:
            lines.append(f"PARAMETER {param} {_fmt(gen[key])}")
    return "\n".join(lines) + "\n"


def ollama_tag(name: str) -> str:
    """A model name Ollama accepts: lowercase letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"


def readme_text(name: str, files: dict, modelfiles: dict, report_ok: bool | None) -> str:
    tag = ollama_tag(name)
    main = "q8_0" if "q8_0" in files else "f16"
    lines = [f"# {name}: GGUF export", "",
             "Files: " + ", ".join(f"`{Path(p).name}`" for p in files.values()) + ".", "",
             "Run these from this folder.", "",
             "## Ollama", "", "```", f"ollama create {tag} -f {modelfiles[main]}",
             f"ollama run {tag}", "```", ""]
    if len(modelfiles) > 1:
        lines += [f"For the F16 file: `ollama create {tag}-f16 -f {modelfiles['f16']}`.", ""]
    lines += ["## llama.cpp", "", "```", f"llama-cli -m {Path(files[main]).name} -cnv", "```",
              "", "The chat template is inside the file; add `--jinja` to use it verbatim "
              "(with the model's default system prompt) or `-sys \"...\"` for your own.", "",
              "## LM Studio", "", "```", f"lms import {Path(files[main]).name}", "```", "",
              "Verification: " + ("passed, see export_report.json" if report_ok else
                                  "FAILED, see export_report.json" if report_ok is False
                                  else "not run"), ""]
    return "\n".join(lines)


def template_check(tok, template: str) -> dict:
    """Does the Modelfile template render what the HF chat template renders?"""
    turns = [{"role": "user", "content": "Hi, who are you?"},
             {"role": "assistant", "content": "I am a model."},
             {"role": "user", "content": "And what can you do?"}]
    cases = {"no_system": turns,
             "with_system": [{"role": "system", "content": "Be brief."}] + turns}
    bad = [k for k, msgs in cases.items()
           if render_ollama(template, msgs) != tok.apply_chat_template(
               msgs, tokenize=False, add_generation_prompt=True)]
    return {"ok": not bad, "mismatch": bad}
