"""`launch.py votes [--json]`: the blind A/B leaderboard (workbench.votes) from the votes
the Chat tab recorded in WORKBENCH_HOME/votes.jsonl: per source, games, wins, losses,
ties, the win rate with its 95% Wilson interval, and a Bradley-Terry score once there are
enough votes. Reads only; loads no model.
"""

from __future__ import annotations

import json


def format_board(board: dict) -> str:
    if not board["rows"]:
        return ("no votes yet: vote in the Chat tab's Blind A/B "
                f"(saved to {board.get('path', 'votes.jsonl')})")
    lines = [f"{board['votes']} votes; win rate counts a tie or 'both bad' as half a win; "
             "95% Wilson interval"]
    if not board["bt_shown"]:
        lines.append(f"Bradley-Terry score after {board['min_votes_for_bt']} votes "
                     f"({board['min_votes_for_bt'] - board['votes']} more)")
    lines += ["", f"{'source':<40} {'games':>5} {'W':>4} {'L':>4} {'T':>4} {'bad':>4} "
              f"{'win rate':>9} {'95% interval':>14} {'BT':>7}"]
    for r in board["rows"]:
        bt = "-" if r["bt"] is None else f"{r['bt']:.0f}"
        lines.append(f"{r['source'][:40]:<40} {r['games']:>5} {r['wins']:>4} {r['losses']:>4} "
                     f"{r['ties']:>4} {r['both_bad']:>4} {100 * r['win_rate']:>8.0f}% "
                     f"{100 * r['low']:>6.0f}-{100 * r['high']:.0f}%{'':>3} {bt:>7}")
    return "\n".join(lines)


def cmd_votes(args) -> int:
    from workbench import votes
    board = votes.leaderboard(votes.read())
    board["path"] = str(votes.votes_path())
    if args.json:
        print(json.dumps(board, indent=1, ensure_ascii=False))
    else:
        print(format_board(board))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "votes", help="the blind A/B leaderboard from the Chat tab's votes",
        description="Win rates (95% Wilson intervals) and Bradley-Terry scores from "
        "WORKBENCH_HOME/votes.jsonl, the Chat tab's blind A/B votes.")
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    p.set_defaults(func=cmd_votes)
