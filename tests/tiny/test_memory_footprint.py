"""The estimator's weight terms agree with the memory a really loaded 4-bit model takes."""

import pytest

from workbench.train import memory
from workbench import models
from workbench.config import Preset


@pytest.mark.parametrize("double_quant", [True, False])
def test_4bit_footprint_matches_estimate_weights(tiny_model_dir, double_quant):
    preset = Preset().with_overrides({"model.name_or_path": str(tiny_model_dir),
                                      "quantization.double_quant": double_quant})
    model = models.load_model(preset.model, preset.quantization)
    measured = model.get_memory_footprint()
    est = memory.estimate_for_preset(preset, seq_len=16, device="cpu").breakdown
    # get_memory_footprint() counts parameters and buffers: the packed 4-bit weights and
    # the 16-bit embeddings, norms and lm_head, but not the quantisation constants
    estimated = est["weights"] + est["non_quantized"]
    assert abs(estimated - measured) / measured < 0.10, (estimated, measured, est)
