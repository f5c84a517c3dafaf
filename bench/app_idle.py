"""What the open app costs when nothing happens (issue 9, item 3): the CPU share of the app
server and of Chromium with the page idle on the Dataset tab (no timer) and on the Training
tab (its poll ticking, no run training), and which page elements changed meanwhile.

    .venv/bin/python bench/app_idle.py [--seconds 30]
    .venv/bin/python bench/app_idle.py --fake-run [--step-seconds 2] [--seconds 90]

Uses WORKBENCH_HOME as it is (its runs are listed on the Training tab). Each window is
measured after the tab has settled, with nothing added to the page; the element counts come
from a MutationObserver installed after it, over 10 s more (mutations per element id, nearest
id up the tree). One line per window; nothing kept.

--fake-run: what the live view costs while a run trains, without the training (whose CPU
use would swamp the figure): in a temporary WORKBENCH_HOME, a run folder written as the
training process writes it (status.json and a log line every --step-seconds, a metrics
line every 5 steps as cpu-demo logs), the Training tab open on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from app_cost import (ROOT, chromium_pids, cpu_seconds, open_page, per_thread_rates, start_app,
                      thread_switches)

COUNT_MUTATIONS = """() => { window.__wbMut = {}; if (window.__wbObs) window.__wbObs.disconnect();
  window.__wbObs = new MutationObserver(ms => { for (const m of ms) {
    let el = m.target.nodeType === 1 ? m.target : m.target.parentElement, id = null;
    while (el && !id) { id = el.id || null; el = el.parentElement; }
    window.__wbMut[id] = (window.__wbMut[id] || 0) + 1; } });
  window.__wbObs.observe(document.body, {subtree: true, childList: true, attributes: true,
                                          characterData: true}); }"""


def window(page, server: psutil.Process, seconds: float) -> dict:
    """The CPU share and wake-ups of the server and of Chromium over `seconds` with nothing
    added to the page; then, over a further 10 s, which elements changed (the observer is
    left out of the first window: it runs script on every change it sees)."""
    browser = [psutil.Process(pid) for pid in chromium_pids()]
    before = cpu_seconds([server]), cpu_seconds(browser)
    pids = [p.pid for p in browser], [server.pid]
    woken = [thread_switches(p) for p in pids]
    time.sleep(seconds)
    after = [thread_switches(p) for p in pids]
    shares = cpu_seconds([server]) - before[0], cpu_seconds(browser) - before[1]
    per_s = [per_thread_rates(old, new, seconds) for old, new in zip(woken, after)]
    busiest = dict(sorted(per_s[0].items(), key=lambda kv: -kv[1])[:6])
    page.evaluate(COUNT_MUTATIONS)
    time.sleep(10)
    counts = page.evaluate("() => window.__wbMut")
    return {"server_core_share": round(shares[0] / seconds, 3),
            "browser_core_share": round(shares[1] / seconds, 3),
            "browser_wakeups_per_s": round(sum(per_s[0].values()), 1),
            "server_wakeups_per_s": round(sum(per_s[1].values()), 1),
            "browser_threads_waking_most": busiest,
            "mutations_in_10_s": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8])}


def fake_run(step_seconds: float, stop: threading.Event) -> threading.Thread:
    """A running run in WORKBENCH_HOME, written by a thread as a trainer writes it (this
    process's pid in status.json keeps it "running")."""
    sys.path.insert(0, str(ROOT))
    from workbench import runs
    run = Path(os.environ["WORKBENCH_HOME"]) / "runs" / "fake-20261201-000000"
    run.mkdir(parents=True)
    shutil.copy(ROOT / "presets" / "cpu-demo.yaml", run / "preset.yaml")
    started = time.time()
    runs.write_status(run, state="running", pid=os.getpid(), phase="training", step=0,
                      max_steps=100_000, started_at=runs.now_iso())
    (run / "train.log").write_text("starting\n")

    def write():
        step = 0
        while not stop.wait(step_seconds):
            step += 1
            runs.write_status(run, step=step)
            with open(run / "train.log", "a") as fh:
                fh.write(f"step {step}/100000 loss {2 / step:.3f}\n")
            if step == 1 or step % 5 == 0:
                runs.append_metrics(run, {"step": step, "loss": 2 / step + 0.1,
                                          "learning_rate": 1e-4, "epoch": step / 100,
                                          "elapsed_s": round(time.time() - started, 1)})
    return threading.Thread(target=write, daemon=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--fake-run", action="store_true")
    ap.add_argument("--step-seconds", type=float, default=2.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    if args.fake_run:
        os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-app-idle-")
        stop = threading.Event()
        writer = fake_run(args.step_seconds, stop)
    server, url = start_app()
    try:
        with sync_playwright() as p:
            page, browser = open_page(p, url)
            if args.fake_run:
                page.get_by_role("tab", name="Training", exact=True).click()
                writer.start()
                time.sleep(12)
                print(json.dumps({"window": f"training tab, a run writing every "
                                            f"{args.step_seconds:g} s",
                                  **window(page, psutil.Process(server.pid), args.seconds)}),
                      flush=True)
                browser.close()
                return
            page.locator("#dataset-summary").wait_for()
            time.sleep(10)
            print("dataset tab, idle", window(page, psutil.Process(server.pid), args.seconds),
                  flush=True)
            page.get_by_role("tab", name="Training", exact=True).click()
            time.sleep(8)
            print("training tab, idle", window(page, psutil.Process(server.pid), args.seconds),
                  flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(20)
        if args.fake_run:
            stop.set()
            shutil.rmtree(os.environ["WORKBENCH_HOME"], ignore_errors=True)


if __name__ == "__main__":
    main()
