"""Widgets from the Preset metadata, widget values <-> Preset, and readable errors."""

import gradio as gr
import pytest

from workbench import paths, presets
from workbench.config import Preset, field_path_meta, is_switch, iter_fields
from workbench.errors import DataError, PresetError
from workbench.ui import widgets
from workbench.ui.i18n import field_keys


@pytest.mark.parametrize("section,key", [(s, k) for s, k, _ in iter_fields()])
def test_widget_rule(section, key):
    meta = field_path_meta(section, key)
    kind, kwargs = widgets.widget_spec(f"{section}.{key}", meta)
    if meta["type"] in ("int", "float"):
        assert kind in ("Slider", "Number")  # never a textbox for a number
        if kind == "Slider":
            assert (kwargs["minimum"], kwargs["maximum"]) == (meta["min"], meta["max"])
        else:  # the range is checked by the Preset, whose message names the field
            assert "minimum" not in kwargs and "maximum" not in kwargs
    elif meta["type"] == "bool":  # auto / on / off where the field may be auto
        assert kind == ("Dropdown" if is_switch(meta) else "Checkbox")
    elif meta.get("choices"):
        assert kind == "Dropdown" and kwargs["choices"] == meta["choices"]
    if f"{section}.{key}" == "lora.target_modules":
        assert kind == "Dropdown" and kwargs["multiselect"]
        assert "all-linear" in kwargs["choices"]


def test_wide_ranges_are_number_boxes_so_nothing_is_clamped_silently():
    # issue 14: a slider clamped a typed LoRA rank of 5000 to 1024 without a word
    for dotted in ("lora.r", "train.max_grad_norm", "quantization.int8_threshold"):
        section, key = dotted.split(".")
        assert widgets.widget_spec(dotted, field_path_meta(section, key))[0] == "Number"
    with pytest.raises(PresetError, match=r"lora\.r: 5000 is out of range; allowed 1 to 1024"):
        widgets.to_section("lora", {"r": 5000})


def test_every_widget_builds_with_label_and_help():
    with gr.Blocks():
        for dotted in field_keys():
            comp = widgets.field(dotted)
            assert comp.label is not None and comp.info is not None


@pytest.mark.parametrize("name", presets.builtin_names())
def test_builtin_presets_round_trip_through_the_widgets(name):
    preset = presets.load(name)
    assert widgets.to_preset(widgets.from_preset(preset)) == preset


def test_to_preset_converts_widget_values():
    values = dict(zip(field_keys(), widgets.from_preset(Preset())))
    values.update({"lora.target_modules": ["q_proj", "v_proj"], "data.columns": "{output: answer}",
                   "data.max_samples": 0, "train.max_steps": 12.0, "lora.r": 16.0})
    p = widgets.to_preset(list(values.values()))
    assert p.lora.target_modules == ["q_proj", "v_proj"]
    assert p.data.columns == {"output": "answer"}
    assert p.data.max_samples is None  # an emptied number box arrives as 0
    assert p.train.max_steps == 12 and isinstance(p.train.max_steps, int)
    assert p.lora.r == 16


def test_all_linear_wins_over_named_layers():
    assert widgets.from_target_list(["q_proj", "all-linear"]) == "all-linear"


@pytest.mark.parametrize("key,value,needle", [
    ("lora.target_modules", [], "lora.target_modules"),
    ("data.columns", "[not, a, mapping]", "data.columns"),
    ("train.learning_rate", 5.0, "train.learning_rate"),
    ("train.max_steps", 0, "train.max_steps"),
])
def test_bad_values_name_the_field(key, value, needle):
    values = dict(zip(field_keys(), widgets.from_preset(Preset())))
    values[key] = value
    with pytest.raises(PresetError, match=needle.replace(".", r"\.")):
        widgets.to_preset(list(values.values()))


