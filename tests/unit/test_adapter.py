"""LoRA spectrum: singular values via the r x r core, effective rank, norms, advice, CLI.

    .venv/bin/python -m pytest tests/unit/test_adapter.py

Synthetic adapters are written as PEFT lays them out (adapter_config.json +
adapter_model.safetensors with ...lora_A.weight / ...lora_B.weight keys).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from safetensors.numpy import save_file

from workbench.export import spectrum as adapter
from workbench.errors import WorkbenchError

MODULES = ("q_proj", "v_proj")
PREFIX = "base_model.model.model.layers.{i}.self_attn.{m}"


def _orthonormal(rng, n, k):
    q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return q


def write_adapter(folder, *, rank_k, r=16, alpha=32, layers=2, out=48, inp=40, seed=0,
                  rslora=False, base=None, spread=1.0):
    """An adapter whose every update B @ A has exactly `rank_k` equal singular values
    (times `spread` ** i, to make them unequal when wanted)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(layers):
        for m in MODULES:
            u, v = _orthonormal(rng, out, rank_k), _orthonormal(rng, inp, rank_k)
            b = np.zeros((out, r))
            b[:, :rank_k] = u * (spread ** np.arange(rank_k))
            a = np.zeros((r, inp))
            a[:rank_k] = v.T
            mix = _orthonormal(rng, r, r)  # hide the structure: B M, M^T A is the same dW
            key = PREFIX.format(i=i, m=m)
            tensors[f"{key}.lora_A.weight"] = (mix.T @ a).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (b @ mix).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "use_rslora": rslora,
              "target_modules": list(MODULES), "base_model_name_or_path": str(base or "")}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def write_base(folder, *, layers=2, out=48, inp=40, value=0.5):
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.layers.{i}.self_attn.{m}.weight": np.full((out, inp), value, np.float32)
               for i in range(layers) for m in MODULES}
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    return folder


def test_core_svd_equals_full_svd():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((8, 30)), rng.standard_normal((50, 8))
    full = np.linalg.svd(2.0 * b @ a, compute_uv=False)[:8]
    assert np.allclose(adapter.lora_singular_values(a, b, 2.0), full)


@pytest.mark.parametrize("s, k", [([1, 1, 1, 1], 4), ([3, 0.1, 0.1], 1), ([0, 0], 0),
                                  ([2, 1, 1, 1, 1], 5), ([5, 5, 1], 2)])
def test_effective_rank_counts_directions_for_90_percent_energy(s, k):
    assert adapter.effective_rank(s) == k


@pytest.mark.parametrize("k", [1, 3, 4])
def test_synthetic_adapter_of_rank_k_reports_k(tmp_path, k):
    folder = write_adapter(tmp_path / "adapter", rank_k=k, r=16, alpha=32)
    result = adapter.spectrum(folder)
    assert len(result["table"]) == 4
    for row in result["table"]:
        assert row["effective_rank"] == k
        assert row["scale"] == 2.0 and row["r"] == 16
        s = np.array(row["singular_values"])
        assert np.allclose(s[:k], 2.0, atol=1e-5) and np.all(s[k:] < 1e-5)
        assert math.isclose(row["update_norm"], 2.0 * math.sqrt(k), rel_tol=1e-5)
        assert row["relative_norm"] is None  # no base model available
    assert result["summary"]["median_effective_rank"] == k
    assert result["summary"]["verdict"] == "too_large"
    assert "larger than needed" in result["summary"]["advice"]
    assert [row["layer"] for row in result["table"]] == [0, 0, 1, 1]


def test_saturated_rank_says_r_may_be_too_small(tmp_path):
    result = adapter.spectrum(write_adapter(tmp_path / "a", rank_k=8, r=8, alpha=8))
    assert {row["effective_rank"] for row in result["table"]} == {8}
    assert result["summary"]["verdict"] == "too_small"
    assert "too small" in result["summary"]["advice"]


def test_middle_rank_is_about_right_and_zero_is_untrained(tmp_path):
    ok = adapter.spectrum(write_adapter(tmp_path / "a", rank_k=8, r=16))
    assert ok["summary"]["verdict"] == "ok"
    folder = write_adapter(tmp_path / "z", rank_k=2, r=8)
    from safetensors.numpy import load_file
    tensors = {k: (v * 0 if "lora_B" in k else v)
               for k, v in load_file(str(folder / "adapter_model.safetensors")).items()}
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    zero = adapter.spectrum(folder)
    assert zero["summary"]["verdict"] == "untrained"
    assert all(row["effective_rank"] == 0 for row in zero["table"])


def test_rslora_scale_and_relative_norm_against_the_base(tmp_path):
    base = write_base(tmp_path / "base", value=0.5)
    folder = write_adapter(tmp_path / "a", rank_k=2, r=16, alpha=8, rslora=True, base=base)
    result = adapter.spectrum(folder)
    assert result["base"] == str(base)
    base_norm = 0.5 * math.sqrt(48 * 40)
    for row in result["table"]:
        assert row["scale"] == pytest.approx(8 / math.sqrt(16))
        assert row["base_norm"] == pytest.approx(base_norm)
        assert row["relative_norm"] == pytest.approx(2.0 * math.sqrt(2) / base_norm)
    assert result["summary"]["median_relative_norm"] == pytest.approx(
        2.0 * math.sqrt(2) / base_norm)
    # an explicit base wins over the recorded one; a wrong one is a clear error
    other = write_base(tmp_path / "other", value=1.0)
    assert adapter.spectrum(folder, base=other)["table"][0]["base_norm"] == pytest.approx(
        2 * base_norm)
    with pytest.raises(WorkbenchError, match="not a model folder"):
        adapter.spectrum(folder, base=tmp_path / "nowhere")


def test_matrix_for_plots(tmp_path):
    result = adapter.spectrum(write_adapter(tmp_path / "a", rank_k=3, layers=3))
    grid = adapter.matrix(result)
    assert grid["layers"] == [0, 1, 2] and grid["modules"] == ["q_proj", "v_proj"]
    assert grid["values"] == [[3, 3]] * 3


def test_errors_for_non_adapters(tmp_path):
    folder = write_adapter(tmp_path / "a", rank_k=1)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    with pytest.raises(WorkbenchError, match="not LoRA"):
        adapter.spectrum(folder)
    with pytest.raises(WorkbenchError, match="not found"):
        adapter.spectrum("no-such-run")


def test_cli_prints_table_and_json(tmp_path, capsys):
    folder = write_adapter(tmp_path / "a", rank_k=2, r=16)
    parser = argparse.ArgumentParser()
    from workbench.cli import adapter as cli_adapter
    cli_adapter.register(parser.add_subparsers())
    args = parser.parse_args(["adapter", "inspect", str(folder)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "q_proj" in text and "larger than needed" in text and "r=16" in text
    args = parser.parse_args(["adapter", "inspect", str(folder), "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["median_effective_rank"] == 2
