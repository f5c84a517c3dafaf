"""The model card `merge` writes into merged/README.md: it loads with huggingface_hub's
ModelCard, names the base model, and carries the training setup and the latest eval."""

import json

from huggingface_hub import ModelCard

from workbench import runs, train
from workbench.config import Preset
from workbench.export import card, merge


def test_merge_writes_a_card_naming_the_base(tiny_model_dir):
    preset = Preset().with_overrides([
        f"model.name_or_path={tiny_model_dir}", "data.path=data/identity.jsonl",
        "data.eval_fraction=0", "train.max_steps=1", "train.batch_size=2",
        "train.max_length=64", "train.logging_steps=1", "lora.r=4"])
    run = runs.create(preset, "tiny-card")
    assert train.train(run)["state"] == "completed"
    report = merge.merge(run)
    readme = run / "merged" / "README.md"
    loaded = ModelCard.load(readme)
    meta = loaded.data.to_dict()
    assert meta["library_name"] == "transformers" and "lora" in meta["tags"]
    assert meta["datasets"][0].startswith("identity.jsonl (sha256:")
    # a local folder has no Hub id: the text names it, the front matter does not guess one
    assert "base_model" not in meta and str(tiny_model_dir) in loaded.text
    assert "LoRA: r 4, alpha 16" in loaded.text and "Quantisation while training: nf4" \
        in loaded.text
    assert f"{report['max_abs_logit_diff']:.2e}" in loaded.text
    assert "No prompt-set evaluation yet" in loaded.text


def test_card_of_an_embedded_run_with_an_eval(tmp_path):
    """The embedded model's card names its Hub source and license, and the newest eval."""
    run = runs.create(Preset(), "embedded-card")
    runs.write_status(run, state="completed", step=6, max_steps=6, elapsed_s=12.5,
                      compute_dtype={"dtype": "float32", "device": "cpu",
                                     "capability": "AVX2", "reason": "auto → float32"})
    runs.append_metrics(run, {"step": 6, "loss": 2.5})
    entry = {"run": run.name, "match_rate": 0.75, "base_match_rate": 0.5,
             "kept_general": {"kept": 15, "of": 16}, "answers": [{}] * 4,
             "perplexity": {"eval": {"base": 9.0, "tuned": 4.5}, "general": None}}
    for stamp, rate in (("20260101-000000", 0.1), ("20260102-000000", 0.75)):
        (run / "eval").mkdir(exist_ok=True)
        (run / "eval" / f"{stamp}.json").write_text(
            json.dumps({"runs": [{**entry, "match_rate": rate}]}))
    text = card.card_text(run)
    meta = card.front_matter(text)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["license"] == "apache-2.0" and "nf4" in meta["tags"]
    assert "eval/20260102-000000.json" in text and "| 50.0% | 75.0% |" in text
    assert "| perplexity (eval) | 9.000 | 4.500 |" in text and "15 of 16" in text
    assert "cpu (AVX2)" in text and "6 steps in 12.5 s" in text
    assert ModelCard(text).data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
