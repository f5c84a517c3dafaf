"""How long a command's OpenMP threads spin at a barrier, chosen from what the machine does.

torch's CPU kernels run on OpenMP threads (libgomp), one per core. A thread that reaches a
barrier first spins GOMP_SPINCOUNT rounds (300,000 by default) waiting for the others,
then sleeps. On an otherwise quiet machine spinning is fastest. When other processes keep
the cores busy, the spinning thread takes the core that the thread it waits for needs.
Measured on a 2-core AVX2 machine (bench/README.md, "Threads under load"), cpu-demo:

- two busy processes beside it: 19.9 s a step with torch's default, 3.6 s with 1,000 rounds;
- a quiet machine: 1,000 rounds cost about 18% (25-step runs, alternating).

No one setting is best in both, so a command that runs a model looks, before torch loads,
at how busy the cores were for a moment (/proc/stat over SAMPLE_S seconds, while this
process sleeps): when other processes kept BUSY_CORES or more busy, it sets
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
from dataclasses import asdict, dataclass

SHARED_SPIN_COUNT = "1000"  # rounds; bench/README.md "Spin briefly, then sleep"
BUSY_CORES = 0.5            # cores kept busy by other processes that count as a busy machine
SAMPLE_S = 0.5
USER_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")

_decided: "Choice | None" = None


@dataclass
class Choice:
    spin_count: str | None      # what this process set, or None (torch's default or the user's)
    busy_cores: float | None    # cores other processes kept busy while we looked
    cores: int
    reason: str

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


def busy_cores(seconds: float = SAMPLE_S, cores: int | None = None) -> float | None:
    """How many cores the machine's other processes kept busy over `seconds` (this process
    sleeps meanwhile, so it is not counted)."""
    cores = cores or os.cpu_count() or 1
    first = read_cpu_times()
    if first is None:
        return None
    time.sleep(seconds)
    second = read_cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    return round(cores * (second[0] - first[0]) / (second[1] - first[1]), 2)


def choose(environ, busy: float | None, cores: int) -> Choice:
    """The decision (module doc) for an environment and a measured load; sets nothing."""
    user = [f"{k}={environ[k]}" for k in USER_VARIABLES if k in environ]
    if user:
        return Choice(None, busy, cores, f"{', '.join(user)} (set by you)")
    if cores < 2:
        return Choice(None, busy, cores, "one core: one thread, nothing to wait for")
    if busy is None:
        return Choice(None, busy, cores, "torch's default (the machine's load is unknown here)")
    seen = f"other processes kept {busy:.1f} of {cores} cores busy"
    if busy >= BUSY_CORES:
        return Choice(SHARED_SPIN_COUNT, busy, cores,
                      f"{seen}: threads sleep after {int(SHARED_SPIN_COUNT):,} spins at a "
                      "barrier instead of taking the cores they share")
    return Choice(None, busy, cores, f"{seen}: torch's default (threads spin at a barrier)")


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
    busy = None if user_set or cores < 2 else busy_cores(cores=cores)
    _decided = choose(environ, busy, cores)
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
