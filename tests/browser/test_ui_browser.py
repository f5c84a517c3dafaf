"""The real app in headless Chromium, clicked through as a user would:

    identity sample -> cpu-demo preset shortened to a few steps -> Start training ->
    progress and plot appear -> completes -> Merge -> Chat Compare shows two answers

Run:  .venv/bin/python -m pytest -m browser tests/browser -s
A screenshot of each tab (and of the page at a failure) goes to the folder the test prints
(test-artifacts/ui/screenshots/, with the app's log beside it); kept whatever the outcome.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "test-artifacts" / "ui" / "screenshots"
TRAIN_STEPS = 4

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(embedded_home):
    """`python launch.py ui` in its own process, on a free port, with a WORKBENCH_HOME
    that already holds the imported embedded model."""
    yield from _serve(embedded_home)


@pytest.fixture
def bare_app(_workbench_home):
    yield from _serve(_workbench_home)


@pytest.fixture(scope="module", autouse=True)
def _fresh_screenshots():
    shutil.rmtree(SHOTS.parent, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    print(f"\nscreenshots: {SHOTS}")


def _serve(home: Path, log_dir: Path | None = None):
    """Start the app on a free port; yield its URL; stop it. Its output goes to a log."""
    port = _free_port()
    log_dir = log_dir or SHOTS.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"app-{port}.log", "w")
    env = dict(os.environ, WORKBENCH_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("WORKBENCH_AUTH", None)
    proc = subprocess.Popen([sys.executable, "launch.py", "ui", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited early; see {log.name}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _browser(locale: str):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900}, locale=locale)
        try:
            yield pg
        finally:
            browser.close()


@pytest.fixture
def page():
    yield from _browser("en-US")


@pytest.fixture
def page_zh():
    yield from _browser("zh-CN")


def shot(page, name: str) -> None:
    page.wait_for_timeout(400)  # let plots and fonts settle
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).click()


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.fill(str(value))
    box.press("Tab")  # commit the value (the change event fires on blur)


def wait_text(page, elem_id: str, text: str, timeout: int = 60_000) -> None:
    """Wait until the element's text holds `text` (an element not drawn yet is empty)."""
    page.wait_for_function(
        f"(document.querySelector('#{elem_id}')?.innerText || '').includes({text!r})",
        timeout=timeout)


def text_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def test_chinese_page_and_language_switch(bare_app, page_zh):
    """The browser's language picks Chinese; the English | 中文 switch at the top changes
    it in place; composed messages are translated too."""
    page = page_zh
    page.goto(bare_app)
    page.get_by_role("tab", name="数据集 Dataset").wait_for()
    page.wait_for_function(
        "document.querySelector('#dataset-summary').innerText.includes('行保留')")
    assert "⟦" not in page.locator("body").inner_text()  # every marker was translated
    shot(page, "zh-1-dataset")
    page.get_by_role("tab", name="训练 Training").click()
    page.wait_for_function(
        "document.querySelector('#train-progress').innerText.includes('还没有运行')")
    shot(page, "zh-4-training")
    # the switch at the top re-translates labels and composed messages alike, in place
    page.get_by_role("radio", name="English").click()
    page.wait_for_function(
        "document.querySelector('#train-progress').innerText.includes('No run yet')")
    assert page.get_by_role("tab", name="Training", exact=True).is_visible()


@pytest.mark.e2e
def test_click_through(app, page):
    try:
        click_through(app, page)
    except BaseException:
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        raise


