"""The Quantization tab in headless Chromium: the memory estimate chart appears for the
embedded model (read from its GGUF header: nothing is imported or loaded), the fit line
names the machine's memory, and a training setting changed in another tab redraws it.

Run:  .venv/bin/python -m pytest -m browser tests/browser/test_quant_tab.py -s
Screenshots: test-artifacts/quant/ (kept whatever the outcome).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.test_ui_browser import SHOTS as UI_SHOTS
from tests.browser.test_ui_browser import _browser, _serve, open_tab, set_number

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "quant"


@pytest.fixture
def quant_app(_workbench_home):
    UI_SHOTS.parent.mkdir(parents=True, exist_ok=True)  # _serve keeps the app log there
    yield from _serve(_workbench_home)


@pytest.fixture
def page():
    yield from _browser("en-US")


def fits_text(page) -> str:
    return page.locator("#quant-fits").inner_text()


BARS_JS = """() => Array.from(document.querySelectorAll(
    '#quant-estimate svg g.role-mark path, #quant-estimate svg g.role-mark rect'))
    .map(e => e.getAttribute('aria-label') || '').filter(Boolean)"""


def test_estimate_chart_appears_and_follows_settings(quant_app, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(quant_app)
        open_tab(page, "Quantization")
        chart = page.locator("#quant-estimate canvas, #quant-estimate svg").first
        chart.wait_for(timeout=60_000)
        page.wait_for_function(
            "document.querySelector('#quant-fits').innerText.includes('needs about')",
            timeout=60_000)
        first = fits_text(page)
        assert "System memory" in first or "GPU memory" in first
        assert "Full 16-bit" in first and "QLoRA" in first and "★" in first
        # no analysed data here (the tokenizer is not imported): max_length, and says so
        assert "analyse the data" in first
        assert "⟦" not in page.locator("#tab-quantization").inner_text()
        box = chart.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100
        bars = page.evaluate(BARS_JS)  # "method: ...; GB: ...; component: ..." per bar
        assert len(bars) == 15 and any("activations" in b for b in bars)
        assert any("QLoRA nf4 + DQ ★" in b for b in bars)
        legend = page.locator("#quant-estimate svg g.role-legend").text_content()
        assert "base weights" in legend and "optimizer" in legend
        page.wait_for_timeout(500)
        page.screenshot(path=str(SHOTS / "quantization-tab.png"), full_page=True)

        # a setting of another tab (the batch size) redraws the estimate
        open_tab(page, "Training")
        set_number(page, "f-train-batch-size", 16)
        assert page.locator("#train-dry-run").is_visible()
        page.screenshot(path=str(SHOTS / "training-tab.png"), full_page=True)
        open_tab(page, "Quantization")
        page.wait_for_function(
            f"document.querySelector('#quant-fits').innerText !== {first!r}",
            timeout=30_000)
        assert fits_text(page) != first
        page.wait_for_function(f"({BARS_JS})().join('|') !== {'|'.join(bars)!r}",
                               timeout=10_000)  # the bars are redrawn, not only the text
    except BaseException:
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        raise
