"""The Dataset tab in headless Chromium: a user preset with the tiny model (so the token
analysis runs by itself in seconds) on the identity sample, then the histogram's bars, the
truncation report, the rendered row with trained / masked highlighting, another row, and
the "use the 95% suggestion" button setting the Training tab's max_length.

Run:  .venv/bin/python -m pytest -m browser tests/browser/test_dataset_tab.py -s
Screenshots and the app's log: test-artifacts/dataset/ (kept whatever the outcome).
"""

from __future__ import annotations

import pytest

from tests.browser import test_ui_browser as ui
from workbench import presets

pytestmark = pytest.mark.browser
SHOTS = ui.ROOT / "test-artifacts" / "dataset"
MAX_LENGTH = 64  # the identity rows are 34-82 tokens with the tiny tokenizer: some cut


@pytest.fixture
def tiny_app(_workbench_home, tiny_model_dir):
    """The app with a user preset 'tiny-data': cpu-demo with the tiny model."""
    preset = presets.load("cpu-demo").with_overrides(
        [f"model.name_or_path={tiny_model_dir}", "data.path=data/identity.jsonl",
         f"train.max_length={MAX_LENGTH}"])
    presets.save("tiny-data", preset)
    yield from ui._serve(_workbench_home, log_dir=SHOTS)


@pytest.fixture
def page():
    yield from ui._browser("en-US")


wait_text = ui.wait_text


def test_dataset_tab_shows_histogram_and_highlighted_rendering(tiny_app, page):
    try:
        _walk(tiny_app, page)
    finally:
        page.screenshot(path=str(SHOTS / "dataset-tab.png"), full_page=True)


def _walk(url, page):
    page.goto(url)
    page.get_by_role("tab", name="Dataset", exact=True).wait_for()
    ui.choose(page, "preset-choose", "tiny-data · yours")
    wait_text(page, "dataset-summary", "alpaca")
    # the tiny model is a local folder: the analysis runs by itself after the load
    wait_text(page, "dataset-status", "Analysed", timeout=120_000)

    # the histogram: drawn bars, and the report at max_length with its suggestion
    page.wait_for_function(
        "document.querySelectorAll('#dataset-histogram .mark-rect path').length >= 3")
    report = page.locator("#dataset-report").inner_text()
    assert f"At max_length {MAX_LENGTH}" in report and "rows truncated" in report
    assert "Suggested max_length: 80" in report, report
    checks = page.locator("#dataset-checks").inner_text()
    assert "exact duplicates" in checks and "unfilled placeholders" in checks

    # the first row as the trainer sees it: a masked prompt, a trained answer
    rendered = page.locator("#dataset-rendered")
    wait_text(page, "dataset-rendered", "Nova")
    tokens = rendered.locator(".textfield .token-container > span")
    shown = [(s.inner_text(), s.evaluate("e => getComputedStyle(e).backgroundColor"))
             for s in tokens.all()]
    assert len(shown) >= 2, shown
    prompt = [colour for text, colour in shown if "<|im_start|>assistant" in text]
    answer = [colour for text, colour in shown if "Nova" in text and "<|im_start|>" not in text]
    assert prompt and answer and prompt[0] != answer[0], shown  # trained looks different
    legend = rendered.locator("[data-testid='highlighted-text:category-legend']").inner_text()
    assert "trained" in legend and "masked" in legend and "truncated" in legend
    page.locator("#dataset-histogram").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "dataset-analysis.png"), full_page=True)

    # another row: 7 is one of the rows longer than max_length
    box = page.locator("#dataset-row input").first
    box.fill("7")
    page.locator("#dataset-show-row").click()
    wait_text(page, "dataset-row-info", "Row 7")
    assert "truncated at max_length" in page.locator("#dataset-row-info").inner_text()

    # the 95% suggestion goes to the Training tab's max_length; the report follows it
    page.locator("#dataset-apply-p95").click()
    wait_text(page, "dataset-report", "At max_length 80")
    page.wait_for_function(  # row 7 shown again, now whole
        "!document.querySelector('#dataset-row-info').innerText.includes('truncated')")
    assert "Row 7" in page.locator("#dataset-row-info").inner_text()
    ui.open_tab(page, "Training")
    assert page.locator("#f-train-max-length input").first.input_value() == "80"
    ui.open_tab(page, "Dataset")
    assert "⟦" not in page.locator("body").inner_text()

    # a CSV with columns nobody detects: the mapping is suggested and shown for editing
    csv = SHOTS / "qa.csv"
    csv.write_text("question,answer,id\nWho are you?,I am Nova.,1\nHi,Hello,2\n")
    page.locator("#dataset-upload input[type=file]").set_input_files(str(csv))
    wait_text(page, "dataset-summary", "suggested column mapping applied")
    wait_text(page, "dataset-summary", "alpaca")
    assert page.locator("#dataset-role-instruction input").input_value() == "question"
    assert page.locator("#dataset-role-output input").input_value() == "answer"
    mapping = page.locator("#f-data-columns textarea, #f-data-columns input").first
    assert "answer" in mapping.input_value()
    wait_text(page, "dataset-status", "Analysed 2 rows", timeout=60_000)
    page.locator("#dataset-mapping").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "dataset-mapping.png"), full_page=True)
