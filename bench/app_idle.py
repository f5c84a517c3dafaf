"""What the open app costs when nothing happens (issue 9, item 3): the CPU share of the app
server and of Chromium with the page idle on the Dataset tab (no timer) and on the Training
tab (its poll ticking, no run training), and which page elements changed meanwhile.

    .venv/bin/python bench/app_idle.py [--seconds 30]

Uses WORKBENCH_HOME as it is (its runs are listed on the Training tab). Each window is
measured after the tab has settled; the element counts come from a MutationObserver on the
page (mutations per element id, nearest id up the tree). One line per window; nothing kept.
"""

from __future__ import annotations

import argparse
import time

import psutil

from app_cost import cpu_seconds, open_page, start_app

COUNT_MUTATIONS = """() => { window.__wbMut = {}; if (window.__wbObs) window.__wbObs.disconnect();
  window.__wbObs = new MutationObserver(ms => { for (const m of ms) {
    let el = m.target.nodeType === 1 ? m.target : m.target.parentElement, id = null;
    while (el && !id) { id = el.id || null; el = el.parentElement; }
    window.__wbMut[id] = (window.__wbMut[id] || 0) + 1; } });
  window.__wbObs.observe(document.body, {subtree: true, childList: true, attributes: true,
                                          characterData: true}); }"""


def window(page, server: psutil.Process, seconds: float) -> dict:
    browser = [c for c in psutil.process_iter(["name"])
               if "chrom" in (c.info["name"] or "").lower()]
    page.evaluate(COUNT_MUTATIONS)
    before = cpu_seconds([server]), cpu_seconds(browser)
    time.sleep(seconds)
    counts = page.evaluate("() => window.__wbMut")
    return {"server_core_share": round((cpu_seconds([server]) - before[0]) / seconds, 3),
            "browser_core_share": round((cpu_seconds(browser) - before[1]) / seconds, 3),
            "mutations": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    server, url = start_app()
    try:
        with sync_playwright() as p:
            page, browser = open_page(p, url)
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


if __name__ == "__main__":
    main()
