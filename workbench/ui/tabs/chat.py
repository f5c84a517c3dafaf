"""Chat tab: pick a run; one prompt box; "Compare" streams the base model's answer and the
fine-tuned answer side by side, together (one batch, the adapter off for one row and on
for the other: `workbench.chat.Comparer.compare`), and the conversation continues over
several turns on both sides. While it answers: a "generating…" line, a Stop button, and
Compare disabled. Compare is also disabled, with the reason beside it, while a training
run holds the memory. Errors stay in the status line under the buttons; the chat panes
keep what they show. Widgets: every `generation.*` Preset field. Below: Prompt set and
Blind A/B (chat_eval.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.ui import shared, widgets
from workbench.ui.i18n import m, t
from workbench.ui.tabs import chat_eval

GEN_KEYS = widgets.section_keys("generation")


@dataclass
class ChatTab:
    run: gr.Dropdown
    base: gr.Chatbot
    tuned: gr.Chatbot
    prompt: gr.Textbox
    compare: gr.Button
    clear: gr.Button
    stop: gr.Button | None = None
    status: gr.Markdown | None = None
    evaluation: chat_eval.ChatEval | None = None  # Prompt set and Blind A/B, below


def build(ctx) -> ChatTab:
    run = gr.Dropdown(label=t("chat.run"), choices=[], elem_id="chat-run")
    with gr.Row(equal_height=True):
        base = gr.Chatbot(label=t("chat.base"), height=380, elem_id="chat-base",
                          buttons=["copy"], feedback_options=None)
        tuned = gr.Chatbot(label=t("chat.tuned"), height=380, elem_id="chat-tuned",
                           buttons=["copy"], feedback_options=None)
    with gr.Row(elem_classes=["wb-actions"]):
        prompt = gr.Textbox(label=t("chat.prompt"), placeholder=t("chat.prompt.placeholder"),
                            lines=1, scale=4, elem_id="chat-prompt", submit_btn=False)
        compare = gr.Button(t("chat.compare"), variant="primary", scale=1,
                            elem_id="chat-compare")
        stop = gr.Button(t("chat.stop"), variant="stop", scale=1, interactive=False,
                         elem_id="chat-stop")
        clear = gr.Button(t("chat.clear"), scale=1, elem_id="chat-clear")
    status = gr.Markdown(elem_id="chat-status")
    with gr.Accordion(t("chat.settings"), open=False):
        fields = {}
        with gr.Row():
            for dotted in GEN_KEYS[:4]:
                fields[dotted] = ctx.field(dotted)
        for dotted in GEN_KEYS[4:]:
            fields[dotted] = ctx.field(dotted, lines=2)
    gen_inputs = [fields[k] for k in GEN_KEYS]
    # three steps: lock the buttons at once (no queue), stream, unlock; Stop cancels the
    # stream (the generation ends at its next token) and unlocks
    locked = gr.on([compare.click, prompt.submit], busy, None, [compare, stop, status],
                   queue=False, api_visibility="private", show_progress="hidden")
    streaming = widgets.on(locked, compare_stream, [run, prompt, base, tuned, *gen_inputs],
                           [base, tuned, prompt, status], status, concurrency_id="model",
                           concurrency_limit=1, show_progress="hidden")
    streaming.then(idle, None, [compare, stop], api_visibility="private", queue=False,
                   show_progress="hidden")
    stop.click(stopped, None, [compare, stop, status], cancels=[streaming], queue=False,
               api_visibility="private")
    clear.click(new_conversation, None, [base, tuned, prompt], api_visibility="private")
    run.input(new_conversation, None, [base, tuned, prompt], api_visibility="private")
    return ChatTab(run, base, tuned, prompt, compare, clear, stop, status,
                   chat_eval.build(ctx))


def wire(ctx, tab: ChatTab, tab_item: gr.Tab) -> None:
    widgets.on(tab_item.select, refresh, [tab.run], [tab.run, tab.compare, tab.status],
               tab.status, concurrency_limit=None)
    if tab.evaluation is not None:
        chat_eval.wire(ctx, tab.evaluation, tab_item)


def busy():
    """Compare pressed: disable it, enable Stop, say that both sides are generating."""
    return (gr.update(interactive=False), gr.update(interactive=True),
            f"▶ {m('chat.generating')}")


def idle():
    """The answers are in (or failed): Stop off; Compare on unless training runs."""
    return gr.update(interactive=shared.active_run_name() is None), \
        gr.update(interactive=False)


def stopped():
    return gr.update(interactive=True), gr.update(interactive=False), m("chat.stopped")


def refresh(selected):
    """The runs that have an adapter; Compare disabled, with the reason, while training."""
    names = shared.run_names(shared.with_adapter)
    value = selected if selected in names else (names[0] if names else None)
    training = shared.active_run_name()
    if training:
        reason = widgets.error_markup(f"{m('chat.busy')}: {training}")
    else:
        reason = "" if names else m("chat.no_runs")
    return (gr.update(choices=names, value=value), gr.update(interactive=not training),
            reason)


def new_conversation():
    return [], [], ""


def message_text(msg: dict) -> str:
    """A Chatbot message's text: content is a string or a list of text parts."""
    content = msg.get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def to_pairs(history: list[dict] | None) -> list[tuple[str, str]]:
    """Chatbot messages -> [(user, assistant), ...] as workbench.chat takes them."""
    pairs, user = [], None
    for msg in history or []:
        if msg.get("role") == "user":
            user = message_text(msg)
        elif msg.get("role") == "assistant" and user is not None:
            pairs.append((user, message_text(msg)))
            user = None
    return pairs


