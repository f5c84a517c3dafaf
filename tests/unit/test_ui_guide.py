"""The "start here" strip: what each of the three steps says, from the run folders."""

import os

from workbench import runs
from workbench.ui import guide
from workbench.ui.i18n import render

from tests.unit.test_ui_tabs import make_run


def states():
    return [s for s, _, _ in guide.steps(runs.list_runs())]


def test_fresh_install_points_at_training_and_asks_for_a_dry_run():
    assert states() == ["done", "next", "later"]
    text = render(guide.guide_html())
    assert "Nova" in text and "Dry run" in text and "Start here" in text


def test_dry_run_eta_is_quoted_in_minutes():
    guide.remember_dry_run({"eta_seconds": 301, "full_run_steps": 51,
                            "seconds_per_step": 5.9})
    text = render(guide.guide_html())
    assert "About 5 min on this machine (from your dry run)" in text


def test_training_shows_progress_then_chat_is_next():
    make_run(name="live-20250101-120000", state="running", step=7, max_steps=51,
             pid=os.getpid())
    assert states() == ["done", "now", "later"]
    assert "7 / 51" in render(guide.guide_html())


def test_finished_run_makes_chat_the_next_step_with_its_time():
    make_run(name="demo-20250101-120000")  # its metrics end at elapsed_s 20
    assert states() == ["done", "done", "next"]
    text = render(guide.guide_html())
    assert "demo-20250101-120000" in text and "your last run's time" in text