def test_clean_message_hides_server_paths():
    home = paths.home()
    msg = (f"{home}/runs/x/preset.yaml: bad; also /srv/secret/data/file.jsonl line 3 "
           f"and {paths.PROJECT_ROOT}/data/identity.jsonl")
    out = widgets.clean_message(msg)
    assert str(home) not in out and "/srv" not in out and str(paths.PROJECT_ROOT) not in out
    assert "WORKBENCH_HOME/runs/x/preset.yaml" in out
    assert "file.jsonl line 3" in out and "data/identity.jsonl" in out
    # a Windows path the user typed is theirs, not the server's: kept whole
    assert widgets.clean_message("C:/Users/ada/faq.xlsx: x") == "C:/Users/ada/faq.xlsx: x"


def test_guard_turns_user_errors_into_escaped_messages():
    @widgets.guard
    def handler():
        raise DataError(f"{paths.home()}/uploads/<b>x</b>.jsonl: line 2: bad JSON")

    with pytest.raises(gr.Error) as info:
        handler()
    message = info.value.message
    assert "<b>" not in message and "&lt;b&gt;" in message
    assert str(paths.home()) not in message and "line 2" in message


def test_guard_hides_tracebacks_of_bugs(caplog):
    @widgets.guard
    def handler():
        raise KeyError("/opt/app/secret.py")

    with pytest.raises(gr.Error) as info:
        handler()
    assert "Traceback" not in info.value.message
    assert "/opt/app" not in info.value.message and "KeyError" in info.value.message
    assert "Traceback" in caplog.text  # the server log keeps the full story


def test_guard_wraps_generators():
    @widgets.guard
    def stream():
        yield 1
        raise PresetError("generation.top_p: 5 is out of range")

    gen = stream()
    assert next(gen) == 1
    with pytest.raises(gr.Error, match="top_p"):
        next(gen)


# -- page handlers: an error stays beside the control, the outputs keep their values ---------

def test_failed_handler_changes_only_the_notice():
    import gradio as gr

    from workbench.errors import PresetError
    selector, notice = gr.Dropdown(), gr.Markdown()

    def save(name):
        if not name:
            raise PresetError("preset name '': use 1-64 letters")
        return gr.update(value=name), f"saved {name}"

    handler, outputs = widgets.keep_page(save, [selector, notice], notice)
    assert outputs == [selector, notice]
    failed = handler("")
    assert list(failed) == [notice]  # the selector is not an output of the failure
    assert "wb-error" in failed[notice] and "preset name" in failed[notice]
    assert handler("mine")[1] == "saved mine"


def test_notice_is_added_and_cleared_on_success():
    import gradio as gr
    box, notice = gr.Textbox(), gr.Markdown()
    handler, outputs = widgets.keep_page(lambda x: x.upper(), [box], notice)
    assert outputs == [box, notice]
    assert handler("a") == ("A", "")
    failed = handler(None)
    assert list(failed) == [notice] and "AttributeError" in failed[notice]


def test_streaming_handler_keeps_what_it_showed_when_it_fails():
    import gradio as gr

    from workbench.errors import RunError
    left, right, notice = gr.Chatbot(), gr.Chatbot(), gr.Markdown()

    def stream(fail_after):
        yield ["a"], ["b"]
        if fail_after:
            raise RunError("training run 'x' is still running")
        yield ["a", "c"], ["b", "d"]

    handler, outputs = widgets.keep_page(stream, [left, right], notice)
    frames = list(handler(True))
    assert frames[0] == (["a"], ["b"], "")
    assert list(frames[-1]) == [notice] and "still running" in frames[-1][notice]
    frames = list(handler(False))
    assert frames[-1][:2] == (["a", "c"], ["b", "d"])


def test_out_of_range_number_names_its_field():
    keys = field_keys()
    values = widgets.from_preset(presets.load("cpu-demo"))
    values[keys.index("train.batch_size")] = 0
    with pytest.raises(Exception, match="train.batch_size"):
        widgets.to_preset(values)


def test_a_single_update_result_is_one_value_not_a_component_map():
    import gradio as gr
    box, notice = gr.Dropdown(), gr.Markdown()
    handler, _ = widgets.keep_page(lambda x: gr.update(choices=[x], value=x), [box], notice)
    update, cleared = handler("a.csv")
    assert update["value"] == "a.csv" and update["choices"] == ["a.csv"] and cleared == ""
    handler, _ = widgets.keep_page(lambda x: {box: x}, [box], notice)
    assert handler("b") == {box: "b", notice: ""}
