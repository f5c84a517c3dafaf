"""What each built-in preset is for, in both languages of the page.

The English text is the preset file's opening comment (presets.description), so it cannot
drift from the file; the Chinese text is kept here. User presets show their own comment
as written (there is no second language to show).
"""

from __future__ import annotations

from workbench import presets

ZH = {
    "cpu-demo": "cpu-demo：在普通笔记本 CPU 上几分钟内教会内置的 SmolLM2-135M 一个新身份。"
                "compute_dtype auto：CPU 原生支持 bfloat16（AVX512-BF16/AMX）时用 bfloat16，"
                "否则用 float32。",
    "int8-lora": "int8-lora：在 LLM.int8 基座上做 LoRA（8 位权重，超过 6.0 的离群特征保留为 16 位）。",
    "lora-bf16": "lora-bf16：在未量化的 bfloat16 基座上做普通 LoRA：QLoRA 与之比较的基线。",
    "qlora-paper": "qlora-paper：QLoRA 论文的 Guanaco 配方（Dettmers 等，2023）：NF4 + 双重量化，"
                   "bf16 计算（compute_dtype auto：GPU 或原生支持 bf16 的 CPU 上用 bfloat16，"
                   "其他 CPU 上 bf16 靠模拟、慢数倍，故用 float32），LoRA r 64 / alpha 16 作用于"
                   "所有线性层，学习率 2e-4 恒定，最大梯度范数 0.3，分页 AdamW（仅 CUDA；"
                   "CPU 上退回 adamw_torch 并给出说明）。",
}


def key(name: str) -> str:
    return f"preset.about.{name}"


def entries() -> dict[str, dict[str, str]]:
    """i18n entries {preset.about.NAME: {en, zh}} for the built-in presets."""
    out = {}
    for p in presets.list_presets():
        if p["kind"] == "builtin" and p["description"]:
            out[key(p["name"])] = {"en": p["description"], "zh": ZH.get(p["name"], "")}
    return out