def click_through(app, page):
    started = time.monotonic()
    page.goto(app)
    page.get_by_role("tab", name="Dataset", exact=True).wait_for()
    tabs = [t.inner_text().strip() for t in page.get_by_role("tab").all()]
    assert tabs[:6] == ["Dataset", "Quantization", "LoRA", "Training", "Merge", "Chat"]

    # 1. the identity sample and the cpu-demo preset
    choose(page, "preset-choose", "cpu-demo · built-in")
    choose(page, "f-data-path", "identity.jsonl · sample")
    page.wait_for_function(
        "document.querySelector('#dataset-summary').innerText.includes('alpaca')")
    assert "72" in text_of(page, "dataset-summary")
    assert "Nova" in text_of(page, "dataset-preview")
    shot(page, "1-dataset")

    open_tab(page, "Quantization")
    # the Dataset tab analysed the sample: the estimate uses its longest batch (issue 9)
    wait_text(page, "quant-fits", "longest batch", timeout=120_000)
    page.locator("#quant-measure").click()
    page.wait_for_function(
        "document.querySelector('#quant-result').innerText.includes('MB')", timeout=180_000)
    shot(page, "2-quantization")

    open_tab(page, "LoRA")
    page.wait_for_function(
        "document.querySelector('#lora-count').innerText.includes('Trainable parameters')",
        timeout=120_000)
    assert "q_proj" in text_of(page, "lora-count")
    shot(page, "3-lora")

    # 2. shortened to a few steps, then Start
    open_tab(page, "Training")
    set_number(page, "f-train-max-steps", TRAIN_STEPS)
    # a learning rate high enough that 4 steps change the answers the chat compares
    set_number(page, "f-train-learning-rate", 0.002)
    set_number(page, "f-train-logging-steps", 1)
    set_number(page, "f-train-eval-steps", 2)
    page.locator("#train-run-name textarea, #train-run-name input").first.fill("browser")
    page.locator("#train-start").click()
    page.wait_for_function(
        "document.querySelector('#train-notice').innerText.includes('browser-')")
    # 3. progress and a plotted loss while it runs, then completion
    page.wait_for_function(
        "/Step [1-9]/.test(document.querySelector('#train-progress').innerText)",
        timeout=600_000)
    for plot in ("train-plot-loss", "train-plot-learning-rate"):  # points, not just axes
        page.wait_for_function(
            f"document.querySelectorAll('#{plot} .wb-chart-series circle').length > 0",
            timeout=600_000)
    page.wait_for_function(  # a few points, so the screenshot shows curves
        "/Step [2-9]/.test(document.querySelector('#train-progress').innerText)",
        timeout=600_000)
    shot(page, "4-training-running")
    # a reload (or a second tab) reattaches to the running job: the state is on disk
    page.reload()
    open_tab(page, "Training")
    page.wait_for_function(
        "document.querySelector('#train-progress').innerText.includes('browser-')")
    assert page.locator("#train-stop").is_enabled()
    page.wait_for_function(
        "document.querySelector('#train-progress').innerText.includes('completed') || "
        "document.querySelector('#train-progress').innerText.includes('failed')",
        timeout=900_000)
    progress = text_of(page, "train-progress")
    assert "completed" in progress, progress
    assert f"Step {TRAIN_STEPS} / {TRAIN_STEPS}" in progress
    page.wait_for_function(  # eval loss at steps 2 and 4: a second line on the loss chart
        "[...document.querySelectorAll('#train-plot-loss .wb-chart-series')]"
        ".filter(g => g.querySelectorAll('circle').length > 1).length > 1")
    shot(page, "4-training-done")

    # 4. merge, verified
    open_tab(page, "Merge")
    page.wait_for_function(
        "(document.querySelector('#merge-run input')?.value || '').startsWith('browser-')")
    page.locator("#merge-button").click()
    page.wait_for_function(
        "document.querySelector('#merge-result').innerText.includes('Verified')",
        timeout=600_000)
    assert "max logit difference" in text_of(page, "merge-result")
    shot(page, "5-merge")

    # 5. chat, from the finished run's "Compare in Chat": two different answers, then a
    # second turn on both sides
    open_tab(page, "Training")
    page.locator("#train-to-chat").click()
    page.wait_for_function(
        "(document.querySelector('#chat-run input')?.value || '').startsWith('browser-')")
    page.get_by_text("Generation settings").click()
    set_number(page, "f-generation-max-new-tokens", 32)
    ask(page, "Who are you?")
    base, tuned = answers(page)
    assert base and tuned and base != tuned, (base, tuned)
    ask(page, "And who made you?")
    assert len(page.locator("#chat-tuned [data-testid='bot']").all()) == 2
    shot(page, "6-chat")
    print(f"click-through took {time.monotonic() - started:.0f} s")


def ask(page, prompt: str) -> None:
    """Send a prompt and wait until both answers are complete: the status line says so
    (Compare is disabled while the models answer, so a click lands only when it is free)."""
    before = len(page.locator("#chat-tuned [data-testid='bot']").all())
    page.locator("#chat-prompt textarea").fill(prompt)
    page.locator("#chat-compare").click(timeout=120_000)
    page.wait_for_function(
        f"document.querySelectorAll('#chat-tuned [data-testid=\"bot\"]').length > {before}"
        " && document.querySelector('#chat-status').innerText.includes('✓')",
        timeout=300_000)
    # then the buttons unlock: Compare on again, Stop off
    page.wait_for_function("!document.querySelector('#chat-compare').disabled && "
                           "document.querySelector('#chat-stop').disabled", timeout=30_000)


def answers(page) -> tuple[str, str]:
    base = page.locator("#chat-base [data-testid='bot']").last.inner_text().strip()
    tuned = page.locator("#chat-tuned [data-testid='bot']").last.inner_text().strip()
    return base, tuned
