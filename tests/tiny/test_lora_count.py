"""The shape-only LoRA count equals what PEFT really trains, for the targets users pick."""

import pytest

from workbench.train import lora
from workbench.config import Preset
from workbench.train import lora_config


@pytest.mark.parametrize("targets, use_dora", [("all-linear", False), (["q_proj", "v_proj"], False),
                                               ("all-linear", True)])
def test_count_matches_peft(tiny_model_dir, targets, use_dora):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    preset = Preset().with_overrides({"lora.r": 4, "lora.target_modules": targets,
                                      "lora.use_dora": use_dora})
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           lora_config(preset))
    peft_trainable, peft_total = model.get_nb_trainable_parameters()
    info = lora.model_info(str(tiny_model_dir))
    trainable, total, missing = lora.trainable_params(info, 4, targets, use_dora=use_dora)
    assert (trainable, total, missing) == (peft_trainable, peft_total, [])
    assert lora.trainable_params(info, 4, ["nope_proj"])[2] == ["nope_proj"]
