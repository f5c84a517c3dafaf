"""The whole page builds, holds one widget per Preset field and six tabs in order; the
launch options are safe by default; start-up imports no heavy library."""

import argparse
import subprocess
import sys

import gradio as gr
import pytest

from workbench.cli import ui as cli_ui
from workbench.ui import server
from workbench.ui.app import build_app
from workbench.ui.i18n import field_keys, text

TABS = ["Dataset", "Quantization", "LoRA", "Training", "Merge", "Chat"]
API = {"start", "stop", "status", "runs", "merge", "compare", "save_preset", "presets"}


@pytest.fixture(scope="module")
def demo():
    return build_app()


def _blocks(demo, cls):
    return [b for b in demo.blocks.values() if isinstance(b, cls)]


def test_six_tabs_in_order(demo):
    labels = [text(b.label.key) for b in _blocks(demo, gr.Tab)]
    assert labels == TABS


def test_one_widget_per_preset_field(demo):
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for dotted in field_keys():
        assert "f-" + dotted.replace(".", "-").replace("_", "-") in ids


def test_no_textbox_holds_a_number(demo):
    from workbench.config import field_path_meta
    for block in _blocks(demo, gr.Textbox):
        if (block.elem_id or "").startswith("f-"):
            section, _, key = block.elem_id[2:].partition("-")
            key = key.replace("-", "_")
            assert field_path_meta(section, key)["type"] not in ("int", "float")


def test_named_api_endpoints(demo):
    info = demo.get_api_info()
    named = {name.strip("/") for name in info["named_endpoints"]}
    assert API <= named
    assert named - API == set()  # the page's own events stay private


def test_delete_starts_off_for_the_built_in_preset_and_asks_first(demo):
    delete = next(b for b in _blocks(demo, gr.Button) if b.elem_id == "preset-delete")
    assert delete.interactive is False
    config = demo.get_config_file()
    clicks = [d for d in config["dependencies"]
              if [delete._id, "click"] in [list(x) for x in d["targets"]]]
    assert len(clicks) == 1 and "confirm(" in (clicks[0]["js"] or "")


def test_no_table_is_headed_1_2_3(demo):
    # issue 14: an empty gr.Dataframe shows Gradio's default headers "1 2 3"
    for table in _blocks(demo, gr.Dataframe):
        assert table.value["headers"] != ["1", "2", "3"], table.elem_id
    results = next(b for b in _blocks(demo, gr.Column)
                   if b.elem_id == "quant-compare-results")
    assert results.visible is False  # shown once a comparison has rows


def test_columns_are_mapped_one_way(demo):
    # the role dropdowns write data.columns; its box only shows the result (issue 14)
    box = next(b for b in _blocks(demo, gr.Textbox) if b.elem_id == "f-data-columns")
    assert box.interactive is False


def test_training_tab_polls_outside_gradio_events(demo):
    # issue 9: a gr.Timer tick is a Gradio event, which costs the page's script time for
    # every component even when nothing changed; the page asks a queue-less endpoint,
    # writes the parts that changed itself (the charts too: SVG drawn by the server) and
    # clicks a hidden button only when the buttons or the sample table changed
    from workbench.ui.tabs import training
    assert not _blocks(demo, gr.Timer)
    assert not [b for b in _blocks(demo, gr.LinePlot) if (b.elem_id or "").startswith("train-")]
    refresh = [b for b in _blocks(demo, gr.Button) if b.elem_id == "train-refresh"]
    assert len(refresh) == 1 and refresh[0].visible == "hidden"
    config = demo.get_config_file()
    api = [d for d in config["dependencies"] if d.get("api_name") == training.LIVE_API]
    assert len(api) == 1 and api[0]["queue"] is False
    clicks = [d for d in config["dependencies"]
              if [refresh[0]._id, "click"] in [list(x) for x in d["targets"]]]
    assert len(clicks) == 1  # the one redraw event
    script = training.POLL_SCRIPT
    assert f"gradio_api/run/{training.LIVE_API}" in script and "train-refresh" in script
    assert "const EVERY_MS = 4000, MIN_REDRAW_MS = 8000;" in script
    # every part `live` returns has a box to be written into once the page has loaded
    from workbench.ui.tabs import training_view
    loaded = training_view.view(None, None)  # the page-load event's outputs
    boxes = dict(zip(("progress", "plots", "log", "list", "guide"),
                     (loaded[0], loaded[1], loaded[2], loaded[3], loaded[11])))
    assert set(boxes) == set(training_view.LIVE_PARTS)
    for part, value in boxes.items():
        assert f"class='wb-live' data-wb-part='{part}'" in value, part
    assert ".wb-live[data-wb-part=" in script


def test_start_up_imports_no_heavy_library():
    code = ("import sys; from workbench.ui.app import build_app; build_app(); "
            "print(','.join(m for m in ('torch', 'transformers', 'trl', 'peft') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""


# -- launch options ----------------------------------------------------------------------

def test_defaults_bind_localhost_only():
    assert server.resolve_options(None, False, None, env={}) == ("127.0.0.1", 7860, None)


def test_listen_without_auth_is_refused():
    with pytest.raises(server.LaunchError, match="--auth"):
        server.resolve_options(None, True, None, env={})
    assert server.resolve_options(8000, True, None, env={"WORKBENCH_AUTH": "ada:pw"}) == (
        "0.0.0.0", 8000, ("ada", "pw"))
    assert server.resolve_options(None, True, "bob:x:y", env={})[2] == ("bob", "x:y")


@pytest.mark.parametrize("bad", ["nopassword", ":pw", "user:"])
def test_malformed_auth_is_refused(bad):
    with pytest.raises(server.LaunchError, match="USER:PASS"):
        server.parse_auth(bad)


def test_cli_exits_2_with_one_error_line(capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_AUTH", raising=False)
    parser = argparse.ArgumentParser()
    cli_ui.register(parser.add_subparsers())
    args = parser.parse_args(["ui", "--listen"])
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--auth" in err[0]


def test_launch_command_refuses_listen_without_auth(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "WORKBENCH_AUTH"}
    out = subprocess.run([sys.executable, "-m", "workbench.ui", "--listen", "--home",
                          str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2 and out.stderr.startswith("error: ")


def test_launch_settings_are_safe():
    kw = server.launch_kwargs("127.0.0.1", 7860, None, "/home/x/.workbench")
    # nothing of WORKBENCH_HOME is served: Gradio serves allowed_paths inline (issue 13)
    assert kw["share"] is False and kw["allowed_paths"] == []
    assert kw["max_file_size"] and kw["enable_monitoring"] is False
    assert kw["server_name"] == "127.0.0.1"


def test_choosing_another_merge_run_clears_the_previous_runs_verdict_at_once(demo):
    # issue 14: the previous run's verdict lingered while the new run's was computed
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    run = by_id["merge-run"]
    config = demo.get_config_file()
    cleared = set()
    for dep in config["dependencies"]:
        if [run._id, "input"] in [list(x) for x in dep["targets"]]:
            fn = demo.fns[dep["id"]].fn
            if not dep["inputs"]:  # the immediate clear: no input, no wait for the disk
                values = fn()
                cleared |= {o for o, v in zip(dep["outputs"], values) if v in (None, "")
                            or "spec.reading" in str(v)}
    ids = {by_id[k]._id for k in ("spec-verdict", "spec-rank-plot", "spec-norm-plot",
                                  "spec-table", "export-result", "download-files")}
    assert ids <= cleared
