"""Blind A/B votes: which of two answers to the same prompt a person preferred, and the
leaderboard the votes make.

    python launch.py votes [--json]
    >>> from workbench import votes
    >>> votes.record("Who are you?", "base:SmolLM2-135M-Instruct", "identity", "b")
    >>> votes.leaderboard(votes.read())["rows"][0]["source"]     # 'identity'

The Chat tab's "Blind A/B" shows two answers from two sources (a run, or "base:<model>")
in random order with the names hidden; the vote is A, B, tie or both bad. Each vote is
one JSON line appended to WORKBENCH_HOME/votes.jsonl: {"time", "prompt", "sources":
[source shown as A, source shown as B], "vote", "answers": [A's text, B's text]}.

The leaderboard, per source: games, wins, losses, ties (a tie and "both bad" count as
half a win for each side; "both bad" is also counted on its own), the win rate
(wins + ties/2) / games with its 95% Wilson interval, and, once there are at least
MIN_VOTES_FOR_BT votes, a Bradley-Terry score on the Elo scale (1000 = the average
source; +400 = 10 times the odds of winning). The Bradley-Terry strengths are fitted with
Hunter's MM iteration, each pair that met given one extra virtual tie so that a source
that never lost still gets a finite score.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from workbench import fsio, paths
from workbench.errors import WorkbenchError, describe, plain

__all__ = ["VOTES", "MIN_VOTES_FOR_BT", "votes_path", "record", "read", "wilson",
           "bradley_terry", "leaderboard"]

VOTES_FILE = "votes.jsonl"
VOTES = ("a", "b", "tie", "both_bad")
MIN_VOTES_FOR_BT = 10  # fewer votes: the Bradley-Terry score is noise, none is shown
Z95 = 1.959964          # the normal quantile of a two-sided 95% interval
MAX_TEXT = 4000         # characters of a prompt or an answer kept in a vote


def votes_path(home: str | os.PathLike | None = None) -> Path:
    return Path(home) / VOTES_FILE if home is not None else paths.home() / VOTES_FILE


def record(prompt: str, source_a: str, source_b: str, vote: str, *,
           answers: tuple[str, str] | None = None, path: str | os.PathLike | None = None,
           now: datetime | None = None) -> dict:
    """Append one vote to votes.jsonl (default: WORKBENCH_HOME's) and return it. A vote is
    one line written with one write() on a file opened for appending, under the folder
    lock, then fsynced: two writers never interleave, a crash loses at most this line."""
    vote = str(vote).strip().lower().replace(" ", "_")
    if vote not in VOTES:
        raise WorkbenchError(f"vote: {plain(vote, 30)!r} is not one of {', '.join(VOTES)}")
    if not source_a or not source_b or source_a == source_b:
        raise WorkbenchError(f"vote: needs two different sources, got {plain(source_a, 60)!r}"
                             f" and {plain(source_b, 60)!r}")
    entry = {"time": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
             "prompt": str(prompt)[:MAX_TEXT], "sources": [str(source_a), str(source_b)],
             "vote": vote}
    if answers is not None:
        entry["answers"] = [str(a)[:MAX_TEXT] for a in answers]
    target = Path(path) if path is not None else votes_path()
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with fsio.folder_lock(target.parent):
            fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                _repair_tail(fd)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        fsio.fsync_dir(target.parent)
    except OSError as exc:
        raise WorkbenchError(f"cannot save the vote to {plain(str(target), 80)}: "
                             f"{describe(exc)}") from None
    return entry


def _repair_tail(fd: int) -> None:
    """A line cut short by a crash gets its newline, so the next vote starts a line."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")


