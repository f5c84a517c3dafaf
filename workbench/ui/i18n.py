"""Every string the page shows, in English and Simplified Chinese, in one table.

Keys are Preset fields (`lora.r` is the label, `lora.r.help` its help text; the English
comes from the field metadata in `workbench/config.py`, so the YAML, the CLI and the page
say the same thing) or message ids (`tab.dataset`, `train.no_run`). Tab code never holds
a literal string:

- `t(key)` for a component property (label, info, placeholder, a dropdown choice's label):
  Gradio's own I18n translates it in the browser. Gradio swaps only ONE such key per
  string, so never compose two.
- `m(key)` inside composed Markdown/HTML text (`f"{m('train.step')} 3 / 10"`): a marker
  ⟦key⟧ that the page script (`page_head()`) replaces with the text in the page's
  language, and re-translates when the language changes.

The language is Gradio's: the browser's language, or the one chosen under Settings at the
bottom of the page. Test: tests/unit/test_ui_i18n.py (both languages for every key).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from workbench.config import iter_fields

# zh label and help for every Preset field; the English lives in config.py's metadata.
FIELDS_ZH: dict[str, tuple[str, str]] = {
    "model.name_or_path": ("基础模型", "基础模型：'embedded:smollm2-135m-instruct'（随 Workbench 提供）、"
                           "本地 Hugging Face 模型文件夹、本地 .gguf 文件，或 Hub 模型 id（需要联网）。"),
    "model.trust_remote_code": ("信任远程代码", "运行模型自带的 Python 代码。只对你信任的模型开启。"),
    "data.path": ("数据集文件", "数据集文件（.json、.jsonl、.csv、.parquet）；相对路径在项目文件夹中查找。"
                  "多个文件用 ',' 分隔。"),
    "data.format": ("格式", "数据集格式；'auto' 根据列名自动识别。"),
    "data.columns": ("列映射", "把角色映射到你的列名，例如 {output: answer}。"),
    "data.placeholders": ("占位符", "数据中模板占位符的取值，例如 {name: Ada} 会把 '{{name}}' 替换成 'Ada'。"),
    "data.eval_fraction": ("验证集比例", "留出多少比例的数据来计算验证损失（0 = 不留）。"),
    "data.max_samples": ("最多样本数", "最多使用多少行（留空 = 全部）。"),
    "data.seed": ("数据随机种子", "打乱数据和划分训练/验证集所用的种子。"),
    "quantization.mode": ("量化方式", "冻结的基础权重如何存储。nf4：4 位 NormalFloat（QLoRA 的选择）；"
                          "fp4：普通 4 位浮点；int8：LLM.int8，离群值保留 16 位；none：16 位权重。"),
    "quantization.double_quant": ("双重量化", "把 4 位量化的缩放常数也量化（每个参数约省 0.37 位）。"),
    "quantization.compute_dtype": ("计算精度", "训练时矩阵乘法的精度；bfloat16 是 QLoRA 的默认值。"),
    "quantization.int8_threshold": ("Int8 离群阈值", "LLM.int8 离群阈值：大于该值的输入特征保留 16 位"
                                    "（论文用 6.0）。"),
    "lora.r": ("秩 (r)", "LoRA 秩：低秩更新的大小。越大学得越多，占用内存也越多。"),
    "lora.alpha": ("Alpha", "LoRA alpha：更新量按 alpha / r 缩放。"),
    "lora.dropout": ("Dropout", "训练时对 LoRA 输入做的 dropout。"),
    "lora.target_modules": ("目标模块", "哪些层加 LoRA 适配器：'all-linear'（全部线性层）或若干模块名，"
                            "例如 q_proj、v_proj。"),
    "lora.bias": ("偏置", "训练哪些偏置项。"),
    "lora.use_rslora": ("rsLoRA", "秩稳定 LoRA：按 alpha / sqrt(r) 缩放。"),
    "lora.use_dora": ("DoRA", "DoRA：额外为每个输出学习一个幅度（更慢）。"),
    "train.max_length": ("最大长度", "序列的最大 token 数；更长的行会被截断。"),
    "train.epochs": ("训练轮数", "遍历训练数据的次数。"),
    "train.max_steps": ("最大步数", "训练到这么多个优化步后停止（-1 = 按轮数）。"),
    "train.batch_size": ("批大小", "每个设备每步处理的行数。"),
    "train.grad_accum": ("梯度累积", "梯度累积：每步处理 批大小 × 梯度累积 行。"),
    "train.learning_rate": ("学习率", "学习率峰值。"),
    "train.lr_scheduler": ("学习率调度", "学习率在训练过程中如何变化。"),
    "train.warmup_ratio": ("预热比例", "用于学习率预热的步数比例。"),
    "train.optimizer": ("优化器", "优化器。paged_* 需要 CUDA GPU（在 CPU 上会改用 adamw_torch 并提示）。"),
    "train.max_grad_norm": ("梯度裁剪", "把梯度范数裁剪到这个值（0 = 不裁剪）。"),
    "train.gradient_checkpointing": ("梯度检查点", "反向传播时重算激活值：省很多内存，CPU 上约慢 3 倍。"),
    "train.packing": ("打包", "把多条短数据拼成一条序列。"),
    "train.completion_only_loss": ("只学回答", "只从回答中学习，不学提问部分。"),
    "train.logging_steps": ("日志间隔", "每 N 步记录一次损失。"),
    "train.eval_steps": ("验证间隔", "每 N 步计算一次验证损失。"),
    "train.save_steps": ("保存间隔", "每 N 步保存一个检查点。"),
    "train.seed": ("随机种子", "初始化和打乱数据所用的种子。"),
    "generation.max_new_tokens": ("最多新 token", "回答的最大 token 数。"),
    "generation.temperature": ("温度", "随机程度；0 = 总选最可能的 token（贪心）。"),
    "generation.top_p": ("Top-p", "只从累计概率达到该值的最可能 token 中采样。"),
    "generation.repetition_penalty": ("重复惩罚", "大于 1 会减少重复。"),
    "generation.system_prompt": ("系统提示词", "对话用的系统提示词（留空 = 模型默认）。"),
}

# Message ids: tab names, buttons, headings and the words composed into status lines.
MESSAGES: dict[str, dict[str, str]] = {
    "app.title": {"en": "Workbench", "zh": "Workbench"},
    "app.tagline": {"en": "Fine-tune a language model on your own data, then compare it "
                          "with the original, side by side.",
                    "zh": "用你自己的数据微调语言模型，再把它和原模型并排比较。"},
    "app.language": {"en": "Language · 语言", "zh": "语言 · Language"},
    # tabs: the English names are fixed (users and the browser test rely on them)
    "tab.dataset": {"en": "Dataset", "zh": "数据集 Dataset"},
    "tab.quantization": {"en": "Quantization", "zh": "量化 Quantization"},
    "tab.lora": {"en": "LoRA", "zh": "LoRA"},
    "tab.training": {"en": "Training", "zh": "训练 Training"},
    "tab.merge": {"en": "Merge", "zh": "合并 Merge"},
    "tab.chat": {"en": "Chat", "zh": "对话 Chat"},
    # preset bar
    "preset.choose": {"en": "Preset", "zh": "预设"},
    "preset.choose.help": {"en": "Loading a preset fills every tab.",
                           "zh": "加载预设会填好所有标签页。"},
    "preset.builtin": {"en": "built-in", "zh": "内置"},
    "preset.user": {"en": "yours", "zh": "我的"},
    "preset.save_name": {"en": "Save as", "zh": "另存为"},
    "preset.save_name.placeholder": {"en": "my-preset", "zh": "my-preset"},
    "preset.save": {"en": "Save preset", "zh": "保存预设"},
    "preset.delete": {"en": "Delete", "zh": "删除"},
    "preset.reset": {"en": "Reset", "zh": "重置"},
    "preset.saved": {"en": "Saved preset", "zh": "已保存预设"},
    "preset.deleted": {"en": "Deleted preset", "zh": "已删除预设"},
    "preset.loaded": {"en": "Loaded preset", "zh": "已加载预设"},
    # dataset tab
    "dataset.upload": {"en": "Or upload a file (json, jsonl, csv, parquet)",
                       "zh": "或上传文件（json、jsonl、csv、parquet）"},
    "dataset.advanced": {"en": "Column mapping and placeholders", "zh": "列映射与占位符"},
    "dataset.summary": {"en": "What Workbench found", "zh": "识别结果"},
    "dataset.preview": {"en": "Preview (normalised rows)", "zh": "预览（规范化后的行）"},
    "dataset.format": {"en": "Detected format", "zh": "识别出的格式"},
    "dataset.kept": {"en": "rows kept", "zh": "行保留"},
    "dataset.dropped": {"en": "dropped", "zh": "行丢弃"},
    "dataset.files": {"en": "Files", "zh": "文件"},
    "dataset.columns_found": {"en": "Columns", "zh": "列"},
    "dataset.uploaded": {"en": "Uploaded", "zh": "已上传"},
    "dataset.sample": {"en": "sample", "zh": "示例"},
    "dataset.upload_folder": {"en": "uploads", "zh": "上传"},
    # quantization tab
    "quant.heading": {"en": "How the base model is stored while training",
                      "zh": "训练时基础模型如何存储"},
    "quant.nf4": {"en": "4-bit NormalFloat: levels spaced for bell-shaped weights; the QLoRA "
                        "choice, about a quarter of the 16-bit memory.",
                  "zh": "4 位 NormalFloat：量化级别按钟形分布的权重排布；QLoRA 的选择，约为 16 位内存的四分之一。"},
    "quant.fp4": {"en": "plain 4-bit float: same memory as nf4, usually a little less accurate.",
                  "zh": "普通 4 位浮点：内存与 nf4 相同，精度通常略差。"},
    "quant.int8": {"en": "8 bits per weight, with rare large values kept in 16-bit; about half "
                         "the 16-bit memory.",
                   "zh": "每个权重 8 位，少数大数值保留 16 位；约为 16 位内存的一半。"},
    "quant.none": {"en": "16-bit weights: the most memory, no rounding.",
                   "zh": "16 位权重：最占内存，没有舍入误差。"},
    "quant.measure": {"en": "Load and measure", "zh": "加载并测量"},
    "quant.result": {"en": "Measured footprint", "zh": "实测占用"},
    "quant.measured": {"en": "Loaded this way", "zh": "按此方式加载"},
    "quant.unquantized": {"en": "Unquantised (16-bit)", "zh": "未量化（16 位）"},
    "quant.saving": {"en": "vs 16-bit:", "zh": "相对 16 位："},
    "quant.took": {"en": "load time", "zh": "加载耗时"},
    "quant.not_measured": {"en": "Press “Load and measure” to load the model with these "
                                 "settings and see its memory footprint.",
                           "zh": "点击「加载并测量」，按当前设置加载模型并查看内存占用。"},
    # lora tab
    "lora.trainable": {"en": "Trainable parameters", "zh": "可训练参数"},
    "lora.of_total": {"en": "of", "zh": "占全部"},
    "lora.params": {"en": "parameters", "zh": "个参数"},
    "lora.targets_found": {"en": "Linear layers in this model", "zh": "模型中的线性层"},
    "lora.refresh": {"en": "Count", "zh": "计算"},
    "lora.pending": {"en": "The count appears when the model has been read.",
                     "zh": "读取模型后会显示数量。"},
    # training tab
    "train.settings": {"en": "Training settings", "zh": "训练设置"},
    "train.run_name": {"en": "Run name", "zh": "运行名称"},
    "train.run_name.help": {"en": "A folder name for this run (letters, digits, '.', '_', '-').",
                            "zh": "本次运行的文件夹名（字母、数字、'.'、'_'、'-'）。"},
    "train.start": {"en": "Start training", "zh": "开始训练"},
    "train.stop": {"en": "Stop", "zh": "停止"},
    "train.resume": {"en": "Resume", "zh": "继续训练"},
    "train.refresh": {"en": "Refresh", "zh": "刷新"},
    "train.run": {"en": "Run", "zh": "运行"},
    "train.runs": {"en": "Runs", "zh": "运行记录"},
    "train.progress": {"en": "Progress", "zh": "进度"},
    "train.loss_plot": {"en": "Loss", "zh": "损失"},
    "train.lr_plot": {"en": "Learning rate", "zh": "学习率"},
    "train.log": {"en": "Log (last lines)", "zh": "日志（最后几行）"},
    "train.step": {"en": "Step", "zh": "步"},
    "train.elapsed": {"en": "elapsed", "zh": "已用"},
    "train.eta": {"en": "remaining", "zh": "剩余"},
    "train.no_run": {"en": "No run yet. Choose your settings and press “Start training”.",
                     "zh": "还没有运行。选好设置后点击「开始训练」。"},
    "train.started": {"en": "Started", "zh": "已开始"},
    "train.stop_requested": {"en": "Stop requested; the run saves a checkpoint and stops.",
                             "zh": "已请求停止；运行会保存检查点后停止。"},
    "train.resumed": {"en": "Resumed", "zh": "已继续"},
    "train.error": {"en": "Error", "zh": "错误"},
    "col.run": {"en": "Run", "zh": "运行"},
    "col.state": {"en": "State", "zh": "状态"},
    "col.step": {"en": "Step", "zh": "步"},
    "col.started": {"en": "Started", "zh": "开始时间"},
    "col.merged": {"en": "Merged", "zh": "已合并"},
    "state.running": {"en": "running", "zh": "运行中"},
    "state.completed": {"en": "completed", "zh": "已完成"},
    "state.failed": {"en": "failed", "zh": "失败"},
    "state.stopped": {"en": "stopped", "zh": "已停止"},
    "series.loss": {"en": "Training loss", "zh": "训练损失"},
    "series.eval_loss": {"en": "Eval loss", "zh": "验证损失"},
    # merge tab
    "merge.run": {"en": "Completed run", "zh": "已完成的运行"},
    "merge.button": {"en": "Merge", "zh": "合并"},
    "merge.explain": {"en": "Merging adds the trained adapter into a full-precision copy of "
                            "the base model, so the result runs anywhere without Workbench. "
                            "The merged model is then checked against base + adapter.",
                      "zh": "合并会把训练好的适配器加进一份全精度的基础模型，得到可以脱离 Workbench "
                            "使用的模型，并与“基础模型 + 适配器”对照验证。"},
    "merge.result": {"en": "Result", "zh": "结果"},
    "merge.ok": {"en": "Verified: the merged model matches base + adapter",
                 "zh": "验证通过：合并后的模型与“基础模型 + 适配器”一致"},
    "merge.bad": {"en": "Check failed: the merged model differs from base + adapter",
                  "zh": "验证失败：合并后的模型与“基础模型 + 适配器”不一致"},
    "merge.diff": {"en": "max logit difference", "zh": "最大 logit 差异"},
    "merge.tolerance": {"en": "tolerance", "zh": "容差"},
    "merge.folder": {"en": "Output folder", "zh": "输出文件夹"},
    "merge.none": {"en": "No completed run yet: train one in the Training tab.",
                   "zh": "还没有完成的运行：先在「训练」标签页训练。"},
    # chat tab
    "chat.run": {"en": "Fine-tuned run", "zh": "微调运行"},
    "chat.base": {"en": "Base model", "zh": "基础模型"},
    "chat.tuned": {"en": "Fine-tuned", "zh": "微调后"},
    "chat.prompt": {"en": "Your message", "zh": "你的消息"},
    "chat.prompt.placeholder": {"en": "Ask both models the same question…",
                                "zh": "向两个模型问同一个问题……"},
    "chat.compare": {"en": "Compare", "zh": "比较"},
    "chat.clear": {"en": "New conversation", "zh": "新对话"},
    "chat.settings": {"en": "Generation settings", "zh": "生成设置"},
    # common
    "common.none": {"en": "none", "zh": "无"},
    "common.busy": {"en": "A training run is in progress", "zh": "有训练正在进行"},
}


def field_keys() -> list[str]:
    return [f"{section}.{key}" for section, key, _ in iter_fields()]


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, str]]:
    """{key: {"en": ..., "zh": ...}} for every field label, field help and message."""
    out: dict[str, dict[str, str]] = {}
    for section, key, meta in iter_fields():
        dotted = f"{section}.{key}"
        zh_label, zh_help = FIELDS_ZH.get(dotted, ("", ""))
        out[dotted] = {"en": meta.get("label") or key, "zh": zh_label}
        out[dotted + ".help"] = {"en": meta.get("help") or "", "zh": zh_help}
    for key, langs in MESSAGES.items():
        if key in out:
            raise ValueError(f"i18n key {key!r} is both a field and a message")
        out[key] = dict(langs)
    return out


def text(key: str, lang: str = "en") -> str:
    """The plain string (server side: logs, CLI, tests)."""
    return table()[key][lang]


def t(key: str):
    """A translatable label for a component (`gr.I18nData`); KeyError on an unknown key."""
    if key not in table():
        raise KeyError(f"no i18n entry for {key!r}")
    return _i18n()(key)


def m(key: str) -> str:
    """A marker for composed Markdown/HTML text: f"{m('train.step')} 3"; any number of
    markers per string (translated by the page script)."""
    if key not in table():
        raise KeyError(f"no i18n entry for {key!r}")
    return f"⟦{key}⟧"


MARKER_RE = re.compile(r"⟦([\w.-]+)⟧")


def render(text: str, lang: str = "en") -> str:
    """Replace the m() markers in `text` with one language (tests, logs, the API)."""
    return MARKER_RE.sub(lambda mt: text_or_key(mt.group(1), lang), text)


def text_or_key(key: str, lang: str) -> str:
    entry = table().get(key)
    return entry[lang] if entry else key


_SCRIPT = r"""
(() => {
  const T = __TABLE__;
  const RE = /\u27e6([\w.-]+)\u27e7/g;
  const lang = () => ((document.documentElement.lang || navigator.language || "en")
                      .toLowerCase().startsWith("zh") ? "zh" : "en");
  const tr = (key) => (T[key] ? (T[key][lang()] || T[key].en) : key);
  function translateNode(node) {
    const text = node.nodeValue;
    if (!text || text.indexOf("\u27e6") < 0) return;
    const frag = document.createDocumentFragment();
    let last = 0;
    text.replace(RE, (match, key, at) => {
      frag.appendChild(document.createTextNode(text.slice(last, at)));
      const span = document.createElement("span");
      span.dataset.wbKey = key;
      span.textContent = tr(key);
      frag.appendChild(span);
      last = at + match.length;
    });
    frag.appendChild(document.createTextNode(text.slice(last)));
    node.parentNode && node.parentNode.replaceChild(frag, node);
  }
  function walk(root) {
    if (root.nodeType === 3) return translateNode(root);
    if (root.nodeType !== 1 || root.tagName === "SCRIPT" || root.tagName === "STYLE") return;
    const it = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const found = [];
    while (it.nextNode()) if (it.currentNode.nodeValue.indexOf("\u27e6") >= 0) found.push(it.currentNode);
    found.forEach(translateNode);
  }
  function retranslate() {
    document.querySelectorAll("[data-wb-key]").forEach((s) => { s.textContent = tr(s.dataset.wbKey); });
  }
  function start() {
    walk(document.body);
    new MutationObserver((muts) => {
      for (const mu of muts) {
        if (mu.type === "characterData") translateNode(mu.target);
        else mu.addedNodes.forEach(walk);
      }
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
    new MutationObserver(retranslate).observe(document.documentElement,
      {attributes: true, attributeFilter: ["lang"]});
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
"""


def page_head() -> str:
    """The <script> that translates m() markers; passed to launch(head=...)."""
    tbl = json.dumps({k: {"en": v["en"], "zh": v["zh"]} for k, v in table().items()},
                     ensure_ascii=False).replace("</", "<\\/")
    return "<script>" + _SCRIPT.replace("__TABLE__", tbl) + "</script>"


@lru_cache(maxsize=1)
def _i18n():
    import gradio as gr
    tbl = table()
    return gr.I18n(en={k: v["en"] for k, v in tbl.items()},
                   zh={k: v["zh"] for k, v in tbl.items()})


def i18n():
    """The `gr.I18n` instance passed to `launch(i18n=...)`."""
    return _i18n()
