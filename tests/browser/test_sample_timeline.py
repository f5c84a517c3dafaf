"""The sample timeline in headless Chromium (issue 11 item 3): while a run trains, the
Training tab's "Answers during training" table grows a row per eval step, with a column
per watch prompt.

The run is the tiny random Llama (tests/tiny.py) training in its own process, started as
the app starts one (runs.jobs.start), so the answers are noise: the test checks that they
arrive while the run trains, not what they say.

Run:  .venv/bin/python -m pytest tests/browser/test_sample_timeline.py -s
Screenshots and the app's log: test-artifacts/sample-timeline/.
"""

from __future__ import annotations

import pytest

from tests.browser import test_ui_browser as ui
from workbench import runs
from workbench.config import Preset
from workbench.runs import jobs

pytestmark = pytest.mark.browser
SHOTS = ui.ROOT / "test-artifacts" / "sample-timeline"
PROMPTS = ["Who are you?", "What is the capital of France?"]


@pytest.fixture
def app(_workbench_home):
    yield from ui._serve(_workbench_home, log_dir=SHOTS)


@pytest.fixture
def training(_workbench_home, tiny_model_dir):
    """A long tiny run that answers the watch prompts at every step; stopped at the end."""
    preset = Preset().with_overrides([
        f"model.name_or_path={tiny_model_dir}", "data.path=data/identity.jsonl",
        "quantization.mode=none", "train.max_steps=500", "train.batch_size=2",
        "train.max_length=128", "train.logging_steps=1", "train.eval_steps=1",
        "train.save_steps=100000", "lora.r=4", f"train.watch_prompts={PROMPTS}"])
    run = jobs.start(preset, "timeline")
    yield run
    if runs.status(run)["state"] == "running":
        jobs.stop(run, force=True, grace=30)


@pytest.fixture
def page():
    yield from ui._browser("en-US")


def rows(page) -> int:
    return page.locator("#train-samples table tr").count() - 1  # less the header


def newest_step(page) -> int:
    """The step of the table's last row (the newest eval step shown)."""
    return int(page.locator("#train-samples table tr:last-child td").first.inner_text())


def test_timeline_grows_while_the_run_trains(app, training, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(app)
        page.locator("#tab-training-button").click(timeout=120_000)
        ui.wait_text(page, "train-samples", PROMPTS[1], timeout=180_000)
        assert rows(page) >= 1
        first = newest_step(page)
        # a later eval step's row arrives without a reload, while the run still trains (the
        # table keeps the newest rows only, so it is the step that grows, not the row count)
        page.wait_for_function(
            f"parseInt(document.querySelector('#train-samples table tr:last-child td')"
            f"?.innerText || '0') > {first}", timeout=60_000)
        assert runs.status(training)["state"] == "running"
        steps = {r["step"] for r in runs.samples(training)}
        assert rows(page) <= len(steps)
        header = ui.text_of(page, "train-samples")
        assert "Answers during training" in header and PROMPTS[0] in header
        page.wait_for_timeout(400)
        page.screenshot(path=str(SHOTS / "training-timeline.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        raise
