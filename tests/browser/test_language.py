"""The language switch at the top of the page, in headless Chromium (issue 14 item 4):
choosing 中文 once turns every tab name, the Training tab's chart titles and axis titles,
and Gradio's own upload text Chinese at once (no tab is visited first, except Training to
read its charts), the choice survives a reload, and English comes back the same way.

The home holds one finished run (metrics written through the runs API, no training), so
the Training tab's charts have lines and axes to read.

Run:  .venv/bin/python -m pytest -m browser tests/browser/test_language.py -s
Screenshots and the app's log: test-artifacts/language/ (kept whatever the outcome).
"""

from __future__ import annotations

import pytest

from tests.browser import test_ui_browser as ui
from workbench import presets, runs
from workbench.ui.i18n import GRADIO_TEXT, HEADER_TEXT, text

pytestmark = pytest.mark.browser
SHOTS = ui.ROOT / "test-artifacts" / "language"
TABS = ["dataset", "quantization", "lora", "training", "merge", "chat"]
# each chart (SVG drawn by the server): its title, y axis title and legend entries, all
# m() markers that the page script translates
CHARTS = {"train-plot-loss": ("train.loss_plot", "train.loss_plot",
                              ("series.loss", "series.eval_loss")),
          "train-plot-learning-rate": ("train.lr_plot", "train.lr_plot", ())}


@pytest.fixture
def app_with_run(_workbench_home):
    """The app, with a completed 4-step run on disk (the Training tab shows it on load)."""
    run = runs.create(presets.load("cpu-demo"), "charts")
    for step in range(1, 5):
        runs.append_metrics(run, {"step": step, "loss": 3.0 - 0.4 * step,
                                  "learning_rate": 2e-4 * (1 - step / 5), "epoch": step / 4})
        if step % 2 == 0:
            runs.append_metrics(run, {"step": step, "eval_loss": 3.2 - 0.4 * step})
    runs.write_status(run, state="completed", step=4, max_steps=4,
                      started_at=runs.now_iso(), ended_at=runs.now_iso())
    yield from ui._serve(_workbench_home, log_dir=SHOTS)


@pytest.fixture
def page():
    yield from ui._browser("en-US")


def tab_names(page) -> list[str]:
    return [t.inner_text().strip() for t in page.get_by_role("tab").all()]


def choose(page, lang: str) -> None:
    """Click English or 中文 and wait until Gradio's locale is that language."""
    page.get_by_role("radio", name="中文" if lang == "zh" else "English").click()
    locale = "zh-CN" if lang == "zh" else "en"
    page.wait_for_function(f"document.documentElement.lang === {locale!r}")
    assert_chosen(page, lang)


def assert_chosen(page, lang: str) -> None:
    checked = page.locator("#language-switch [aria-checked=true]")
    assert checked.get_attribute("data-wb-lang") == lang


def assert_tab_names(page, lang: str) -> None:
    want = [text(f"tab.{k}", lang) for k in TABS]
    page.wait_for_function(  # names of tabs never shown are put right by the page script
        "want => JSON.stringify([...document.querySelectorAll('[role=tab]')]"
        ".map(t => t.innerText.trim())) === JSON.stringify(want)", arg=want, timeout=10_000)
    assert tab_names(page) == want


def assert_preview_headers(page, lang: str) -> None:
    """The Dataset preview's columns (the conversation's roles) in `lang`."""
    want = [HEADER_TEXT[f"header.{role}"][lang] for role in ("user", "assistant")]
    page.wait_for_function(
        "(want) => { const shown = [...document.querySelectorAll('#dataset-preview th')]"
        ".map(th => th.innerText.trim()); return want.every(w => shown.includes(w)); }",
        arg=want, timeout=10_000)


