"""How a command's threads wait at a barrier, chosen from the machine's load (runs.threads)."""

from __future__ import annotations

import argparse
import sys

import pytest

from workbench import cli
from workbench.runs import threads


def test_a_busy_machine_gets_short_spins_a_quiet_one_torch_default():
    busy = threads.choose({}, busy=1.9, cores=2)
    assert busy.spin_count == "1000"
    assert "1.90 of 2 cores" in busy.reason and "sleep after 1,000 spins" in busy.reason
    quiet = threads.choose({}, busy=0.1, cores=2)
    assert quiet.spin_count is None and "torch's default" in quiet.reason
    # the threshold itself
    assert threads.choose({}, busy=threads.BUSY_CORES, cores=2).spin_count == "1000"
    assert threads.choose({}, busy=threads.BUSY_CORES - 0.01, cores=2).spin_count is None


@pytest.mark.parametrize("var", ["GOMP_SPINCOUNT", "OMP_WAIT_POLICY"])
def test_what_the_user_set_wins(var):
    choice = threads.choose({var: "PASSIVE" if var == "OMP_WAIT_POLICY" else "50"},
                            busy=2.0, cores=2)
    assert choice.spin_count is None and "set by you" in choice.reason and var in choice.reason


def test_one_core_or_an_unknown_load_leaves_torch_alone():
    assert threads.choose({}, busy=3.0, cores=1).spin_count is None
    unknown = threads.choose({}, busy=None, cores=4)
    assert unknown.spin_count is None and "unknown" in unknown.reason


def test_busy_cores_counts_ticks_between_two_reads(monkeypatch):
    # (busy, total) ticks of all cores: 90 of 100 ticks busy on 2 cores = 1.8 cores
    reads = iter([(1000, 5000), (1090, 5100)])
    procs = iter([{7: ("busy", 100)}, {7: ("busy", 145)}])
    monkeypatch.setattr(threads, "read_cpu_times", lambda: next(reads))
    monkeypatch.setattr(threads, "process_ticks", lambda: next(procs))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    busy, who = threads.busy_cores(seconds=0.5, cores=2)
    assert busy == 1.8 and who == [("busy", 0.9)]
    monkeypatch.setattr(threads, "read_cpu_times", lambda: None)  # no /proc/stat
    monkeypatch.setattr(threads, "process_ticks", lambda: {})
    assert threads.busy_cores(cores=2) == (None, [])


def test_a_burst_is_looked_at_again_and_the_quieter_look_counts(monkeypatch):
    looks = iter([(1.1, [("chromium", 0.9)]), (0.1, [("chromium", 0.1)])])
    calls = []
    monkeypatch.setattr(threads, "busy_cores", lambda cores: calls.append(1) or next(looks))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.sustained_load(2) == (0.1, [("chromium", 0.1)])
    # sustained: both looks busy, the quieter one counts
    looks = iter([(1.9, [("python", 1.9)]), (2.0, [("python", 2.0)])])
    assert threads.sustained_load(2) == (1.9, [("python", 1.9)])
    # quiet at once: one look only
    calls.clear()
    looks = iter([(0.2, [])])
    assert threads.sustained_load(2) == (0.2, []) and len(calls) == 1


def test_busiest_sums_by_name_and_skips_idle_and_new_processes(monkeypatch):
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    before = {1: ("chromium", 10), 2: ("chromium", 20), 3: ("python", 0), 4: ("idle", 5)}
    after = {1: ("chromium", 40), 2: ("chromium", 30), 3: ("python", 100), 4: ("idle", 6),
             5: ("new", 1000)}
    # 1 s: chromium 30+10 ticks = 0.4 core; python 1.0; idle 0.01 (below 0.05, left out);
    # pid 5 started inside the window, so its ticks are not all from it
    assert threads.busiest(before, after, 1.0) == [("python", 1.0), ("chromium", 0.4)]


def test_process_ticks_reads_names_with_spaces_and_parentheses(tmp_path):
    (tmp_path / "42").mkdir()
    fields = " ".join(["S"] + ["0"] * 10 + ["150", "30"] + ["0"] * 30)
    (tmp_path / "42" / "stat").write_text(f"42 (Web Content (x)) {fields}\n")
    (tmp_path / "self").mkdir()  # not a pid
    (tmp_path / "43").mkdir()    # a process gone before we read it: skipped
    assert threads.process_ticks(str(tmp_path)) == {42: ("Web Content (x)", 180)}


def test_read_cpu_times_parses_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 5 20 800 50 1 2 3 0 0\ncpu0 50 2 10 400 25 0 1 1 0 0\n")
    assert threads.read_cpu_times(str(stat)) == (131, 981)
    stat.write_text("intr 1 2 3\n")
    assert threads.read_cpu_times(str(stat)) is None
    assert threads.read_cpu_times(str(tmp_path / "missing")) is None


def test_apply_sets_the_variable_before_torch_loads(monkeypatch):
    monkeypatch.setattr(threads, "_decided", None)  # restored: other tests see no choice
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(threads, "sustained_load", lambda cores: (2.0, [("python", 1.9)]))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    env: dict = {}
    choice = threads.apply(env)
    assert env == {"GOMP_SPINCOUNT": "1000"} and threads.decided() is choice
    lines: list = []
    assert threads.report(lines.append)["spin_count"] == "1000"
    assert lines and lines[0].startswith(
        "threads: other processes kept 2.00 of 2 cores busy (python 1.90): threads sleep")
    monkeypatch.setattr(threads, "sustained_load", lambda cores: (0.0, []))
    env = {}
    assert threads.apply(env).spin_count is None and env == {}


def test_apply_after_torch_loaded_changes_nothing(monkeypatch):
    monkeypatch.setattr(threads, "_decided", None)
    import torch  # noqa: F401 - loaded, as in a test process
    monkeypatch.setattr(threads, "sustained_load", lambda cores: pytest.fail("measured"))
    env: dict = {}
    choice = threads.apply(env)
    assert env == {} and "already loaded" in choice.reason


@pytest.mark.parametrize("argv,applies", [
    (["train", "cpu-demo"], True), (["dryrun", "cpu-demo"], True), (["chat", "RUN"], True),
    (["quant", "compare", "cpu-demo"], True), (["presets", "list"], False),
    (["runs", "list"], False)])
def test_the_cli_chooses_for_commands_that_run_a_model(monkeypatch, argv, applies):
    called = []
    monkeypatch.setattr(threads, "apply", lambda: called.append(True))
    args = argparse.Namespace(command=argv[0],
                              quant_command=argv[1] if argv[0] == "quant" else None)
    cli._choose_threads(args)
    assert called == ([True] if applies else [])