def compare_stream(run, prompt, history_base, history_tuned, *gen_values):
    """Yield (base chat, tuned chat, prompt box, status) while both answers stream in."""
    from workbench import chat
    prompt = (prompt or "").strip()
    if not prompt:
        raise WorkbenchError(m("chat.empty"))
    gen = widgets.to_section("generation", dict(
        (k.split(".", 1)[1], v) for k, v in zip(GEN_KEYS, gen_values)))
    shared.refuse_if_busy("chatting")
    t0 = time.monotonic()
    comparer = chat.get_comparer(shared.find_run(run))
    pairs_base, pairs_tuned = to_pairs(history_base), to_pairs(history_tuned)
    # what each pane shows: the turns so far and the new prompt (no system prompt)
    shown_base = chat.build_messages(prompt, pairs_base)
    shown_tuned = chat.build_messages(prompt, pairs_tuned)
    generating = f"▶ {m('chat.generating')}"
    yield shown_base, shown_tuned, "", generating
    for base_text, tuned_text in comparer.compare(prompt, pairs_base, pairs_tuned, gen):
        yield (shown_base + _answer(base_text), shown_tuned + _answer(tuned_text),
               gr.skip(), gr.skip())
    yield (gr.skip(), gr.skip(), gr.skip(),
           f"✓ {m('chat.done')} {time.monotonic() - t0:.1f} s")


def _answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}] if text else []


def api_compare(run: str, prompt: str, history_base: list[list[str]] | None = None,
                history_tuned: list[list[str]] | None = None,
                max_new_tokens: int = 0) -> Iterator[tuple[str, str]]:
    """Stream (base answer, tuned answer) for `prompt`; histories are [[user, answer], ...]
    turns. The run's own generation settings are used, max_new_tokens > 0 overrides."""
    from workbench import chat, runs
    shared.refuse_if_busy("chatting")
    folder = shared.find_run(run)
    gen = runs.load_preset(folder).generation
    if max_new_tokens and max_new_tokens > 0:
        gen.max_new_tokens = int(max_new_tokens)
    comparer = chat.get_comparer(folder)
    yield from comparer.compare(prompt, [tuple(p) for p in history_base or []],
                                [tuple(p) for p in history_tuned or []], gen)