def assert_charts(page, lang: str) -> None:
    """The charts' titles, axis titles and legends in `lang` (the charts have drawn
    lines)."""
    for elem_id, (title, axis, legend) in CHARTS.items():
        page.wait_for_function(
            f"document.querySelectorAll('#{elem_id} polyline').length > 0")
        want = [text(title, lang), text("train.step", lang), text(axis, lang),
                *(text(k, lang) for k in legend)]
        page.wait_for_function(
            "([id, want]) => { const shown = [...document.querySelectorAll("
            "`#${id} .wb-chart-title, #${id} .wb-chart-axis-title, #${id} .wb-chart-key`)]"
            ".map(t => t.textContent.trim());"
            " return want.every(w => shown.includes(w)); }", arg=[elem_id, want],
            timeout=10_000)
        chart = page.locator(f"#{elem_id}").text_content()  # tooltips too
        assert "⟦" not in chart, chart
    # what a screen reader says of the axes and points is translated too
    assert page.locator('[aria-label*="⟦"]').count() == 0


def test_switch_changes_every_label_at_once_and_is_remembered(app_with_run, page):
    try:
        _walk(app_with_run, page)
    finally:
        page.screenshot(path=str(SHOTS / "last.png"), full_page=True)


def _walk(url, page):
    page.goto(url)
    page.get_by_role("tab", name="Dataset", exact=True).wait_for()
    assert_chosen(page, "en")  # an English browser, nothing chosen yet
    assert tab_names(page) == [text(f"tab.{k}") for k in TABS]
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "landing-en.png"), full_page=True)

    # 中文 once: every tab name (none visited), the markers and Gradio's own words
    choose(page, "zh")
    assert_tab_names(page, "zh")
    upload = page.locator("#dataset-upload [data-testid=upload-text]").inner_text()
    assert GRADIO_TEXT["upload_text.drop_file"]["zh"] in upload
    assert GRADIO_TEXT["upload_text.click_to_upload"]["zh"] in upload
    assert text("app.tagline", "zh") in page.locator(".wb-header").inner_text()
    body = page.locator("body").inner_text()
    assert "⟦" not in body and "Drop File Here" not in body
    # the Dataset histogram's axis titles too (drawn by Vega as SVG text)
    want = [text("dataset.hist.x", "zh"), text("dataset.hist.y", "zh")]
    page.wait_for_function(
        "(want) => { const shown = [...document.querySelectorAll("
        "'#dataset-histogram .role-axis-title text')].map(t => t.textContent);"
        " return want.every(w => shown.includes(w)); }", arg=want, timeout=10_000)
    assert_preview_headers(page, "zh")  # the sample's roles, drawn as data
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "landing-zh.png"), full_page=True)

    # the Training tab (the only tab opened): chart titles and axis titles
    ui.open_tab(page, text("tab.training", "zh"))
    assert_charts(page, "zh")
    # the charts' box: the poll rewrites what is inside it (#train-plot-loss) at any moment,
    # and a replaced element cannot be scrolled to
    page.locator("#train-charts").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "training-zh.png"))

    # remembered: a reload comes back in Chinese without touching the switch
    assert page.evaluate("localStorage.getItem('workbench-lang')") == "zh"
    page.reload()
    page.get_by_role("tab").first.wait_for()
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert_chosen(page, "zh")
    assert_tab_names(page, "zh")
    assert text("app.tagline", "zh") in page.locator(".wb-header").inner_text()

    # every tab in Chinese, for the eye (screenshots; the README walkthrough uses them):
    # no raw marker on any of them
    for key in TABS:
        ui.open_tab(page, text(f"tab.{key}", "zh"))
        page.wait_for_timeout(500)
        assert "⟦" not in page.locator("body").inner_text(), key
        page.screenshot(path=str(SHOTS / f"tab-{key}-zh.png"), full_page=True)

    # and back: English everywhere again, the open tab's charts included
    ui.open_tab(page, text("tab.training", "zh"))
    assert_charts(page, "zh")
    choose(page, "en")
    assert_tab_names(page, "en")
    assert_charts(page, "en")
    page.reload()
    page.get_by_role("tab", name="Dataset", exact=True).wait_for()
    assert_chosen(page, "en")
    assert page.evaluate("localStorage.getItem('workbench-lang')") == "en"
    assert "Drop File Here" in page.locator("#dataset-upload").inner_text()
    assert_preview_headers(page, "en")