def read(path: str | os.PathLike | None = None) -> list[dict]:
    """The votes, oldest first; a line that is not a well-formed vote is skipped."""
    target = Path(path) if path is not None else votes_path()
    out = []
    try:
        text = target.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise WorkbenchError(f"cannot read {plain(str(target), 80)}: {describe(exc)}") from None
    for line in text.splitlines():
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if (isinstance(v, dict) and v.get("vote") in VOTES
                and isinstance(v.get("sources"), list) and len(v["sources"]) == 2
                and all(isinstance(s, str) and s for s in v["sources"])
                and v["sources"][0] != v["sources"][1]):
            out.append(v)
    return out


def wilson(wins: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a share of wins/n (0..1 both ends; (0, 1) for n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _outcomes(votes: list[dict]):
    """(source A, source B, A's score: 1, 0 or 0.5) per vote."""
    for v in votes:
        a, b = v["sources"]
        yield a, b, {"a": 1.0, "b": 0.0}.get(v["vote"], 0.5)


def bradley_terry(votes: list[dict], *, prior: float = 1.0, iterations: int = 2000,
                  tol: float = 1e-10) -> dict[str, float]:
    """{source: score} on the Elo scale (mean 1000, +400 = 10x the odds), from the votes:
    ties count half a win each side; every pair that met gets `prior` virtual ties."""
    wins: dict[str, float] = {}
    games: dict[tuple[str, str], float] = {}
    for a, b, score in _outcomes(votes):
        wins[a] = wins.get(a, 0.0) + score
        wins[b] = wins.get(b, 0.0) + 1.0 - score
        pair = (a, b) if a < b else (b, a)
        games[pair] = games.get(pair, 0.0) + 1.0
    if not wins:
        return {}
    for pair in games:
        games[pair] += prior
        for s in pair:
            wins[s] += prior / 2
    strength = {s: 1.0 for s in wins}
    for _ in range(iterations):
        new = {}
        for s in strength:
            denom = sum(n / (strength[i] + strength[j])
                        for (i, j), n in games.items() if s in (i, j))
            new[s] = wins[s] / denom if denom else strength[s]
        mean_log = sum(math.log(x) for x in new.values()) / len(new)
        new = {s: x / math.exp(mean_log) for s, x in new.items()}
        change = max(abs(math.log(new[s] / strength[s])) for s in new)
        strength = new
        if change < tol:
            break
    return {s: 1000 + 400 * math.log10(x) for s, x in strength.items()}


def leaderboard(votes: list[dict]) -> dict:
    """{"votes", "min_votes_for_bt", "bt_shown", "rows": [...]} with a row per source,
    best first (by Bradley-Terry score once shown, else by win rate)."""
    rows: dict[str, dict] = {}

    def row(source: str) -> dict:
        return rows.setdefault(source, {"source": source, "games": 0, "wins": 0,
                                        "losses": 0, "ties": 0, "both_bad": 0})

    for v in votes:
        a, b = (row(s) for s in v["sources"])
        for r in (a, b):
            r["games"] += 1
        if v["vote"] == "a":
            a["wins"] += 1
            b["losses"] += 1
        elif v["vote"] == "b":
            b["wins"] += 1
            a["losses"] += 1
        else:
            a["ties"] += 1
            b["ties"] += 1
            if v["vote"] == "both_bad":
                a["both_bad"] += 1
                b["both_bad"] += 1
    shown = len(votes) >= MIN_VOTES_FOR_BT
    scores = bradley_terry(votes) if shown else {}
    for r in rows.values():
        points = r["wins"] + r["ties"] / 2
        r["win_rate"] = round(points / r["games"], 4)
        low, high = wilson(points, r["games"])
        r["low"], r["high"] = round(low, 4), round(high, 4)
        r["bt"] = round(scores[r["source"]], 1) if r["source"] in scores else None
    order = sorted(rows.values(), key=lambda r: (-(r["bt"] if r["bt"] is not None else 0),
                                                 -r["win_rate"], -r["games"], r["source"]))
    return {"votes": len(votes), "min_votes_for_bt": MIN_VOTES_FOR_BT, "bt_shown": shown,
            "rows": order}
