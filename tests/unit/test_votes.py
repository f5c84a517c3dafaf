"""Blind A/B votes (workbench.votes): the Wilson interval and the Bradley-Terry score against
values worked out by hand, votes appended to votes.jsonl (safely, from several threads),
the leaderboard, and `launch.py votes [--json]`."""

import json
import math
import threading
from datetime import datetime, timezone

import pytest

from workbench import votes
from workbench.cli import main
from workbench.errors import WorkbenchError


def vote(a, b, v):
    return {"prompt": "p", "sources": [a, b], "vote": v}


def test_wilson_against_hand_computed_values():
    # 7 of 10, z = 1.96: centre (0.7 + z²/20) / (1 + z²/10) = 0.6445,
    # half-width z / (1 + z²/10) * sqrt(0.021 + z²/400) = 0.2477
    low, high = votes.wilson(7, 10)
    assert low == pytest.approx(0.3968, abs=1e-4)
    assert high == pytest.approx(0.8922, abs=1e-4)
    # 0 of 5: [0, z² / (n + z²)]
    low, high = votes.wilson(0, 5)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(3.8415 / 8.8415, abs=1e-4)
    # symmetric around one half
    low, high = votes.wilson(5, 10)
    assert low + high == pytest.approx(1.0)
    assert votes.wilson(0, 0) == (0.0, 1.0)


def test_bradley_terry_two_sources_by_hand():
    # A beat B three times, B beat A once; one virtual tie (half a win each): A 3.5, B 1.5,
    # so strength A / B = 7/3 and the Elo-scale gap is 400 log10(7/3) around 1000
    vs = [vote("A", "B", "a")] * 2 + [vote("B", "A", "b"), vote("B", "A", "a")]
    scores = votes.bradley_terry(vs)
    gap = 400 * math.log10(7 / 3)
    assert scores["A"] == pytest.approx(1000 + gap / 2, abs=1e-6)
    assert scores["B"] == pytest.approx(1000 - gap / 2, abs=1e-6)


def test_bradley_terry_symmetric_cases():
    cycle = [vote("A", "B", "a"), vote("B", "C", "a"), vote("C", "A", "a")]
    for s in votes.bradley_terry(cycle).values():
        assert s == pytest.approx(1000, abs=1e-6)
    ties = [vote("A", "B", "tie"), vote("A", "B", "both_bad")]
    assert votes.bradley_terry(ties) == pytest.approx({"A": 1000, "B": 1000})
    # a source that never lost still gets a finite score, above the others
    sweep = [vote("A", "B", "a")] * 5 + [vote("C", "A", "b")] * 5 + [vote("B", "C", "tie")]
    scores = votes.bradley_terry(sweep)
    assert all(math.isfinite(s) for s in scores.values())
    assert scores["A"] > scores["B"] and scores["A"] > scores["C"]
    assert votes.bradley_terry([]) == {}


def test_record_appends_lines_and_read_skips_bad_ones(tmp_path):
    path = tmp_path / "home" / "votes.jsonl"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    first = votes.record("Who are you?", "base:tiny", "run-a", "B", answers=("x", "y"),
                         path=path, now=when)
    assert first == {"time": "2026-01-02T03:04:05+00:00", "prompt": "Who are you?",
                     "sources": ["base:tiny", "run-a"], "vote": "b", "answers": ["x", "y"]}
    votes.record("2+2?", "run-a", "run-b", "both bad", path=path)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0]) == first
    assert json.loads(lines[1])["vote"] == "both_bad"
    # a line cut short by a crash, and junk: skipped; the next vote starts its own line
    with open(path, "a") as fh:
        fh.write('{"prompt": "cut", "sources": ["a"')
    votes.record("later", "run-b", "run-a", "tie", path=path)
    with open(path, "a") as fh:
        fh.write('{"vote": "a", "sources": ["x", "x"]}\n[1, 2]\n')
    got = votes.read(path)
    assert [v["prompt"] for v in got] == ["Who are you?", "2+2?", "later"]
    assert votes.read(tmp_path / "missing.jsonl") == []


def test_record_refuses_a_bad_vote(tmp_path):
    path = tmp_path / "votes.jsonl"
    with pytest.raises(WorkbenchError, match="not one of a, b, tie, both_bad"):
        votes.record("p", "x", "y", "maybe", path=path)
    with pytest.raises(WorkbenchError, match="two different sources"):
        votes.record("p", "x", "x", "a", path=path)
    assert not path.exists()


def test_votes_from_several_threads_never_interleave(tmp_path):
    path = tmp_path / "votes.jsonl"
    long_answer = "word " * 2000  # a line far over one pipe buffer

    def writer(i):
        for k in range(20):
            votes.record(f"p{i}-{k}", f"s{i}", "base:m", "a", answers=(long_answer, "no"),
                         path=path)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 80
    assert len(votes.read(path)) == 80  # every line is a whole vote


def test_leaderboard_counts_rates_and_the_bt_threshold():
    vs = [vote("run", "base", "a")] * 3 + [vote("base", "run", "tie")]
    board = votes.leaderboard(vs)
    assert board["votes"] == 4 and not board["bt_shown"]
    run, base = board["rows"]
    assert run["source"] == "run"
    assert (run["games"], run["wins"], run["losses"], run["ties"]) == (4, 3, 0, 1)
    assert run["win_rate"] == pytest.approx(3.5 / 4)
    low, high = votes.wilson(3.5, 4)
    assert (run["low"], run["high"]) == (round(low, 4), round(high, 4))
    assert base["win_rate"] == pytest.approx(0.5 / 4) and base["bt"] is None
    # enough votes: Bradley-Terry scores, best first
    more = vs + [vote("run", "base", "b")] * 2 + [vote("other", "run", "both_bad")] * 4
    board = votes.leaderboard(more)
    assert board["votes"] == votes.MIN_VOTES_FOR_BT and board["bt_shown"]
    by = {r["source"]: r for r in board["rows"]}
    assert by["other"]["both_bad"] == 4 and by["run"]["both_bad"] == 4
    assert [r["source"] for r in board["rows"]] == sorted(
        by, key=lambda s: -by[s]["bt"])
    assert by["run"]["bt"] > by["base"]["bt"]
    assert votes.leaderboard([])["rows"] == []


def test_votes_command(capsys):
    assert main(["votes"]) == 0
    assert "no votes yet" in capsys.readouterr().out
    for _ in range(3):
        votes.record("p", "run-a", "base:m", "a")
    assert main(["votes", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert board["votes"] == 3 and board["rows"][0]["source"] == "run-a"
    assert board["path"].endswith("votes.jsonl")
    assert main(["votes"]) == 0
    out = capsys.readouterr().out
    assert "run-a" in out and "Bradley-Terry score after 10 votes (7 more)" in out
