"""compute_dtype `auto`: resolved from fake hardware facts, so no test depends on the CPU
it runs on (issue 9)."""

from __future__ import annotations

import json

import pytest

from workbench import hardware, presets
from workbench.errors import PresetError
from workbench.hardware import CpuInfo, resolve_compute_dtype

AVX2 = CpuInfo("AVX2", avx512_bf16=False, amx=False)
AVX512 = CpuInfo("AVX512", avx512_bf16=False, amx=False)      # AVX512F but no BF16
AVX512_BF16 = CpuInfo("AVX512", avx512_bf16=True, amx=False)
AMX = CpuInfo("AVX512", avx512_bf16=False, amx=True)
UNKNOWN = CpuInfo("DEFAULT", avx512_bf16=None, amx=None)      # e.g. an ARM CPU
NO_CUDA = (False, False, "")


def resolve(requested, cpu=AVX2, cuda=NO_CUDA, ratio=6.5):
    return resolve_compute_dtype(requested, cpu=cpu, cuda=cuda, slowdown=lambda: ratio)


@pytest.mark.parametrize("cpu, expected", [(AVX2, "float32"), (AVX512, "float32"),
                                           (AVX512_BF16, "bfloat16"), (AMX, "bfloat16")])
def test_auto_on_cpu_follows_native_bf16(cpu, expected):
    choice = resolve("auto", cpu=cpu)
    assert (choice.dtype, choice.device, choice.requested) == (expected, "cpu", "auto")
    assert choice.reason.startswith(f"auto → {expected}: ")
    assert choice.warning is None


def test_auto_float32_reason_says_why_and_how_much_slower():
    choice = resolve("auto", cpu=AVX2, ratio=6.5)
    assert "no native bfloat16" in choice.reason and "AVX2" in choice.reason
    assert "about 6× slower" in choice.reason or "about 7× slower" in choice.reason
    # without a measurement the message still says what to expect
    unmeasured = resolve("auto", cpu=AVX2, ratio=None)
    assert "several times slower" in unmeasured.reason


@pytest.mark.parametrize("ratio, expected", [(1.1, "bfloat16"), (1.5, "bfloat16"),
                                             (4.0, "float32"), (None, "float32")])
def test_auto_measures_when_torch_cannot_tell(ratio, expected):
    assert resolve("auto", cpu=UNKNOWN, ratio=ratio).dtype == expected


@pytest.mark.parametrize("bf16_ok, expected", [(True, "bfloat16"), (False, "float16")])
def test_auto_on_cuda(bf16_ok, expected):
    choice = resolve("auto", cuda=(True, bf16_ok, "Fake GPU"))
    assert (choice.dtype, choice.device, choice.capability) == (expected, "cuda", "Fake GPU")


@pytest.mark.parametrize("requested", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("cpu", [AVX2, AVX512_BF16])
def test_explicit_dtype_is_left_alone(requested, cpu):
    assert resolve(requested, cpu=cpu).dtype == requested


def test_explicit_bf16_on_emulating_cpu_warns_with_the_slowdown():
    choice = resolve("bfloat16", cpu=AVX2, ratio=13.6)
    assert choice.dtype == "bfloat16"
    assert "about 14× slower" in choice.warning and "auto or float32" in choice.warning
    assert resolve("bfloat16", cpu=AVX512_BF16).warning is None
    assert resolve("float32", cpu=AVX2).warning is None


def test_explicit_bf16_on_a_gpu_without_it_falls_back_to_fp16():
    choice = resolve("bfloat16", cuda=(True, False, "Old GPU"))
    assert choice.dtype == "float16" and "float16" in choice.warning


def test_aliases_and_bad_names():
    assert resolve("bf16", cpu=AVX512_BF16).dtype == "bfloat16"
    assert resolve("FP32").dtype == "float32"
    with pytest.raises(PresetError, match="compute_dtype: 'int4'"):
        resolve("int4")


def test_builtin_presets_default_to_auto():
    assert presets.load("cpu-demo").quantization.compute_dtype == "auto"
    assert presets.load("qlora-paper").quantization.compute_dtype == "auto"
    assert presets.load("cpu-demo").with_overrides(
        ["quantization.compute_dtype=float32"]).quantization.compute_dtype == "float32"


def test_sft_flags_follow_the_resolved_dtype(tmp_path, monkeypatch):
    from workbench import train
    preset = presets.load("cpu-demo")
    for cpu, bf16 in ((AVX2, False), (AVX512_BF16, True)):
        monkeypatch.setattr(hardware, "cpu_info", lambda cpu=cpu: cpu)
        monkeypatch.setattr(hardware, "cuda_state", lambda: NO_CUDA)
        args = train.sft_config(preset, tmp_path, has_eval=False, cuda=False)
        assert (args.bf16, args.fp16) == (bf16, False)


def test_memory_estimate_uses_the_resolved_dtype(monkeypatch):
    from workbench.train import memory
    monkeypatch.setattr(hardware, "cuda_state", lambda: NO_CUDA)
    sizes = {}
    for name, cpu in (("avx2", AVX2), ("bf16", AVX512_BF16)):
        monkeypatch.setattr(hardware, "cpu_info", lambda cpu=cpu: cpu)
        est = memory.estimate(memory.NAMED["llama-7b"], "qlora", compute_dtype="auto",
                              device="cpu")
        sizes[name] = est
    assert sizes["avx2"].settings["compute_dtype"] == "float32"
    assert sizes["bf16"].settings["compute_dtype"] == "bfloat16"
    assert any("auto → float32" in n for n in sizes["avx2"].notes)
    # float32 activations and adapters take more than bf16 ones
    assert sizes["avx2"].breakdown["activations"] > sizes["bf16"].breakdown["activations"]


def test_probe_is_cached_per_machine(monkeypatch):
    calls = []
    monkeypatch.setattr(hardware, "measure_bf16_slowdown", lambda: calls.append(1) or 7.25)
    assert hardware.bf16_slowdown(measure=False) is None
    assert hardware.bf16_slowdown(measure=True) == 7.25
    assert hardware.bf16_slowdown(measure=True) == 7.25 and len(calls) == 1
    from workbench import paths
    cached = json.loads((paths.cache_dir() / hardware.PROBE_FILE).read_text())
    assert cached["bf16_over_fp32"] == 7.25 and cached["key"] == hardware._probe_key()


def test_probe_taken_on_a_busy_machine_is_retaken_when_quieter(monkeypatch):
    figures = iter([35.0, 12.4, 20.0])
    monkeypatch.setattr(hardware, "measure_bf16_slowdown", lambda: next(figures))
    monkeypatch.setattr(hardware, "_load_per_core", lambda: 2.5)  # busy
    assert hardware.bf16_slowdown(measure=True) == 35.0
    assert hardware.bf16_slowdown(measure=True) == 35.0  # still busy: cached, not re-taken
    monkeypatch.setattr(hardware, "_load_per_core", lambda: 0.2)  # quiet now
    assert hardware.bf16_slowdown(measure=True) == 12.4
    assert hardware.bf16_slowdown(measure=True) == 12.4  # taken quietly: kept
    assert hardware.bf16_slowdown(measure=False) == 12.4
