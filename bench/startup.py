"""Start-up time of the app: command -> first HTTP 200 on the page, median of N runs.

    .venv/bin/python bench/startup.py [--runs 5] [--cmd "launch.py ui"]

Each run starts `python launch.py ui --port P --home TMP` (a fresh WORKBENCH_HOME) as a
new process, polls http://127.0.0.1:P/ every 20 ms until it answers 200, records the
elapsed wall time, then stops the process. Target (issue 3): under 5 s on this machine.
It also reports whether torch / transformers / trl were imported by the server process
(they must not be: they load lazily in the handlers that need them).
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "trl", "peft")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_200(url: str, proc: subprocess.Popen, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.02)
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far: unlike wall time, barely moved by other
    work on the machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def heavy_modules(pid: int) -> list[str]:
    """Which heavy libraries the server process has mapped (their shared objects)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    return [m for m in HEAVY if f"/site-packages/{m}/" in maps]


def one_run(cmd: list[str], timeout: float) -> tuple[float | None, float | None, list[str]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        argv = [sys.executable, *cmd, "--port", str(port), "--home", home]
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            t1 = wait_200(f"http://127.0.0.1:{port}/", proc, timeout)
            cpu = cpu_seconds(proc.pid)
            heavy = heavy_modules(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if t1 is None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            print(f"  run failed (no HTTP 200 within {timeout}s)\n{err}", file=sys.stderr)
            return None, None, heavy
        return t1 - t0, cpu, heavy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cmd", default="launch.py ui",
                    help="what follows `python` (default: launch.py ui)")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    cmd = shlex.split(args.cmd)
    times, cpus = [], []
    one_run(cmd, args.timeout)  # warm-up: .pyc files and the OS file cache
    load = os.getloadavg()[0]
    for i in range(args.runs):
        seconds, cpu, heavy = one_run(cmd, args.timeout)
        if seconds is None:
            return 1
        times.append(seconds)
        cpus.append(cpu or 0.0)
        print(f"run {i + 1}: {seconds:.2f} s to HTTP 200, {cpu or 0:.2f} s CPU"
              + (f"  (heavy modules loaded: {', '.join(heavy)})" if heavy else ""))
    med = statistics.median(times)
    print(f"median of {len(times)}: {med:.2f} s wall (min {min(times):.2f}, max "
          f"{max(times):.2f}), {statistics.median(cpus):.2f} s CPU; load average "
          f"{load:.1f} on {os.cpu_count()} CPUs  target < 5 s: "
          f"{'ok' if med < 5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
