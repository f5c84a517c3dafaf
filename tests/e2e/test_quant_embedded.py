"""Quantisation quality on the embedded SmolLM2-135M (cpu-demo preset), as a user runs it.

    .venv/bin/python -m pytest tests/e2e/test_quant_embedded.py    # ~70 s CPU; 3-4 min when 2 cores are shared

NF4 vs FP4 is reported, not assumed: on this model NF4 has the lower weight error in every
matrix, while on the few answer tokens of the eval split the perplexity gap is within noise
and can go either way, so the test checks that the verdict follows the numbers rather than
which way it goes.
"""

from __future__ import annotations

import math

import pytest

from workbench.quant import compare as quantlab

pytestmark = pytest.mark.e2e


def test_compare_cpu_demo(embedded_home):
    result = quantlab.compare("cpu-demo", ("none", "nf4-dq", "fp4-dq"), max_tokens=256)
    rows = {r["variant"]: r for r in result["table"]}
    assert len(result["layers"]) == 30 * 7  # 30 decoder layers, 7 linear weights each
    assert {x["layer"] for x in result["layers"]} == set(range(30))
    assert rows["none"]["mean_rel_error"] < 0.01 < rows["nf4-dq"]["mean_rel_error"] < 0.2
    assert "answers scored" in result["eval"]["source"]
    assert 0 < result["eval"]["tokens"] <= 256
    for r in rows.values():
        assert r["footprint_measured"] and math.isfinite(r["perplexity"])
        assert 1 < r["perplexity"] < 1000
    assert rows["nf4-dq"]["footprint_bytes"] < 0.45 * rows["none"]["footprint_bytes"]
    pair, = result["nf4_vs_fp4"]["pairs"]
    assert pair["matrices"] == 210
    lower_error = pair["nf4_lower_error"]
    lower_ppl = rows["nf4-dq"]["perplexity"] < rows["fp4-dq"]["perplexity"]
    assert lower_error == (rows["nf4-dq"]["mean_rel_error"] < rows["fp4-dq"]["mean_rel_error"])
    assert pair["nf4_lower_perplexity"] == lower_ppl
    votes = [lower_error] + ([lower_ppl] if pair["perplexity_clear"] else [])
    expected = True if all(votes) else False if not any(votes) else None
    assert result["nf4_vs_fp4"]["nf4_beats_fp4"] is expected
