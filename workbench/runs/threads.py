"""How long a command's OpenMP threads spin at a barrier, chosen from what the machine does.

torch's CPU kernels run on OpenMP threads (libgomp), one per core. A thread that reaches a
barrier first spins GOMP_SPINCOUNT rounds (300,000 by default) waiting for the others,
then sleeps. On an otherwise quiet machine spinning is fastest. When other processes keep
the cores busy, the spinning thread takes the core that the thread it waits for needs.
Measured on a 2-core AVX2 machine (bench/README.md, "Threads under load"), cpu-demo:

- two busy processes beside it: 6.6 s a step with torch's default, 3.6 s with this choice;
  one busy process: 5.1 s against 3.0 s with 1,000 rounds;
- a quiet machine: 1,000 rounds measured the same as the default on 2026-12-02 (0.99×,
  5 pairs of 26-step runs), 1.18× in 3 pairs the session before: within the noise.

So torch's default stays wherever nothing says short spins help. A command that runs a
model looks, before torch loads, at how busy the cores were for a moment (/proc/stat over
SAMPLE_S seconds, while this process sleeps; a busy look is taken again a second later, so
that the page which has just started the command, drawing its answer, is not taken for
load). When other processes kept BUSY_CORES or more busy in both looks, it sets
GOMP_SPINCOUNT=SHARED_SPIN_COUNT for itself, else torch's default stays. libgomp reads the
variable once, when torch loads it, so load that starts later does not change the choice.
A GOMP_SPINCOUNT or OMP_WAIT_POLICY the user set wins. The app's children (runs.jobs)
decide the same way, in the child, so a run from the app and one from a terminal get the
same threads on the same machine.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field

SHARED_SPIN_COUNT = "1000"  # rounds; bench/README.md "Spin briefly, then sleep"
BUSY_CORES = 0.5            # cores kept busy by other processes that count as a busy machine
SAMPLE_S = 0.5
CONFIRM_AFTER_S = 1.0       # a busy first look is taken again this much later
USER_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")

_decided: "Choice | None" = None


@dataclass
class Choice:
    spin_count: str | None      # what this process set, or None (torch's default or the user's)
    busy_cores: float | None    # cores other processes kept busy while we looked
    cores: int
    reason: str
    busiest: list = field(default_factory=list)  # [(process name, cores)], busiest first

    def to_dict(self) -> dict:
        return asdict(self)


def read_cpu_times(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot, or None where there is no
    /proc/stat. Idle and I/O wait are not busy; steal is (another guest had the core)."""
    try:
        with open(path, encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 5:
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return sum(ticks) - idle, sum(ticks)


def process_ticks(proc: str = "/proc") -> dict[int, tuple[str, int]]:
    """pid -> (name, user + system clock ticks so far) of every process we may read."""
    out = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue  # gone, or not ours to read
        name = text[text.find("(") + 1:text.rfind(")")]
        rest = text[text.rfind(")") + 2:].split()
        if len(rest) > 12:
            out[int(entry.name)] = (name, int(rest[11]) + int(rest[12]))  # utime, stime
    return out


def busiest(before: dict, after: dict, seconds: float, top: int = 3) -> list[tuple[str, float]]:
    """The processes that used the most CPU between two `process_ticks`, as (name, cores),
    summed by name (a browser's many processes count as one)."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    used: dict[str, float] = {}
    for pid, (name, ticks) in after.items():
        if pid in before and before[pid][0] == name:
            used[name] = used.get(name, 0.0) + (ticks - before[pid][1]) / hz / seconds
    ranked = sorted(((n, round(c, 2)) for n, c in used.items() if c >= 0.05),
                    key=lambda nc: -nc[1])
    return ranked[:top]


def busy_cores(seconds: float = SAMPLE_S, cores: int | None = None
               ) -> tuple[float | None, list[tuple[str, float]]]:
    """How many cores the machine's other processes kept busy over `seconds` (this process
    sleeps meanwhile, so it is not counted), and the busiest of them by name."""
    cores = cores or os.cpu_count() or 1
    first, procs = read_cpu_times(), process_ticks()
    if first is None:
        return None, []
    time.sleep(seconds)
    second = read_cpu_times()
    if second is None or second[1] <= first[1]:
        return None, []
    total = round(cores * (second[0] - first[0]) / (second[1] - first[1]), 2)
    return total, busiest(procs, process_ticks(), seconds)


def sustained_load(cores: int) -> tuple[float | None, list[tuple[str, float]]]:
    """`busy_cores`, taken twice CONFIRM_AFTER_S apart when the first look finds the machine
    busy; the quieter look counts. A burst of a second or two (a browser drawing the page
    that has just started this command) is not the load that slows a whole run."""
    busy, who = busy_cores(cores=cores)
    if busy is None or busy < BUSY_CORES:
        return busy, who
    time.sleep(CONFIRM_AFTER_S)
    again, who_again = busy_cores(cores=cores)
    return (busy, who) if again is None or again >= busy else (again, who_again)


def choose(environ, busy: float | None, cores: int,
           who: list[tuple[str, float]] | None = None) -> Choice:
    """The decision (module doc) for an environment and a measured load (`who`: the
    busiest processes, named in the reason); sets nothing."""
    user = [f"{k}={environ[k]}" for k in USER_VARIABLES if k in environ]
    if user:
        return Choice(None, busy, cores, f"{', '.join(user)} (set by you)")
    if cores < 2:
        return Choice(None, busy, cores, "one core: one thread, nothing to wait for")
    if busy is None:
        return Choice(None, busy, cores, "torch's default (the machine's load is unknown here)")
    named = ", ".join(f"{name} {used:.2f}" for name, used in who or [])
    seen = f"other processes kept {busy:.2f} of {cores} cores busy" + (
        f" ({named})" if named else "")
    if busy >= BUSY_CORES:
        return Choice(SHARED_SPIN_COUNT, busy, cores,
                      f"{seen}: threads sleep after {int(SHARED_SPIN_COUNT):,} spins at a "
                      "barrier instead of taking the cores they share", list(who or []))
    return Choice(None, busy, cores, f"{seen}: torch's default (threads spin at a barrier)",
                  list(who or []))


def apply(environ=None) -> Choice:
    """Decide for this process and set its environment; once, before torch loads. Returns
    the choice (also kept for `decided`)."""
    global _decided
    environ = os.environ if environ is None else environ
    cores = os.cpu_count() or 1
    if "torch" in sys.modules:  # libgomp has read its settings already
        _decided = Choice(None, None, cores, "left as they are (torch was already loaded)")
        return _decided
    user_set = any(k in environ for k in USER_VARIABLES)
    busy, who = (None, []) if user_set or cores < 2 else sustained_load(cores)
    _decided = choose(environ, busy, cores, who)
    if _decided.spin_count is not None:
        environ["GOMP_SPINCOUNT"] = _decided.spin_count
    return _decided


def decided() -> Choice | None:
    """What `apply` chose in this process, or None when it did not run (an in-process call)."""
    return _decided


def report(log) -> dict | None:
    """Log what `apply` chose ("threads: ..."), for a run's log; its dict for status.json,
    or None when it did not run in this process."""
    if _decided is None:
        return None
    log(f"threads: {_decided.reason}")
    return _decided.to_dict()
