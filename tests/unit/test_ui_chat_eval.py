"""The Chat tab's Prompt set and Blind A/B handlers without a model (ui/tabs/chat_eval.py):
a vote is recorded and revealed and the leaderboard redrawn, a spent pair cannot vote
twice, the prompts and the answer length are checked, and the leaderboard's headers
follow the page language."""

import pytest

from workbench import votes
from workbench.errors import WorkbenchError
from workbench.ui.tabs import chat_eval

PAIR = {"prompt": "Who are you?", "sources": ["run-a", "base:tiny"], "answers": ["I", "We"]}


def test_a_vote_is_recorded_revealed_and_counted():
    reveal, pair, *rest = chat_eval.cast_vote("b", dict(PAIR))
    buttons, note, frame = rest[:4], rest[4], rest[5]
    assert "ab.recorded" in reveal and "A = **run-a**" in reveal and "B = **base:tiny**" in reveal
    assert pair is None and all(b["interactive"] is False for b in buttons)
    saved = votes.read()
    assert len(saved) == 1 and saved[0]["vote"] == "b"
    assert saved[0]["sources"] == ["run-a", "base:tiny"] and saved[0]["answers"] == ["I", "We"]
    assert ": 1." in note and "ab.bt_after" in note
    assert list(frame.columns)[:3] == ["model", "votes", "wins"]
    assert frame.iloc[0].tolist()[:3] == ["base:tiny", 1, 1]
    with pytest.raises(WorkbenchError, match="ab.no_pair"):
        chat_eval.cast_vote("a", None)  # the pair is spent: no second vote
    assert len(votes.read()) == 1


def test_board_headers_in_chinese():
    _, frame = chat_eval.board_view("zh")
    assert list(frame.columns)[:2] == ["模型", "票数"] and frame.empty


def test_prompts_and_answer_length_are_checked():
    items = chat_eval._prompts("data/general_probe.jsonl", None, "", 2)
    assert len(items) == 2 and items[0].references
    typed = chat_eval._prompts("data/general_probe.jsonl", None, "a\nb\nc", 0)
    assert [i.prompt for i in typed] == ["a", "b", "c"]  # typed prompts win over the file
    with pytest.raises(WorkbenchError, match="ceval.no_file"):
        chat_eval._prompts(None, None, " ", 5)
    with pytest.raises(WorkbenchError, match="below 0"):
        chat_eval._prompts("data/general_probe.jsonl", None, "", -1)
    assert chat_eval._tokens(8.0) == 8
    for bad in (0, 5000, None):
        with pytest.raises(WorkbenchError, match="allowed 1 to 1024"):
            chat_eval._tokens(bad)
    with pytest.raises(WorkbenchError, match="ceval.no_runs"):
        list(chat_eval.run_prompt_set("data/general_probe.jsonl", None, "", [], 1, 8))
