"""The Chat tab's Prompt set and Blind A/B in headless Chromium, on two runs of the tiny random
Llama (random adapters, no training): the prompt-set table appears with the base and both
runs, and its CSV is offered; a blind pair is answered, the vote lands in
WORKBENCH_HOME/votes.jsonl, the sources are revealed and the leaderboard shows them.

Run:  .venv/bin/python -m pytest -m browser tests/browser/test_chat_eval.py -s
Screenshots: test-artifacts/chat-eval/ (kept whatever the outcome).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.test_ui_browser import (_browser, _serve, open_tab, set_number, text_of,
                                            wait_text)

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chat-eval"
RUNS = ("eval-a", "eval-b")


def make_runs(tiny_model_dir: Path) -> list[Path]:
    """Two runs on the tiny base (in the current WORKBENCH_HOME), each with its own random
    adapter, so their answers differ from the base's and from each other."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench import runs
    from workbench.config import Preset
    preset = Preset().with_overrides([
        f"model.name_or_path={tiny_model_dir}", "quantization.mode=none",
        "data.path=data/identity.jsonl", "train.max_length=128"])
    made = []
    for i, name in enumerate(RUNS):
        run = runs.create(preset, name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(10 + i)
            model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                   LoraConfig(r=4, lora_alpha=64, target_modules="all-linear",
                                              init_lora_weights=False))
        model.save_pretrained(run / "adapter")
        made.append(run)
    return made


@pytest.fixture
def eval_app(_workbench_home, tiny_model_dir, monkeypatch):
    """(the app's URL, the two run names). The app computes on one thread: the tiny
    model gains nothing from two, and on a busy machine two threads wait on each other."""
    names = [run.name for run in make_runs(tiny_model_dir)]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for url in _serve(_workbench_home, SHOTS):
        yield url, names


@pytest.fixture
def page():
    yield from _browser("en-US")


def open_section(page, heading: str) -> None:
    page.get_by_text(heading).first.click()


def test_prompt_set_table_and_a_blind_vote(eval_app, page, _workbench_home, tiny_model_dir):
    SHOTS.mkdir(parents=True, exist_ok=True)
    url, names = eval_app
    try:
        page.goto(url)
        open_tab(page, "Chat")
        open_section(page, "Prompt set: many prompts")
        # the tab's refresh picks both runs (newest first)
        page.wait_for_function(
            f"{names!r}.every(n => "
            "document.querySelector('#ceval-runs').innerText.includes(n))", timeout=30_000)
        page.locator("#ceval-typed textarea").fill("Who are you?\nWhat is 2 + 2?")
        set_number(page, "ceval-tokens", 8)  # short answers: quick on a loaded CPU
        page.locator("#ceval-start").click()
        wait_text(page, "ceval-status", "✓", timeout=120_000)
        table = text_of(page, "ceval-table")
        for column in ("prompt", f"base:{tiny_model_dir.name}", *names):
            assert column in table, table
        assert "Who are you?" in table and "What is 2 + 2?" in table
        assert page.locator("#ceval-csv a[href*='.csv']").count() == 1
        page.screenshot(path=str(SHOTS / "prompt-set.png"), full_page=True)

        open_section(page, "Blind A/B: which answer is better?")
        wait_text(page, "ab-board-note", "Votes: 0")
        page.locator("#ab-prompt textarea").fill("Who are you?")
        page.locator("#ab-new").click()
        wait_text(page, "ab-status", "✓", timeout=120_000)
        page.wait_for_function("!document.querySelector('#ab-vote-a').disabled")
        shown = text_of(page, "ab-answer-a") + text_of(page, "ab-answer-b")
        assert names[1] not in shown and "base:" not in shown  # the names stay hidden
        page.locator("#ab-vote-a").click()
        wait_text(page, "ab-reveal", "Vote saved")
        lines = (_workbench_home / "votes.jsonl").read_text().splitlines()
        assert len(lines) == 1
        vote = json.loads(lines[0])
        assert vote["vote"] == "a" and vote["prompt"] == "Who are you?"
        # the default sources: the base and the newest run
        assert sorted(vote["sources"]) == sorted([f"base:{tiny_model_dir.name}", names[1]])
        reveal = text_of(page, "ab-reveal")
        assert f"A = {vote['sources'][0]}" in reveal and f"B = {vote['sources'][1]}" in reveal
        wait_text(page, "ab-board-note", "Votes: 1")
        board = text_of(page, "ab-board")
        assert all(s in board for s in vote["sources"]), board
        assert page.locator("#ab-vote-a").is_disabled()  # one vote per pair
        page.screenshot(path=str(SHOTS / "blind-ab.png"), full_page=True)
    except BaseException:
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        raise
