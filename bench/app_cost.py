"""What the app costs a training run (issue 9, item 3): the same short cpu-demo job
(a) headless, `launch.py train`, and (b) started from the app's Training tab in headless
Chromium, with the tab left open on the progress view until it ends.

    .venv/bin/python bench/app_cost.py [--steps 31] [--repeats 2] [--warm-app]
        [--modes headless,app] [--settle 60]

Both runs use WORKBENCH_HOME (default ~/.workbench, which must already hold the imported
embedded model; one warm-up run fills the quantised-weight cache). Settings in both:
cpu-demo with train.max_steps=STEPS and no evaluation or sample timeline inside the window
(eval_steps past the end); logging every 5 steps as cpu-demo does. s/step comes from
metrics.jsonl's `elapsed_s`: (last logged - second logged) / the steps between (the first
line, step 1, carries the start-up).
Runs alternate, headless then app, so a change in background load spreads over both.
While the app run trains, the CPU time of the app server and of every Chromium process is
summed (psutil) and reported as a share of one core.

The app run: the page opens, picks cpu-demo, fills the settings on the Training tab, stays
open --settle seconds (as a user's page has been open a while before Start: Chromium's own
work in a page's first minute, which about:blank shows too, is not the app's), then Start.
From Start to the end the bench runs no script in the page and reads nothing from it; it
follows the run through status.json, as it follows the headless run through its process.

--modes picks and orders the runs of each repeat. Besides `headless` and `app`, two that
take the difference apart: `headless-child-env`, `launch.py train` with the environment
the app gives its children (runs.jobs.child_env; until 2026-12-02 it set
GOMP_SPINCOUNT=1000, now every child chooses its threads itself, runs.threads, as a
headless run does), and `app-no-page`,
the same job started through the app's `start` API (gradio_client) with no browser open,
so that only the server runs beside it.

Needs the playwright package and /usr/bin/chromium (see tests/browser).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def settings(steps: int, logging_steps: int = 5) -> dict:
    return {"train.max_steps": steps, "train.logging_steps": logging_steps,
            "train.eval_steps": 10_000, "train.save_steps": 10_000}


def home() -> Path:
    return Path(os.environ.get("WORKBENCH_HOME") or "~/.workbench").expanduser()


def timing(run: Path) -> dict:
    """A finished run's s/step, the steps it was timed over, and the spin count its
    threads chose (status.json's `threads`: runs.threads; "default" when none was set)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    times = {r["step"]: r["elapsed_s"] for r in rows if "loss" in r and "elapsed_s" in r}
    steps = sorted(times)[1:]  # from the first logged step on: start-up left out
    if len(steps) < 2:
        raise SystemExit(f"{run}: too few logged steps to time ({sorted(times)}); more --steps")
    per_step = (times[steps[-1]] - times[steps[0]]) / (steps[-1] - steps[0])
    chosen = run_status(run).get("threads") or {}
    return {"seconds_per_step": round(per_step, 3), "steps_timed": steps[-1] - steps[0],
            "spin_count": chosen.get("spin_count") or "default",
            "busy_cores_at_start": chosen.get("busy_cores")}


def newest_run(prefix: str) -> Path:
    runs = sorted((home() / "runs").glob(f"{prefix}-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(f"no run folder {prefix}-* in {home() / 'runs'}")
    return runs[-1]


def headless(steps: int, name: str, measure: bool = True, child_env: bool = False
             ) -> dict | None:
    cmd = [sys.executable, "launch.py", "train", "cpu-demo", "--name", name]
    for k, v in settings(steps).items():
        cmd += ["--set", f"{k}={v}"]
    env = None
    if child_env:  # what the app's children get (imported here: the product decides it)
        sys.path.insert(0, str(ROOT))
        from workbench.runs.jobs import child_env as app_child_env
        env = app_child_env()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    rate = SwitchRate(lambda: proc.pid)
    rate.start()
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    if not measure:
        return None
    return {"mode": "headless-child-env" if child_env else "headless",
            **timing(newest_run(name)), "wall": round(time.monotonic() - started, 1),
            **rate.rates()}


def from_api(steps: int, name: str) -> dict:
    """The job started through the app's `start` API, no page open: the server alone beside
    it."""
    from gradio_client import Client
    server, url = start_app()
    try:
        started = time.monotonic()
        client = Client(url, verbose=False)
        overrides = [f"{k}={v}" for k, v in settings(steps).items()]
        answer = client.predict("cpu-demo", name, overrides, api_name="/start")
        run = home() / "runs" / answer["run"]
        rate = SwitchRate(lambda: run_status(run).get("pid"))
        rate.start()
        app_side = [psutil.Process(server.pid)]
        before, t0 = cpu_seconds(app_side), time.monotonic()
        state = wait_for_end(run)
        server_busy, window = cpu_seconds(app_side) - before, time.monotonic() - t0
        if state != "completed":
            raise SystemExit(f"the API's run ended {state}")
    finally:
        server.terminate()
        server.wait(20)
    return {"mode": "app-no-page", **timing(run), "wall": round(time.monotonic() - started, 1),
            "server_core_share": round(server_busy / window, 3), **rate.rates()}


def run_status(run: Path) -> dict:
    """The run's status.json ({} while it is missing or half written)."""
    try:
        return json.loads((run / "status.json").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def thread_switches(pids: list[int]) -> dict[tuple[int, str], tuple[int, int]]:
    """(voluntary, involuntary) context switches so far of every thread of `pids`, by
    (thread id, thread name) (Linux /proc; psutil counts only a process's main thread).
    Voluntary: a thread slept (an OpenMP thread at a barrier, once its spin count ran out);
    involuntary: it was preempted. A thread that wakes often takes a core from a training
    thread for a moment, however little CPU it uses."""
    out = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                lines = (task / "status").read_text().splitlines()
                name = (task / "comm").read_text().strip()
            except OSError:
                continue
            count = {line.split(":")[0]: int(line.split()[1]) for line in lines
                     if "ctxt_switches:" in line}
            out[(int(task.name), name)] = (count.get("voluntary_ctxt_switches", 0),
                                           count.get("nonvoluntary_ctxt_switches", 0))
    return out


def switches(pids: list[int]) -> tuple[int, int]:
    """(voluntary, involuntary) context switches so far of all threads of `pids` together."""
    counts = thread_switches(pids).values()
    return sum(v for v, _ in counts), sum(i for _, i in counts)


def per_thread_rates(old: dict, new: dict, seconds: float) -> dict[str, float]:
    """Switches (both kinds) per second between two thread_switches() by thread name, of
    the threads alive at the end (one born in between counts from 0; one that ended is
    left out, so the sums never go negative)."""
    out: dict[str, float] = {}
    for (tid, name), (vol, invol) in new.items():
        before = sum(old.get((tid, name), (0, 0)))
        out[name] = out.get(name, 0.0) + (vol + invol - before) / seconds
    return {k: round(v, 1) for k, v in out.items()}


class SwitchRate(threading.Thread):
    """Samples switches() of the training process every 2 s while it lives (its last sample
    must come before it ends); rates() gives per-second rates between its first and last
    sample. Chromium's threads (browser=True) are counted only twice, when the sampler
    starts and when rates() is called: walking every Chromium thread in /proc each 2 s cost
    the machine about as much as the page it measures."""

    def __init__(self, train_pid, browser: bool = False):
        super().__init__(daemon=True)
        self.train_pid, self.browser = train_pid, browser
        self.samples: list[tuple[float, tuple[int, int]]] = []
        self.browser_first: tuple[float, dict] | None = None
        self.done = threading.Event()

    def run(self):
        if self.browser:
            self.browser_first = time.monotonic(), thread_switches(chromium_pids())
        while not self.done.wait(2.0):
            pid = self.train_pid()
            if not pid or not psutil.pid_exists(pid):
                continue
            train = switches([pid])
            if train != (0, 0):
                self.samples.append((time.monotonic(), train))

    def rates(self) -> dict:
        self.done.set()
        out = {}
        if len(self.samples) >= 2:
            (t0, a0), (t1, a1) = self.samples[0], self.samples[-1]
            out = {"train_sleeps_per_s": round((a1[0] - a0[0]) / (t1 - t0), 1),
                   "train_preempted_per_s": round((a1[1] - a0[1]) / (t1 - t0), 1)}
        if self.browser_first is not None:
            t0, b0 = self.browser_first
            b1 = thread_switches(chromium_pids())
            out["browser_switches_per_s"] = round(
                sum(per_thread_rates(b0, b1, time.monotonic() - t0).values()), 1)
        return out


def chromium_pids() -> list[int]:
    return [c.pid for c in psutil.process_iter(["name"])
            if "chrom" in (c.info["name"] or "").lower()]


def wait_for_end(run: Path) -> str:
    """Wait, reading status.json every 2 s, until the run ended; its final state."""
    while (state := run_status(run).get("state")) not in ("completed", "failed", "stopped"):
        time.sleep(2)
    return state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def start_app() -> tuple[subprocess.Popen, str]:
    """`launch.py ui` on a free port, returned once it answers: (process, URL)."""
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "launch.py", "ui", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            time.sleep(0.3)
    return server, url


def open_page(playwright, url: str):
    """Headless Chromium at 1280x900 on `url`: (page, browser)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    return page, browser


def from_app(steps: int, name: str, measure: bool = True, settle: float = 0.0) -> dict | None:
    from playwright.sync_api import sync_playwright
    name = f"{name}{int(time.time())}"  # unique: the page must not match an older run
    server, url = start_app()
    try:
        with sync_playwright() as p:
            page, browser = open_page(p, url)
            page.locator("#preset-choose input").click()
            page.get_by_role("option", name="cpu-demo · built-in").click()
            page.get_by_role("tab", name="Training", exact=True).click()
            for key, value in settings(steps).items():
                box = page.locator(f"#f-{key.replace('.', '-').replace('_', '-')} input").first
                box.fill(str(value))
                box.press("Tab")
            page.locator("#train-run-name textarea, #train-run-name input").first.fill(name)
            time.sleep(settle)  # the page open a while before Start, as a user's would be
            started = time.monotonic()
            page.locator("#train-start").click()
            # From here the page is left alone: no script run in it, no element read, until
            # the run ended (a wait_for_function polling the progress box every 2 s forced a
            # layout each time, which the app itself does not do). The run is followed through
            # its folder, as the headless run is through its process.
            run = None
            for _ in range(120):
                found = sorted((home() / "runs").glob(f"{name}-*"))
                if found and run_status(found[-1]).get("pid"):
                    run = found[-1]
                    break
                time.sleep(1)
            if run is None:
                page.screenshot(path=str(ROOT / "bench" / "results" / "app_cost_failure.png"),
                                full_page=True)
                raise SystemExit(f"the app started no run {name}-* within 120 s")
            app_side = [psutil.Process(server.pid)]
            browser_side = [psutil.Process(pid) for pid in chromium_pids()]
            rate = SwitchRate(lambda: run_status(run).get("pid"), browser=True)
            rate.start()
            before = cpu_seconds(app_side), cpu_seconds(browser_side)
            t0 = time.monotonic()
            wait_for_end(run)
            switch_rates = rate.rates()
            server_busy = cpu_seconds(app_side) - before[0]
            browser_busy = cpu_seconds(browser_side) - before[1]
            window = time.monotonic() - t0
            page.wait_for_function(  # the page saw the end too
                "/completed|failed/.test(document.querySelector('#train-progress').innerText)",
                timeout=60_000, polling=1000)
            progress = page.locator("#train-progress").inner_text()
            browser.close()
        if "completed" not in progress:
            raise SystemExit(f"the app's run did not complete:\n{progress}")
    finally:
        server.terminate()
        server.wait(20)
    if not measure:
        return None
    return {"mode": "app", **timing(newest_run(name)),
            "wall": round(time.monotonic() - started, 1),
            "app_and_browser_core_share": round((server_busy + browser_busy) / window, 3),
            "server_core_share": round(server_busy / window, 3),
            "browser_core_share": round(browser_busy / window, 3), **switch_rates}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=31)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warm-app", action="store_true",
                    help="also one unmeasured run from the app before the measured ones")
    ap.add_argument("--modes", default="headless,app",
                    help="comma-separated, in the order of each repeat: headless, app, "
                         "headless-child-env, app-no-page")
    ap.add_argument("--out", default="app_cost.json", help="file name in bench/results")
    ap.add_argument("--settle", type=float, default=60.0,
                    help="seconds the page stays open on the Training tab before Start "
                         "(Chromium's own start-up work is over by then)")
    args = ap.parse_args()
    modes = args.modes.split(",")
    runners = {"headless": headless, "app-no-page": from_api,
               "app": lambda steps, name: from_app(steps, name, settle=args.settle),
               "headless-child-env": lambda steps, name: headless(steps, name, child_env=True)}
    unknown = sorted(set(modes) - set(runners))
    if unknown:
        raise SystemExit(f"--modes: unknown {', '.join(unknown)}; known: {', '.join(runners)}")
    import torch
    out = ROOT / "bench" / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    results = {"cpu": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
               "steps": args.steps, "modes": modes, "settle_s": args.settle,
               "load_before": os.getloadavg()[0],
               "runs": []}
    headless(3, "appcost-warmup", measure=False)  # caches, not measured
    if args.warm_app:  # the app's first start (imports, Chromium) from a cold file cache
        from_app(3, "appcost-warmapp", measure=False)
    for rep in range(args.repeats):
        for mode in modes:
            r = runners[mode](args.steps, f"appcost-{mode}")
            r["repeat"] = rep
            print(json.dumps(r), flush=True)
            results["runs"].append(r)
            out.write_text(json.dumps(results, indent=1))
    med = {mode: statistics.median(r["seconds_per_step"] for r in results["runs"]
                                   if r["mode"] == mode) for mode in modes}
    results["median"] = med
    out.write_text(json.dumps(results, indent=1))
    base = med.get("headless") or next(iter(med.values()))
    print(f"\nCPU {results['cpu']}, {results['cores']} cores; cpu-demo, {args.steps} steps, "
          f"median of {args.repeats} runs each: " + ", ".join(
              f"{mode} {v:.2f} s/step ({v / base:.3f}x)" for mode, v in med.items()))


if __name__ == "__main__":
    main()
