"""The UI's string table: both languages for every key, a key for every Preset field."""

import pytest

from workbench.config import iter_fields
from workbench.ui import i18n


def test_every_key_has_english_and_chinese():
    missing = [(key, lang) for key, langs in i18n.table().items() for lang in ("en", "zh")
               if not str(langs.get(lang) or "").strip()]
    assert missing == []


def test_every_preset_field_has_a_label_and_help_key():
    table = i18n.table()
    for section, key, meta in iter_fields():
        assert f"{section}.{key}" in table
        assert f"{section}.{key}.help" in table
        # the English is the config metadata, so page, YAML and CLI say the same thing
        assert table[f"{section}.{key}"]["en"] == (meta["label"] or key)
        assert table[f"{section}.{key}.help"]["en"] == meta["help"]


def test_no_orphan_chinese_field_entries():
    fields = {f"{s}.{k}" for s, k, _ in iter_fields()}
    assert set(i18n.FIELDS_ZH) == fields


def test_lora_and_training_help_gives_a_typical_value_in_both_languages():
    # issue 14: help a newcomer can act on, short enough to read beside the field
    table = i18n.table()
    for section, key, _ in iter_fields():
        if section not in ("lora", "train"):
            continue
        help_ = table[f"{section}.{key}.help"]
        assert "Typical:" in help_["en"], f"{section}.{key}"
        assert "常用：" in help_["zh"], f"{section}.{key}"
        assert help_["en"].count(". ") <= 2 and len(help_["en"]) <= 220, f"{section}.{key}"


def test_chinese_is_chinese():
    # a cheap guard against pasting English into the zh column
    han = [k for k, v in i18n.table().items()
           if any("\u4e00" <= ch <= "\u9fff" for ch in v["zh"])]
    assert len(han) > 0.8 * len(i18n.table())


def test_unknown_keys_fail_loudly():
    with pytest.raises(KeyError):
        i18n.t("no.such.key")
    with pytest.raises(KeyError):
        i18n.m("no.such.key")


def test_markers_render_in_either_language():
    text = f"{i18n.m('train.step')} 3 / 10 · {i18n.m('state.running')}"
    assert i18n.render(text, "en") == "Step 3 / 10 · running"
    assert i18n.render(text, "zh") == "步 3 / 10 · 运行中"


def test_tab_names_are_fixed_in_english():
    names = [i18n.text(f"tab.{k}") for k in
             ("dataset", "quantization", "lora", "training", "merge", "chat")]
    assert names == ["Dataset", "Quantization", "LoRA", "Training", "Merge", "Chat"]


def test_page_script_embeds_the_table_safely():
    head = i18n.page_head()
    assert head.startswith("<script>") and head.endswith("</style>")  # the switch's style
    assert head.count("</script>") == 1  # no "</" from the table can close the tag early
    assert '"train.step"' in head and "运行中" in head


# -- the language switch (issue 14 item 4) -------------------------------------------------

def _gradio_assets():
    import gradio
    from pathlib import Path
    return Path(gradio.__file__).parent / "templates" / "frontend" / "assets"


def test_page_script_finds_gradios_change_locale():
    # the switch imports the core module the page already loaded and calls changeLocale;
    # a Gradio upgrade that renames it leaves the Settings-panel fallback (browser test)
    name = i18n.gradio_core_asset()
    assert name.startswith("core-") and name.endswith(".js")
    source = (_gradio_assets() / name).read_text(encoding="utf-8")
    assert "as changeLocale" in source  # exported under that name
    head = i18n.page_head()
    assert f'"{name}"' in head and '"workbench-lang"' in head and '"zh-CN"' in head


def test_gradio_words_we_retranslate_are_gradios_own():
    # the upload box text is re-done in place with the words Gradio's locale files use
    assets = _gradio_assets()
    en = i18n.gradio_core_asset()
    zh = next(assets.glob("zh-CN-*.js")).name
    for key, langs in i18n.GRADIO_TEXT.items():
        for lang, file in (("en", en), ("zh", zh)):
            word = langs[lang].strip("- ")  # "- or -" is "- {or} -" in the template
            assert f"`{word}`" in (assets / file).read_text(encoding="utf-8"), (key, lang)


def test_language_switch_offers_english_and_chinese():
    html = i18n.language_switch_html()
    assert 'data-wb-lang="en"' in html and 'data-wb-lang="zh"' in html
    assert "English" in html and "中文" in html and 'role="radiogroup"' in html


def test_request_language_prefers_the_switch_cookie():
    class Req:
        def __init__(self, cookies=None, accept=""):
            self.cookies = cookies or {}
            self.headers = {"accept-language": accept}
    assert i18n.request_lang(None) == "en"
    assert i18n.request_lang(Req(accept="zh-CN,zh;q=0.9")) == "zh"
    assert i18n.request_lang(Req({"workbench-lang": "en"}, accept="zh-CN")) == "en"
    assert i18n.request_lang(Req({"workbench-lang": "zh"}, accept="en-US")) == "zh"
    assert i18n.request_lang(Req({"workbench-lang": "fr"}, accept="en-US")) == "en"


def test_builtin_preset_descriptions_follow_the_page_language():
    """A built-in preset's description is shown in the page's language (its English is the
    preset file's own comment); a user preset's comment is shown as written."""
    from workbench import presets
    from workbench.config import Preset
    from workbench.ui import app
    notice = app.preset_notice("cpu-demo", i18n.m("preset.loaded"))
    about = next(p["description"] for p in presets.list_presets() if p["name"] == "cpu-demo")
    assert about in i18n.render(notice, "en")
    zh = i18n.render(notice, "zh")
    assert about not in zh and "SmolLM2-135M" in zh and "身份" in zh
    presets.save("mine", Preset())
    assert "⟦" not in app.preset_notice("mine", "Loaded")
