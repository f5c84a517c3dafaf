"""A first-time user in headless Chromium (issue 14): the landing page shows the three
steps; a failed Save preset leaves the Preset selector alone and its reason stays beside
it after the toast has gone; Compare with an empty message, and during training, says
why without an "Error" badge in the chat panes; the Merge tab shows real paths (no
WORKBENCH_HOME placeholder) and offers the GGUF file as a download; Delete is off for a
built-in preset and deletes a user preset only after the user confirms.

No model is loaded: the runs are folders written here as the training process leaves
them (tests/unit/test_ui_tabs.make_run), the export files are small stand-ins.

Run:  .venv/bin/python -m pytest tests/browser/test_first_run.py -s
Screenshots and the app's log: test-artifacts/first-run/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests.browser import test_ui_browser as ui
from tests.unit.test_ui_tabs import make_run
from workbench import paths, presets, runs

pytestmark = pytest.mark.browser
SHOTS = ui.ROOT / "test-artifacts" / "first-run"
RUN = "demo-20250101-120000"


@pytest.fixture
def app_with_a_run(_workbench_home):
    """A completed run with an adapter, a merged folder and a GGUF export."""
    run = make_run(name=RUN)
    (run / "merged").mkdir()
    (run / "merged" / "config.json").write_text('{"model_type": "llama"}', "utf-8")
    (run / "merged" / "model.safetensors").write_bytes(b"\0" * 1024)
    export = run / "export"
    export.mkdir()
    gguf = export / f"{RUN}-q8_0.gguf"
    gguf.write_bytes(b"GGUF" + b"\1" * 4096)
    (export / "Modelfile").write_text(f"FROM ./{gguf.name}\n", "utf-8")
    (export / "README.md").write_text("# demo\n", "utf-8")
    report = {"ok": True, "name": RUN, "out_dir": str(export),
              "files": {"q8_0": {"path": str(gguf), "bytes": gguf.stat().st_size}},
              "modelfiles": {"q8_0": str(export / "Modelfile")}, "checks": {}}
    (export / "export_report.json").write_text(json.dumps(report), "utf-8")
    yield from ui._serve(_workbench_home, log_dir=SHOTS)


@pytest.fixture
def page():
    yield from ui._browser("en-US")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


wait_text = ui.wait_text


def no_error_badge(page, elem_id: str) -> bool:
    """Gradio replaces a failed handler's outputs with an 'Error' status; none here."""
    return page.evaluate(
        f"""() => {{
            const el = document.querySelector('#{elem_id}');
            return !!el && !el.querySelector('.error') && !/^\\s*Error\\s*$/m.test(
                el.innerText);
        }}""")


def test_first_run_walkthrough(app_with_a_run, page):
    try:
        _walk(app_with_a_run, page)
    finally:
        shot(page, "last")


def _walk(url, page):
    page.goto(url)
    page.get_by_role("tab", name="Dataset", exact=True).wait_for()

    # 1. the landing page: three steps, the finished run makes Chat the next one
    wait_text(page, "start-here", "Start here")
    steps = ui.text_of(page, "start-here")
    for words in ("1. Pick data", "Nova", "2. Start training", "3. Compare in Chat", RUN):
        assert words in steps, steps
    assert "cpu-demo" in ui.text_of(page, "preset-notice")  # what the preset is for
    shot(page, "1-landing")

    # 2. a failed Save preset: the selector keeps its preset, the reason stays
    page.locator("#preset-save-name textarea, #preset-save-name input").first.fill("bad name!")
    page.locator("#preset-save").click()
    wait_text(page, "preset-notice", "preset name")
    refused_at = time.monotonic()  # checked again 30 s later, after the steps below

    # a decimal comma in a number box means a decimal point (the browser dropped it)
    ui.open_tab(page, "Training")
    box = page.locator("#f-train-learning-rate input").first
    box.click()
    box.press("Control+a")
    box.type("0,0005")
    assert box.input_value() == "0.0005"

    # 3. Compare with an empty message: the reason, no Error in the chat panes
    ui.open_tab(page, "Chat")
    page.wait_for_function(
        f"document.querySelector('#chat-run input')?.value === {RUN!r}")
    page.locator("#chat-compare").click()
    wait_text(page, "chat-status", "Type a message first")
    assert no_error_badge(page, "chat-base") and no_error_badge(page, "chat-tuned")
    assert page.locator("#chat-compare").is_enabled()

    # ... and during training: Compare is off, and the page says why
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        make_run(name="live-20250102-120000", state="running", step=3, max_steps=50,
                 pid=helper.pid, adapter=False)
        ui.open_tab(page, "Merge")
        ui.open_tab(page, "Chat")
        wait_text(page, "chat-status", "Compare is off while a training run")
        assert "live-20250102-120000" in ui.text_of(page, "chat-status")
        assert not page.locator("#chat-compare").is_enabled()
        assert no_error_badge(page, "chat-base") and no_error_badge(page, "chat-tuned")
        shot(page, "3-compare-refused")
    finally:
        helper.kill()
        helper.wait()
        runs.find("live-20250102-120000")  # still there: only its process ended
        import shutil
        shutil.rmtree(paths.runs_dir() / "live-20250102-120000")

    # 4. Merge: real paths, a command that works, and the GGUF as a download
    ui.open_tab(page, "Merge")
    page.wait_for_function(  # the only run with an adapter: chosen for the user
        f"document.querySelector('#merge-run input')?.value === {RUN!r}")
    wait_text(page, "export-result", "ollama create")
    page.wait_for_function(  # the adapter's verdict too, once read
        "!(document.querySelector('#spec-verdict')?.innerText || '').includes('Reading')")
    merge_text = page.locator("#tab-merge").inner_text()
    assert "WORKBENCH_HOME" not in merge_text
    assert f"cd {(paths.runs_dir() / RUN / 'export').resolve()}" in merge_text
    page.locator("#download-button").click()
    wait_text(page, "download-note", "files ready")
    link = page.locator(f"#download-files a[href*='{RUN}-q8_0.gguf']").first
    href = link.get_attribute("href")
    assert href, "no download link for the GGUF file"
    with urllib.request.urlopen(urllib.parse.urljoin(url, href), timeout=10) as resp:
        body = resp.read()
        disposition = resp.headers.get("Content-Disposition", "")
    assert body.startswith(b"GGUF") and len(body) == 4100
    assert "attachment" in disposition
    shot(page, "4-merge-downloads")
    assert os.path.exists(paths.runs_dir() / RUN / "export" / f"{RUN}-merged.zip")

    # back to the refused Save: 30 s on, the toast is gone; the notice and the preset are not
    page.wait_for_timeout(max(0, 30 - (time.monotonic() - refused_at)) * 1000)
    assert "preset name" in ui.text_of(page, "preset-notice")
    assert page.locator("#preset-choose input").input_value() == "cpu-demo · built-in"
    assert no_error_badge(page, "preset-choose")
    assert not page.locator(".toast-body", has_text="preset name").count()
    shot(page, "2-save-refused")

    # 5. Delete: off for a built-in; a user preset is deleted only once the user agrees
    assert not page.locator("#preset-delete").is_enabled()
    page.locator("#preset-save-name textarea, #preset-save-name input").first.fill("mine")
    page.locator("#preset-save").click()
    wait_text(page, "preset-notice", "Saved preset")
    page.wait_for_function("document.querySelector('#preset-choose input')?.value"
                           " === 'mine · yours' && !document.querySelector('#preset-delete')"
                           ".disabled")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.locator("#preset-delete").click()
    page.wait_for_timeout(1500)  # a cancelled confirm sends nothing to change
    assert asked and "mine" in asked[0] and "cannot be undone" in asked[0]
    assert "mine" in presets.user_names()
    page.once("dialog", lambda d: d.accept())
    page.locator("#preset-delete").click()
    wait_text(page, "preset-notice", "Deleted preset")
    assert "mine" not in presets.user_names()
    assert page.locator("#preset-choose input").input_value() == "cpu-demo · built-in"
