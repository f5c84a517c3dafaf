"""Every string the page shows, in English and Simplified Chinese, in one table.

Long because it is that table: one place to see that every key has both languages.

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

The language is the browser's until the user picks one with the switch at the top of the
page (English / 中文, remembered in the browser); the switch changes Gradio's own locale, so
t() labels, markers and Gradio's own words change at once (see `page_head()`).
Tests: tests/unit/test_ui_i18n.py (both languages for every key),
tests/browser/test_language.py (the switch).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

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
    "data.mix": ("通用数据混入", "混入训练的通用指令数据，让模型保留原有的知识：一个 {path, fraction} 列表；"
                 "每项加入该文件的 round(fraction × 你的行数) 行，像你的数据一样划分和遮罩，例如 "
                 "[{path: data/general_mix.jsonl, fraction: 0.5}]。留空 = 不混入。"),
    "quantization.mode": ("量化方式", "冻结的基础权重如何存储。nf4：4 位 NormalFloat（QLoRA 的选择）；"
                          "fp4：普通 4 位浮点；int8：LLM.int8，离群值保留 16 位；none：16 位权重。"),
    "quantization.double_quant": ("双重量化", "把 4 位量化的缩放常数也量化（每个参数约省 0.37 位）。"),
    "quantization.compute_dtype": ("计算精度", "训练时矩阵乘法的精度。auto：芯片原生支持 bfloat16 时"
                                  "（支持 bf16 的 CUDA、AVX512-BF16/AMX CPU）用 bfloat16（QLoRA 的选择），"
                                  "较旧的 GPU 用 float16，其他 CPU 用 float32（那里 bfloat16 靠模拟，慢好几倍）。"),
    "quantization.int8_threshold": ("Int8 离群阈值", "LLM.int8 离群阈值：大于该值的输入特征保留 16 位"
                                    "（论文用 6.0）。"),
    "lora.r": ("秩 (r)", "秩：适配器学习的小型更新的大小。越大能学得越多，但占用内存也越多。常用：8–16；QLoRA 论文用 64。"),
    "lora.alpha": ("Alpha", "适配器更新的强度：更新量按 alpha / r 缩放。常用：秩的两倍（r 为 8 时取 16）；"
                   "QLoRA 论文用 16。"),
    "lora.dropout": ("Dropout", "训练时随机关掉适配器输入的这一比例，让它少死记硬背。常用：0.05–0.1。"),
    "lora.target_modules": ("目标模块", "哪些层加适配器：'all-linear'（除输出层外的全部线性层，QLoRA 的选择）"
                            "或若干模块名，例如 [q_proj, v_proj]（参数更少）。常用：all-linear。"),
    "lora.bias": ("偏置", "是否同时训练模型的偏置值。常用：none。"),
    "lora.use_rslora": ("rsLoRA", "秩稳定 LoRA：按 alpha / √r 缩放，有助于大秩（64 及以上）学习。常用：关闭。"),
    "lora.use_dora": ("DoRA", "DoRA：额外学习每个输出的幅度；小秩时有时效果更好，但更慢。常用：关闭。"),
    "train.max_length": ("最大长度", "每行最多多少 token（token 是模型切分文字的小片段）；更长的行会被截断。"
                         "常用：512–2048；越短越省内存。"),
    "train.epochs": ("训练轮数", "训练把整个数据集读几遍。常用：1–3；只有几十行时可能要更多。"),
    "train.max_steps": ("最大步数", "训练到这么多步就停止，不再按轮数计算（-1 = 按轮数）。常用：-1；快速试一下可设 20。"),
    "train.batch_size": ("批大小", "每个设备一次学习多少行；越大越快，但越占内存。常用：1–8。"),
    "train.grad_accum": ("梯度累积", "累积这么多批后才更新一次：每步相当于学习 批大小 × 该值 行，却不多占内存。"
                         "常用：1–8。"),
    "train.learning_rate": ("学习率", "每一步学习的幅度：太大损失会乱跳，太小几乎学不到东西。"
                            "常用：1e-4–2e-4（QLoRA 论文用 2e-4）；很小的模型可到 1e-3。"),
    "train.lr_scheduler": ("学习率调度", "学习率在训练过程中如何变化：cosine 和 linear 逐渐降到零，constant 保持不变。"
                           "常用：cosine。"),
    "train.warmup_ratio": ("预热比例", "开头用这一比例的步数把学习率从零升上来，让训练平稳起步（'constant' 不预热）。"
                           "常用：0.03–0.1。"),
    "train.optimizer": ("优化器", "如何把梯度变成权重更新。常用：adamw_torch；8bit 和 paged 版本省内存，但需要 CUDA GPU"
                        "（在 CPU 上会改用 adamw_torch 并提示）。"),
    "train.max_grad_norm": ("梯度裁剪", "限制单次更新的大小，免得一批异常数据把训练带偏（0 = 不限制）。"
                            "常用：1.0；QLoRA 论文用 0.3。"),
    "train.gradient_checkpointing": ("梯度检查点", "重算中间结果而不是保存它们（CPU 上 384 个 token 的行：内存约减半，用时约 1.3–1.5 倍）。"
                                     "auto：能省下 1 GiB 且本机内存的 1/16 时开启（长数据）。常用：auto。"),
    "train.packing": ("打包", "把多条短数据拼成一条序列，少浪费在填充上。常用：关闭；有成千上万条短数据时开启。"),
    "train.completion_only_loss": ("只学回答", "只从回答中学习，不学提问部分，让模型学会回答。常用：开启。"),
    "train.logging_steps": ("日志间隔", "每 N 步记录一次损失（损失图上的点）。常用：1–10。"),
    "train.eval_steps": ("验证间隔", "每 N 步用留出的数据算一次验证损失，用来发现死记硬背；每次都要花时间。常用：10–100。"),
    "train.save_steps": ("保存间隔", "每 N 步保存一个检查点，停止后可以继续训练（保留最近 3 个）。常用：50–500。"),
    "train.seed": ("随机种子", "随机选择的起点：相同的种子和设置能重现一次运行。常用：任意数字，例如 42。"),
    "train.watch_prompts": ("观察问题", "训练时每到验证步，模型都回答这些问题（简短的贪心回答，保存在 "
                            "samples.jsonl 中），用来看它的回答何时改变。常用：留空（数据中留出的 3 个问题）。"),
    "generation.max_new_tokens": ("最多新 token", "回答的最大 token 数（64 约为几句话；越长比较越慢）。"),
    "generation.temperature": ("温度", "随机程度；0 = 总选最可能的 token（贪心）。"),
    "generation.top_p": ("Top-p", "只从累计概率达到该值的最可能 token 中采样。"),
    "generation.repetition_penalty": ("重复惩罚", "大于 1 会减少重复（1.1 较温和：小模型否则容易反复）。"),
    "generation.system_prompt": ("系统提示词", "对话用的系统提示词（留空 = 模型默认）。"),
    "distributed.processes": ("进程数", "要启动的训练进程数，每块 GPU 一个（DDP）：1 = 单个进程，和平常一样。"
                              "在 CPU 上它们共用 CPU 核心（gloo）。"),
    "distributed.launcher": ("启动器", "由谁启动这些进程：torchrun（DDP），或 accelerate 加配置文件"
                             "（DDP、FSDP、DeepSpeed）。"),
    "distributed.accelerate_config": ("Accelerate 配置", "启动器为 accelerate 时使用的配置文件，例如 "
                                      "presets/accelerate/multi-gpu.yaml（留空 = 无）。"),
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
    "preset.delete_confirm": {"en": "Delete your preset “{name}”? This cannot be undone.",
                              "zh": "删除你的预设「{name}」？删除后无法恢复。"},
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
    "dataset.columns.readonly": {"en": "The mapping the dropdowns above set; a saved preset "
                                       "keeps it.",
                                 "zh": "上方下拉框设定的映射；保存预设时会一并保存。"},
    "dataset.few_rows": {"en": "rows: too few to learn from reliably; 50+ is a good start.",
                         "zh": "行：太少，难以可靠地学会；50 行以上是个好的开始。"},
    "dataset.files": {"en": "Files", "zh": "文件"},
    "dataset.mix.rows_from": {"en": "general rows from", "zh": "行通用数据，来自"},
    "dataset.mix.fraction": {"en": "fraction", "zh": "比例"},
    "dataset.mix.repeat": {"en": "the file holds fewer, so rows repeat",
                           "zh": "文件行数不够，部分行会重复"},
    "dataset.mix.explain": {"en": "mixed into training so the model keeps its general "
                                  "answers; split and masked like your rows",
                            "zh": "混入训练，让模型保留通用回答能力；与你的数据一样划分和遮罩"},
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
    "train.no_points": {"en": "No points yet: they come every “Logging steps” steps",
                        "zh": "还没有数据点：每隔「日志间隔」步出现一个点"},
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
    # training tab: what the buttons act on, and what to do after a run
    "train.load_settings": {"en": "Load this run's settings", "zh": "载入此运行的设置"},
    "train.to_chat": {"en": "Compare in Chat →", "zh": "去聊天里比较 →"},
    "train.note.busy": {"en": "Start is off while a run trains: training now",
                        "zh": "有运行正在训练，暂时不能开始新的训练。正在训练"},
    "train.note.stop": {"en": "Stop ends this run (it saves its adapter first).",
                        "zh": "“停止”会结束这个运行（先保存适配器）。"},
    "train.note.select": {"en": "choose the running run in the list below to stop it",
                          "zh": "要停止它，请先在下方列表中选中正在训练的运行"},
    "train.note.finished": {"en": "is finished: compare it with the base model in Chat, or "
                                  "load its settings into every tab.",
                            "zh": "已完成：可以在聊天中与基础模型比较，或把它的设置载入所有标签页。"},
    "train.note.resume": {"en": "Resume continues it from its last checkpoint.",
                          "zh": "“继续”会从最近的检查点接着训练。"},
    "train.note.nothing": {"en": "No run is training, so there is nothing to stop.",
                           "zh": "没有正在训练的运行，无需停止。"},
    "train.loaded_run": {"en": "Settings of run", "zh": "已载入运行的设置"},
    # the sample timeline (ui/tabs/training_samples.py)
    "samples.title": {"en": "Answers during training", "zh": "训练中的回答"},
    "samples.explain": {"en": "the watch prompts answered at each eval step",
                        "zh": "每个验证步对观察问题的回答"},
    "samples.none": {"en": "No answers yet: they appear at each eval step (Eval steps).",
                     "zh": "还没有回答：每到验证步（验证间隔）就会出现。"},
    "samples.older": {"en": "earlier eval steps are in the run's samples.jsonl",
                      "zh": "个更早的验证步保存在运行文件夹的 samples.jsonl 中"},
    "samples.placeholder": {"en": "empty = 3 held-out questions, or [Who are you?, ...]",
                            "zh": "留空 = 3 个留出的问题，或 [你是谁？, ...]"},
    "preset.shown": {"en": "Preset", "zh": "预设"},
    # the "start here" strip
    "guide.title": {"en": "Start here: your first fine-tune in three steps",
                    "zh": "从这里开始：三步完成第一次微调"},
    "guide.data": {"en": "Pick data", "zh": "选择数据"},
    "guide.data.detail": {"en": "The sample already works: it teaches the model that its "
                                "name is Nova. Or upload your own file in Dataset.",
                          "zh": "示例数据可以直接用：它教模型把自己叫作 Nova。也可以在「数据集」上传你自己的文件。"},
    "guide.train": {"en": "Start training", "zh": "开始训练"},
    "guide.train.detail": {"en": "Training tab → Start training.",
                           "zh": "「训练」标签页 → 开始训练。"},
    "guide.training": {"en": "Training", "zh": "正在训练"},
    "guide.about": {"en": "About", "zh": "大约"},
    "guide.minutes": {"en": "min on this machine", "zh": "分钟（本机）"},
    "guide.from_dry_run": {"en": "from your dry run", "zh": "来自你的试运行"},
    "guide.from_last_run": {"en": "your last run's time", "zh": "上次运行的用时"},
    "guide.no_estimate": {"en": "Dry run (same tab) measures how long it takes here.",
                          "zh": "“试运行”（同一标签页）可以测出在本机需要多久。"},
    "guide.chat": {"en": "Compare in Chat", "zh": "在聊天中比较"},
    "guide.chat.detail": {"en": "Ask both models the same question and see the difference.",
                          "zh": "向两个模型问同一个问题，看看区别。"},
    "guide.chat.ready": {"en": "Ready: Chat tab → Compare, with run",
                         "zh": "可以了：「聊天」标签页 → 比较，运行"},
    # merge tab downloads
    "download.button": {"en": "Prepare downloads", "zh": "准备下载"},
    "download.files": {"en": "Downloads: merged model (.zip), GGUF, Modelfile",
                       "zh": "下载：合并后的模型（.zip）、GGUF、Modelfile"},
    "download.nothing": {"en": "Nothing to download yet: merge the run (and export GGUF) first",
                         "zh": "还没有可下载的文件：请先合并（并导出 GGUF）"},
    "download.ready": {"en": "files ready: click a name to download it",
                       "zh": "个文件已就绪：点击文件名即可下载"},
    "export.on_server": {"en": "on the computer that runs Workbench, in its Workbench folder",
                         "zh": "在运行 Workbench 的电脑上，位于其 Workbench 文件夹中"},
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
    "chat.stop": {"en": "Stop", "zh": "停止"},
    "chat.generating": {"en": "Both models are answering… (Stop ends it)",
                        "zh": "两个模型正在回答……（点“停止”可中止）"},
    "chat.stopped": {"en": "Stopped.", "zh": "已停止。"},
    "chat.done": {"en": "Both answers in", "zh": "两个回答用时"},
    "chat.busy": {"en": "Compare is off while a training run uses the memory; it comes back "
                        "when the run ends. Training now",
                  "zh": "训练占用内存时无法比较，训练结束后即可使用。正在训练"},
    "chat.no_runs": {"en": "No run with an adapter yet: train one in the Training tab, then "
                           "compare it here.",
                     "zh": "还没有带适配器的运行：先在「训练」标签页训练一个，再来这里比较。"},
    "chat.empty": {"en": "Type a message first, then press Compare.",
                   "zh": "请先输入一条消息，再点“比较”。"},
    # chat tab: prompt set and blind A/B (ui/tabs/chat_eval.py)
    "ceval.heading": {"en": "Prompt set: many prompts, base and runs side by side",
                      "zh": "提示集：多个提示，基础模型与各运行并排比较"},
    "ceval.explain": {"en": "Pick a prompt file (or type prompts, one per line) and one or more "
                            "runs. The base and every run answer each prompt (greedy, short); "
                            "✓/✗ marks an answer that matches the file's reference. An answer "
                            "takes several seconds on a CPU: start with a few prompts.",
                      "zh": "选择一个提示文件（或每行输入一个提示）以及一个或多个运行。基础模型和每个运行都会"
                            "回答每个提示（贪心解码，简短）；✓/✗ 表示回答是否与文件中的参考答案相符。"
                            "在 CPU 上每个回答需要几秒钟：先从少量提示开始。"},
    "ceval.file": {"en": "Prompt file", "zh": "提示文件"},
    "ceval.upload": {"en": "…or upload a prompt file (.jsonl, .csv: prompt, reference)",
                     "zh": "……或上传提示文件（.jsonl、.csv：prompt、reference）"},
    "ceval.typed": {"en": "…or type prompts, one per line (used instead of the file)",
                    "zh": "……或每行输入一个提示（将代替文件使用）"},
    "ceval.typed.placeholder": {"en": "Who are you?\nWhat is the capital of France?",
                                "zh": "你是谁？\n法国的首都是哪里？"},
    "ceval.runs": {"en": "Runs to compare with the base", "zh": "与基础模型比较的运行"},
    "ceval.limit": {"en": "First N prompts", "zh": "前 N 个提示"},
    "ceval.limit.help": {"en": "0 = all (slow: seconds per answer)",
                         "zh": "0 = 全部（较慢：每个回答需数秒）"},
    "ceval.tokens": {"en": "Longest answer (tokens)", "zh": "最长回答（token 数）"},
    "ceval.tokens.help": {"en": "shorter is quicker; also for Blind A/B",
                          "zh": "越短越快；盲测 A/B 也使用此值"},
    "ceval.start": {"en": "Answer the prompts", "zh": "回答这些提示"},
    "ceval.table": {"en": "Answers (✓ matches the reference, ✗ does not)",
                    "zh": "回答（✓ 与参考答案相符，✗ 不符）"},
    "ceval.csv": {"en": "Download the table (CSV)", "zh": "下载表格（CSV）"},
    "ceval.col.prompt": {"en": "prompt", "zh": "提示"},
    "ceval.col.reference": {"en": "reference", "zh": "参考答案"},
    "ceval.busy": {"en": "Prompt set and blind A/B are off while a training run uses the "
                         "memory. Training now",
                   "zh": "训练占用内存时无法使用提示集和盲测 A/B。正在训练"},
    "ceval.no_file": {"en": "Choose a prompt file, upload one or type prompts first.",
                      "zh": "请先选择或上传提示文件，或输入提示。"},
    "ceval.no_runs": {"en": "Choose at least one run to compare with the base.",
                      "zh": "请至少选择一个运行与基础模型比较。"},
    "ceval.answering": {"en": "Answering prompts × models", "zh": "正在回答 提示 × 模型"},
    "ceval.done": {"en": "prompts answered in", "zh": "个提示已回答，用时"},
    "ceval.matches": {"en": "matches", "zh": "相符"},
    "ab.heading": {"en": "Blind A/B: which answer is better?",
                   "zh": "盲测 A/B：哪个回答更好？"},
    "ab.explain": {"en": "Two of the chosen models answer the same prompt; you see them as A "
                         "and B in random order, without their names. Vote, then see who was "
                         "who. Votes are saved in votes.jsonl in the Workbench folder.",
                   "zh": "从所选模型中取两个回答同一个提示，以随机顺序显示为 A 和 B，不显示名称。投票后即可"
                         "看到各是谁。投票保存在 Workbench 文件夹的 votes.jsonl 中。"},
    "ab.sources": {"en": "Models to compare (two or more)", "zh": "参与比较的模型（两个或更多）"},
    "ab.base_choice": {"en": "base model", "zh": "基础模型"},
    "ab.prompt": {"en": "Prompt", "zh": "提示"},
    "ab.prompt.placeholder": {"en": "Empty: a random prompt from the prompt set above",
                              "zh": "留空：从上面的提示集中随机取一个"},
    "ab.new": {"en": "New pair", "zh": "新一组"},
    "ab.answer_a": {"en": "Answer A", "zh": "回答 A"},
    "ab.answer_b": {"en": "Answer B", "zh": "回答 B"},
    "ab.vote.a": {"en": "A is better", "zh": "A 更好"},
    "ab.vote.b": {"en": "B is better", "zh": "B 更好"},
    "ab.vote.tie": {"en": "Tie", "zh": "平手"},
    "ab.vote.both_bad": {"en": "Both bad", "zh": "都不好"},
    "ab.answering": {"en": "Two models are answering", "zh": "两个模型正在回答"},
    "ab.ready": {"en": "Both answers in: read them and vote", "zh": "两个回答已生成：请阅读后投票"},
    "ab.no_pair": {"en": "Press New pair first, then vote.", "zh": "请先点“新一组”，再投票。"},
    "ab.recorded": {"en": "Vote saved", "zh": "投票已保存"},
    "ab.board": {"en": "Leaderboard", "zh": "排行榜"},
    "ab.votes": {"en": "votes", "zh": "票"},
    "ab.count": {"en": "Votes", "zh": "票数"},
    "ab.rates": {"en": "Win rate counts a tie or “both bad” as half a win; the interval is "
                       "95% (Wilson).",
                 "zh": "胜率中平手或“都不好”算半胜；区间为 95%（Wilson）。"},
    "ab.bt_after": {"en": "The Bradley-Terry score appears at",
                    "zh": "Bradley-Terry 分数需要至少"},
    "ab.more": {"en": "still needed:", "zh": "还差："},
    "ab.col.source": {"en": "model", "zh": "模型"},
    "ab.col.games": {"en": "votes", "zh": "票数"},
    "ab.col.wins": {"en": "wins", "zh": "胜"},
    "ab.col.losses": {"en": "losses", "zh": "负"},
    "ab.col.ties": {"en": "ties", "zh": "平"},
    "ab.col.both_bad": {"en": "both bad", "zh": "都不好"},
    "ab.col.win_rate": {"en": "win rate", "zh": "胜率"},
    "ab.col.interval": {"en": "95% interval", "zh": "95% 区间"},
    "ab.col.bt": {"en": "Bradley-Terry", "zh": "Bradley-Terry 分数"},
    # common
    "common.none": {"en": "none", "zh": "无"},
    "common.busy": {"en": "A training run is in progress", "zh": "有训练正在进行"},
    # --- merge tab: GGUF export and adapter spectrum (issue 6) ---
    "export.heading": {"en": "Export GGUF (llama.cpp, Ollama, LM Studio)",
                       "zh": "导出 GGUF（llama.cpp、Ollama、LM Studio）"},
    "export.explain": {"en": "Writes the merged model as a GGUF file with an Ollama Modelfile, "
                             "then loads the file back and compares it with the merged model. "
                             "A run that is not merged yet is merged first.",
                       "zh": "把合并后的模型写成 GGUF 文件并附带 Ollama Modelfile，然后重新加载该文件，"
                             "与合并后的模型对比验证。尚未合并的运行会先合并。"},
    "export.type": {"en": "File type", "zh": "文件类型"},
    "export.type.help": {"en": "F16: exact, twice the size. Q8_0: 8-bit, about half the size "
                               "of F16, nearly the same answers.",
                         "zh": "F16：精确，体积大一倍。Q8_0：8 位，约为 F16 的一半大小，回答几乎相同。"},
    "export.button": {"en": "Export GGUF", "zh": "导出 GGUF"},
    "export.working": {"en": "Exporting and verifying", "zh": "正在导出并验证"},
    "export.merging_first": {"en": "Merging, then exporting and verifying",
                             "zh": "先合并，再导出并验证"},
    "export.failed": {"en": "Export failed", "zh": "导出失败"},
    "export.done": {"en": "Export finished", "zh": "导出完成"},
    "export.ok": {"en": "Verified: the GGUF files give the merged model's answers",
                  "zh": "验证通过：GGUF 文件给出与合并模型相同的回答"},
    "export.bad": {"en": "Check failed: a GGUF file differs from the merged model",
                   "zh": "验证失败：有 GGUF 文件与合并后的模型不一致"},
    "export.unverified": {"en": "Written, not verified", "zh": "已写出，未验证"},
    "export.col.type": {"en": "Type", "zh": "类型"},
    "export.col.file": {"en": "Files", "zh": "文件"},
    "export.col.size": {"en": "Size", "zh": "大小"},
    "export.col.same_rounding": {"en": "vs same rounding", "zh": "与同样舍入相比"},
    "export.col.argmax": {"en": "Argmax agreement", "zh": "argmax 一致率"},
    "export.col.greedy": {"en": "Greedy text", "zh": "贪心生成文本"},
    "export.col.layout": {"en": "q/k layout error", "zh": "q/k 布局误差"},
    "export.col.check": {"en": "Check", "zh": "检查"},
    "export.same": {"en": "same", "zh": "相同"},
    "export.differs": {"en": "differs", "zh": "不同"},
    "export.reference": {"en": "Cross-check with llama.cpp's own GGUF of the base model",
                         "zh": "与 llama.cpp 自己转换的基础模型 GGUF 交叉核对"},
    "export.min_corr": {"en": "lowest q/k correlation", "zh": "q/k 最低相关系数"},
    "export.not_applied": {"en": "not applied", "zh": "未执行"},
    "export.template": {"en": "The Modelfile template renders the same text as the model's "
                              "chat template",
                        "zh": "Modelfile 模板渲染出的文本与模型的对话模板相同"},
    "export.sample": {"en": "Sample", "zh": "示例"},
    "export.merged": {"en": "merged", "zh": "合并模型"},
    "export.run_it": {"en": "Run it (from the output folder)", "zh": "运行方法（在输出文件夹中）"},
    "spec.heading": {"en": "What the adapter learned", "zh": "适配器学到了什么"},
    "spec.explain": {"en": "Each LoRA update has r directions. The effective rank counts how "
                           "many of them hold 90% of the update; far below r means a smaller "
                           "r would do, at r means r may be too small. The size is the "
                           "update's norm relative to the base weight.",
                     "zh": "每个 LoRA 更新有 r 个方向。有效秩是承载 90% 更新能量所需的方向数："
                           "远低于 r 说明更小的 r 就够，接近 r 说明 r 可能偏小。更新幅度是更新量的"
                           "范数相对基础权重范数的比例。"},
    "spec.rank_plot": {"en": "Effective rank per layer (grey: r)",
                       "zh": "每层的有效秩（灰线：r）"},
    "spec.norm_plot": {"en": "Update size relative to the base weight",
                       "zh": "更新量相对基础权重的大小"},
    "spec.table": {"en": "Per layer and module", "zh": "按层和模块"},
    "spec.reading": {"en": "Reading this run's adapter…", "zh": "正在读取该运行的适配器…"},
    "spec.too_large": {"en": "r may be larger than needed", "zh": "r 可能比需要的大"},
    "spec.too_small": {"en": "r may be too small", "zh": "r 可能偏小"},
    "spec.ok": {"en": "r looks about right", "zh": "r 看起来合适"},
    "spec.untrained": {"en": "The adapter has not learned anything yet",
                       "zh": "适配器还没有学到任何东西"},
    "spec.median_rank": {"en": "median effective rank", "zh": "有效秩中位数"},
    "spec.modules": {"en": "modules", "zh": "模块数"},
    "spec.median_norm": {"en": "median update size", "zh": "更新幅度中位数"},
    "spec.no_base": {"en": "base model not found: no update sizes",
                     "zh": "找不到基础模型：无法计算更新幅度"},
    "spec.col.layer": {"en": "Layer", "zh": "层"},
    "spec.col.module": {"en": "Module", "zh": "模块"},
    "spec.col.rank": {"en": "Effective rank", "zh": "有效秩"},
    "spec.col.sv": {"en": "Largest singular values", "zh": "最大的奇异值"},
    # --- dataset tab: mapping, token analysis, rendered row (issue 4) ---
    "dataset.mapping.explain": {
        "en": "Which column holds each role. Detection fills these in; change one when "
              "your file names its columns differently (stored in the preset's column "
              "mapping).",
        "zh": "每个角色对应哪一列。自动识别会填好这些；如果你的文件列名不同，在这里修改"
              "（保存在预设的列映射中）。"},
    "dataset.mapping.suggested": {"en": "Format not recognised; suggested column mapping applied",
                                  "zh": "未能识别格式；已套用建议的列映射"},
    "dataset.role.instruction": {"en": "instruction", "zh": "指令 instruction"},
    "dataset.role.input": {"en": "input", "zh": "输入 input"},
    "dataset.role.output": {"en": "output", "zh": "输出 output"},
    "dataset.role.system": {"en": "system", "zh": "系统 system"},
    "dataset.role.history": {"en": "history", "zh": "历史 history"},
    "dataset.role.prompt": {"en": "prompt", "zh": "提示 prompt"},
    "dataset.role.completion": {"en": "completion", "zh": "回答 completion"},
    "dataset.role.messages": {"en": "messages", "zh": "消息 messages"},
    "dataset.role.conversations": {"en": "conversations", "zh": "对话 conversations"},
    "dataset.role.text": {"en": "text", "zh": "文本 text"},
    "dataset.placeholder_table": {"en": "Placeholders found in the data: type a value for each",
                                  "zh": "数据中发现的占位符：为每个填写取值"},
    "dataset.placeholder_apply": {"en": "Use these values", "zh": "使用这些取值"},
    "dataset.tokens_heading": {"en": "Tokens and truncation", "zh": "token 与截断"},
    "dataset.analyse": {"en": "Analyse tokens", "zh": "分析 token"},
    "dataset.not_analysed": {
        "en": "Not analysed yet: “Analyse tokens” counts every row's tokens with the "
              "model's tokenizer (the first use of the embedded model imports it, about 30 s).",
        "zh": "尚未分析：“分析 token”会用模型的分词器统计每一行的 token 数"
              "（首次使用内置模型需导入，约 30 秒）。"},
    "dataset.loading_tokenizer": {
        "en": "Loading the model's tokenizer (the first use of the embedded model imports "
              "it, about 30 s)…",
        "zh": "正在加载模型的分词器（首次使用内置模型需导入，约 30 秒）……"},
    "dataset.reading": {"en": "Counting tokens…", "zh": "正在统计 token……"},
    "dataset.analysed": {"en": "Analysed", "zh": "已分析"},
    "dataset.rows": {"en": "rows", "zh": "行"},
    "dataset.sequences": {"en": "training sequences", "zh": "条训练序列"},
    "dataset.hist.x": {"en": "tokens per row (after the chat template)",
                       "zh": "每行 token 数（套用对话模板后）"},
    "dataset.hist.y": {"en": "rows", "zh": "行数"},
    "dataset.histogram": {"en": "Tokens per row (red: longer than max_length, truncated)",
                          "zh": "每行 token 数（红色：超过最大长度，会被截断）"},
    "dataset.tokens_per_row": {"en": "Tokens per row after the chat template",
                               "zh": "套用对话模板后每行的 token 数"},
    "dataset.loss_answers": {"en": "loss on answers only", "zh": "只对回答计算损失"},
    "dataset.loss_all": {"en": "loss on all tokens", "zh": "对所有 token 计算损失"},
    "dataset.at_max_length": {"en": "At max_length", "zh": "最大长度为"},
    "dataset.truncated_rows": {"en": "rows truncated", "zh": "行被截断"},
    "dataset.tokens_lost": {"en": "trained tokens lost", "zh": "个训练 token 被截掉"},
    "dataset.fully_masked": {"en": "rows lose every trained token (the trainer drops them)",
                             "zh": "行失去全部训练 token（训练时会被丢弃）"},
    "dataset.rows_e_g": {"en": "rows", "zh": "例如第"},
    "dataset.suggested": {"en": "Suggested max_length", "zh": "建议的最大长度"},
    "dataset.keeps": {"en": "keeps whole", "zh": "完整保留"},
    "dataset.packing_note": {"en": "packing is on: rows are packed together and cut the same way",
                             "zh": "已开启打包：多行拼在一起，截断方式相同"},
    "dataset.apply_p95": {"en": "Use the 95% suggestion", "zh": "采用 95% 建议值"},
    "dataset.apply_p99": {"en": "Use the 99% suggestion", "zh": "采用 99% 建议值"},
    "dataset.analyse_first": {"en": "Analyse the tokens first", "zh": "请先分析 token"},
    "dataset.checks": {"en": "Quality checks", "zh": "质量检查"},
    "dataset.check": {"en": "Check", "zh": "检查项"},
    "dataset.count": {"en": "Rows", "zh": "行数"},
    "dataset.example_rows": {"en": "Example rows", "zh": "示例行号"},
    "dataset.check.duplicates": {"en": "exact duplicates of an earlier row",
                                 "zh": "与前面某行完全重复"},
    "dataset.check.empty_answers": {"en": "empty or whitespace-only answers",
                                    "zh": "回答为空或只有空白"},
    "dataset.check.placeholders": {"en": "unfilled placeholders", "zh": "未填写的占位符"},
    "dataset.check.answer_exceeds_max_length": {"en": "answer alone longer than max_length",
                                                "zh": "回答本身就超过最大长度"},
    "dataset.render_heading": {"en": "What the model sees", "zh": "模型看到的内容"},
    "dataset.row": {"en": "Row", "zh": "行"},
    "dataset.row.help": {"en": "Row number in the file (from 1)", "zh": "文件中的行号（从 1 开始）"},
    "dataset.show_row": {"en": "Show this row", "zh": "显示这一行"},
    "dataset.rendered": {"en": "After the chat template: green is trained, gray is masked, "
                               "red is cut off by max_length",
                         "zh": "套用对话模板后：绿色参与训练，灰色被遮蔽，红色被最大长度截掉"},
    "dataset.tokens": {"en": "tokens", "zh": "个 token"},
    "dataset.trained_tokens": {"en": "trained", "zh": "个参与训练"},
    "dataset.row_truncated": {"en": "truncated at max_length", "zh": "在最大长度处被截断："},
    "dataset.row_dropped": {"en": "no trained token left after truncation: the trainer drops "
                                  "this row",
                            "zh": "截断后没有剩下训练 token：训练时会丢弃这一行"},
    # --- quantization tab: memory estimate, compare, dry run (issue 5) ---
    "qhelp.mode": {"en": "How the model's own numbers are stored while you train. Fewer bits "
                         "need less memory but round each number a little more.",
                   "zh": "训练时模型自身的数字如何存储。位数越少越省内存，但每个数字的舍入也越多。"},
    "qhelp.double_quant": {"en": "4-bit storage keeps one small scale number per 64 weights. "
                                 "Double quantization stores those scales in 8 bits too: about "
                                 "3 GB less for a 65B model, with no visible quality loss.",
                           "zh": "4 位存储时每 64 个权重要保存一个缩放数。双重量化把这些缩放数也存成 8 位："
                                 "65B 模型约省 3 GB，质量几乎不变。"},
    "qhelp.compute_dtype": {"en": "The precision used for the actual arithmetic. bfloat16 is "
                                  "fast and safe on recent hardware; float32 is slower but "
                                  "works everywhere.",
                            "zh": "实际计算时使用的精度。bfloat16 在较新的硬件上又快又稳；float32 更慢，但哪里都能用。"},
    "qhelp.int8_threshold": {"en": "Only for int8: a few inputs are unusually large; values "
                                   "above this threshold are kept in 16-bit so they are not "
                                   "rounded badly. Lower keeps more (slower, more exact); 6 is "
                                   "the usual value.",
                             "zh": "仅用于 int8：少数输入数值特别大，超过该阈值的会保留 16 位，避免被严重舍入。"
                                   "阈值越低保留越多（更慢、更准）；通常用 6。"},
    "qmem.chart": {"en": "Estimated training memory", "zh": "训练内存估算"},
    "qmem.pending": {"en": "The estimate appears when the page has loaded.",
                     "zh": "页面加载后会显示估算。"},
    "qmem.weights": {"en": "base weights", "zh": "基础权重"},
    "qmem.lora": {"en": "LoRA weights", "zh": "LoRA 权重"},
    "qmem.gradients": {"en": "gradients", "zh": "梯度"},
    "qmem.optimizer": {"en": "optimizer", "zh": "优化器状态"},
    "qmem.activations": {"en": "activations", "zh": "激活值"},
    "qmem.method.full": {"en": "Full 16-bit", "zh": "全参数 16 位"},
    "qmem.method.lora": {"en": "LoRA 16-bit", "zh": "LoRA 16 位"},
    "qmem.method.qlora": {"en": "QLoRA", "zh": "QLoRA"},
    "qmem.method.int8": {"en": "LoRA int8", "zh": "LoRA int8"},
    "qmem.gpu": {"en": "GPU memory", "zh": "GPU 显存"},
    "qmem.ram": {"en": "System memory (no GPU)", "zh": "系统内存（无 GPU）"},
    "qmem.free": {"en": "free", "zh": "可用"},
    "qmem.total": {"en": "in total", "zh": "总计"},
    "qmem.needs": {"en": "needs about", "zh": "约需"},
    "qmem.fits": {"en": "fits", "zh": "放得下"},
    "qmem.for_batch": {"en": "For batch", "zh": "按批大小"},
    "qmem.for_length": {"en": "length", "zh": "长度"},
    "qmem.for_tokens": {"en": "tokens: the activations grow with both.",
                        "zh": "个 token 计算：激活值随两者增长。"},
    "qmem.len_max": {"en": "The length is the Training tab's max length; analyse the data "
                           "on the Dataset tab to use its real, usually shorter, padded "
                           "length.",
                     "zh": "长度取训练页的最大长度；在数据集页分析数据后，改用数据真实的"
                           "（通常更短的）填充长度。"},
    "qmem.len_data": {"en": "The length is the analysed data's longest batch (a batch pads "
                            "to its longest row, cut at the Training tab's max length",
                      "zh": "长度取已分析数据中最长的一批（每批填充到其最长的一行，"
                            "并在训练页的最大长度"},
    "qmem.len_data_end": {"en": ").", "zh": " 处截断）。"},
    "qmem.no_fit": {"en": "does not fit", "zh": "放不下"},
    "qmem.advice": {"en": "Your settings do not fit. Try a smaller batch size or maximum "
                          "length, turn on gradient checkpointing, or choose nf4.",
                    "zh": "当前设置放不下。试试减小批大小或最大长度、打开梯度检查点，或选择 nf4。"},
    "qmem.note": {"en": "★ = your settings. An estimate from the model's shape, before "
                        "anything is loaded; “Dry run” in the Training tab measures it.",
                  "zh": "★ = 当前设置。根据模型结构估算，无需加载模型；「训练」标签页的「试运行」会实测。"},
    "qcmp.heading": {"en": "Compare quantisations: what each one costs in quality",
                     "zh": "比较量化方式：每种方式损失多少质量"},
    "qcmp.explain": {"en": "Stores this model each way (none, int8, nf4, fp4, with and "
                           "without double quant) and measures how far its weights move "
                           "(relative error) and, optionally, how much worse it predicts "
                           "your evaluation text (perplexity: lower is better). Runs in its "
                           "own process; takes a few minutes on a CPU.",
                     "zh": "把模型按每种方式存储（none、int8、nf4、fp4，含/不含双重量化），测量权重偏离多少"
                           "（相对误差），并可测量它预测验证文本变差多少（困惑度：越低越好）。在单独的进程中运行；"
                           "CPU 上需要几分钟。"},
    "qcmp.perplexity": {"en": "Also measure perplexity", "zh": "同时测量困惑度"},
    "qcmp.perplexity.help": {"en": "Loads every variant to score the evaluation text: slower, "
                                   "but shows the real quality cost.",
                             "zh": "加载每个变体给验证文本打分：更慢，但能看出真实的质量损失。"},
    "qcmp.button": {"en": "Compare quantisations", "zh": "比较量化方式"},
    "qcmp.table": {"en": "Quantisation comparison", "zh": "量化比较"},
    "qcmp.plot": {"en": "Weight error per layer (lower is better)",
                  "zh": "每层的权重误差（越低越好）"},
    "qcmp.starting": {"en": "Starting the comparison…", "zh": "正在开始比较……"},
    "qcmp.done": {"en": "Comparison finished", "zh": "比较完成"},
    "qcmp.ppl_on": {"en": "perplexity on", "zh": "困惑度基于"},
    "qcmp.no_ppl": {"en": "perplexity not measured", "zh": "未测量困惑度"},
    "qcmp.how_to_read": {"en": "Relative error: how far the stored weights are from the "
                               "originals (0.1 = 10%). Perplexity change: how much worse the "
                               "model predicts the text than unquantised (+1% is small).",
                         "zh": "相对误差：存储后的权重离原值多远（0.1 = 10%）。困惑度变化：模型预测文本比未量化时"
                               "差多少（+1% 很小）。"},
    "qcmp.col.variant": {"en": "variant", "zh": "方式"},
    "qcmp.col.bits": {"en": "bits per weight", "zh": "每权重位数"},
    "qcmp.col.footprint": {"en": "size (MB)", "zh": "大小 (MB)"},
    "qcmp.col.load": {"en": "load (s)", "zh": "加载 (秒)"},
    "qcmp.col.quantize": {"en": "quantise (s)", "zh": "量化 (秒)"},
    "qcmp.col.mean": {"en": "mean error", "zh": "平均误差"},
    "qcmp.col.max": {"en": "max error", "zh": "最大误差"},
    "qcmp.col.ppl": {"en": "perplexity", "zh": "困惑度"},
    "qcmp.col.ppl_change": {"en": "perplexity change %", "zh": "困惑度变化 %"},
    "dry.button": {"en": "Dry run (5 steps)", "zh": "试运行（5 步）"},
    "dry.explain": {"en": "A dry run trains 5 steps with these settings in a separate "
                          "process, measures speed and memory, then throws everything away.",
                    "zh": "试运行会在单独的进程中按当前设置训练 5 步，测量速度和内存，然后全部丢弃。"},
    "dry.starting": {"en": "Dry run: loading the model and data…",
                     "zh": "试运行：正在加载模型和数据……"},
    "dry.running": {"en": "Dry run in progress", "zh": "试运行进行中"},
    "dry.result": {"en": "Dry run result", "zh": "试运行结果"},
    "dry.seconds_per_step": {"en": "seconds per step", "zh": "每步秒数"},
    "dry.tokens_per_second": {"en": "tokens per second", "zh": "每秒 token 数"},
    "dry.peak": {"en": "peak memory (measured)", "zh": "峰值内存（实测）"},
    "dry.estimate": {"en": "estimate", "zh": "估算"},
    "dry.eta": {"en": "whole run", "zh": "完整训练"},
    "dry.steps": {"en": "steps, about", "zh": "步，约"},
    "dry.load": {"en": "loading took", "zh": "加载耗时"},
    "dry.measured": {"en": "steps measured", "zh": "步实测"},
    "dist.gpus": {"en": "GPUs on this machine:", "zh": "本机 GPU 数："},
    "dist.cpu_only": {"en": "none: several processes share the CPU (gloo)",
                      "zh": "无：多个进程共用 CPU（gloo）"},
    "dry.per_process": {"en": "figures per process; processes:", "zh": "每个进程的数值；进程数："},
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
    from workbench.ui import preset_about  # what each built-in preset is for
    out.update(preset_about.entries())
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


# -- the page script: markers, the language switch, and Gradio's strings ------------------
# The switch is ours (English / 中文, `language_switch_html()` at the top of the page); the
# choice is kept in the browser (localStorage) and in a cookie (`request_lang()` reads it
# for text the server draws into data, such as a chart's categories). Choosing a language
# sets Gradio's own locale (its `changeLocale`, from the module the page already loaded),
# which translates every t() label, Gradio's own strings and sets <html lang>; the markers
# follow <html lang>. What Gradio does not redo in place is redone here: the names of tabs
# not shown yet and the upload box text.

LANGUAGES = (("en", "English"), ("zh", "中文"))
STORAGE_KEY = "workbench-lang"  # localStorage, and the cookie's name
GRADIO_LOCALE = {"en": "en", "zh": "zh-CN"}  # zh-CN: Gradio's own strings too; ours are "zh"

# Gradio's own strings that a component renders once and never re-translates (the text
# of an upload box), as Gradio's locale files word them (tests check against them).
GRADIO_TEXT: dict[str, dict[str, str]] = {
    "upload_text.drop_file": {"en": "Drop File Here", "zh": "将文件拖放到此处"},
    "upload_text.or": {"en": "- or -", "zh": "- 或 -"},
    "upload_text.click_to_upload": {"en": "Click to Upload", "zh": "点击上传"},
}


# Column names that are data (a conversation's roles, in the Dataset preview): the table
# draws them as they come; the page script shows them in the page's language, in place,
# in tables with the class HEADER_CLASS.
HEADER_TEXT: dict[str, dict[str, str]] = {
    "header.user": {"en": "user", "zh": "用户"},
    "header.assistant": {"en": "assistant", "zh": "助手"},
    "header.system": {"en": "system", "zh": "系统"},
    "header.text": {"en": "text", "zh": "文本"},
}
HEADER_CLASS = "wb-role-headers"


def language_switch_html() -> str:
    """Two choices, English | 中文, for a gr.HTML at the top of the page (the page script
    handles the clicks and marks the current one)."""
    buttons = "".join(
        f'<button type="button" role="radio" aria-checked="false" data-wb-lang="{code}"'
        f' lang="{GRADIO_LOCALE[code]}">{name}</button>' for code, name in LANGUAGES)
    return f'<div class="wb-lang" role="radiogroup" aria-label="Language · 语言">{buttons}</div>'


def request_lang(request) -> str:
    """'zh' or 'en' for a request: the switch's cookie, else the browser's language."""
    if request is None:
        return "en"
    cookies = getattr(request, "cookies", None) or {}
    chosen = str(cookies.get(STORAGE_KEY, "") or "")
    if chosen in GRADIO_LOCALE:
        return chosen
    headers = getattr(request, "headers", None) or {}
    accept = str(headers.get("accept-language", "") or "")
    return "zh" if accept.strip().lower().startswith("zh") else "en"


@lru_cache(maxsize=1)
def gradio_core_asset() -> str:
    """The file name of the installed Gradio frontend's core module (the one that exports
    `changeLocale`, e.g. 'core-Bdx9080F.js'), or '' when it cannot be found; the page
    script then falls back to Gradio's Settings panel."""
    try:
        import gradio
        assets = Path(gradio.__file__).parent / "templates" / "frontend" / "assets"
        for path in sorted(assets.glob("core-*.js")):
            if "changeLocale" in path.read_text(encoding="utf-8", errors="ignore"):
                return path.name
    except (ImportError, OSError):
        pass
    return ""


_SCRIPT = r"""
(() => {
  const T = __TABLE__;
  const GR = __GRADIO_TEXT__;
  const HD = __HEADER_TEXT__;
  const CORE = __CORE__;
  const KEY = __KEY__;
  const LOCALE = __LOCALE__;
  const RE = /\u27e6([\w.-]+)\u27e7/g;
  const short = (v) => ((v || "").toLowerCase().startsWith("zh") ? "zh" : "en");
  const lang = () => short(document.documentElement.lang || navigator.language || "en");
  const tr = (key) => (T[key] ? (T[key][lang()] || T[key].en) : key);
  const render = (text) => text.replace(RE, (match, key) => tr(key));
  const TAB_KEYS = Object.keys(T).filter((k) => k.startsWith("tab."));
  let wanted = null;  // the language being applied (the switch shows it at once)

  function translateNode(node) {
    const text = node.nodeValue;
    const parent = node.parentNode;
    if (!text || !parent || text.indexOf("\u27e6") < 0) return;
    if (parent instanceof SVGElement) {
      // chart text (Vega draws SVG, where a <span> would not show): the source stays on
      // the element so a language change can redo it
      const out = render(text);
      parent.dataset.wbSrc = text;
      parent.dataset.wbOut = out;
      node.nodeValue = out;
      return;
    }
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
    parent.replaceChild(frag, node);
  }
  function textNodes(root) {
    const it = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const found = [];
    while (it.nextNode()) found.push(it.currentNode);
    return found;
  }
  function translateLabel(el) {
    // a chart's aria-labels name its axes by their titles (what a screen reader says)
    const label = el.getAttribute("aria-label");
    if (!label || label.indexOf("\u27e6") < 0) return;
    const out = render(label);
    el.dataset.wbLabel = label;
    el.dataset.wbLabelOut = out;
    el.setAttribute("aria-label", out);
  }
  function walk(root) {
    if (root.nodeType === 3) return translateNode(root);
    if (root.nodeType !== 1 || root.tagName === "SCRIPT" || root.tagName === "STYLE") return;
    textNodes(root).filter((n) => n.nodeValue.indexOf("\u27e6") >= 0).forEach(translateNode);
    translateLabel(root);
    root.querySelectorAll('[aria-label*="\u27e6"]').forEach(translateLabel);
  }
  // a text node that shows one of `keys` in either language: show it in the page's
  function swap(node, table, keys) {
    const shown = node.nodeValue.trim();
    if (!shown) return;
    for (const key of keys) {
      const entry = table[key];
      if (entry.en !== shown && entry.zh !== shown) continue;
      const want = entry[lang()] || entry.en;
      if (want !== shown) node.nodeValue = node.nodeValue.replace(shown, want);
      return;
    }
  }
  function fixup() {
    // Gradio names a tab in the new language only once the tab has been shown
    document.querySelectorAll(".tab-wrapper button").forEach(
      (b) => textNodes(b).forEach((n) => swap(n, T, TAB_KEYS)));
    // Gradio's own words that a component renders once (the upload box)
    document.querySelectorAll('[data-testid="upload-text"]').forEach(
      (b) => textNodes(b).forEach((n) => swap(n, GR, Object.keys(GR))));
    // column names that are data (roles): in place, so the table can still redraw them
    document.querySelectorAll(".__HEADER_CLASS__ th").forEach(
      (b) => textNodes(b).forEach((n) => swap(n, HD, Object.keys(HD))));
    const current = wanted || lang();
    document.querySelectorAll("[data-wb-lang]").forEach((b) => {
      const on = String(b.dataset.wbLang === current);
      if (b.getAttribute("aria-checked") !== on) b.setAttribute("aria-checked", on);
    });
  }
  function retranslate() {
    document.querySelectorAll("[data-wb-key]").forEach((s) => { s.textContent = tr(s.dataset.wbKey); });
    document.querySelectorAll("[data-wb-src]").forEach((el) => {
      if (el.textContent !== el.dataset.wbOut) return;  // the chart has redrawn it since
      const out = render(el.dataset.wbSrc);
      el.dataset.wbOut = out;
      el.textContent = out;
    });
    document.querySelectorAll("[data-wb-label]").forEach((el) => {
      if (el.getAttribute("aria-label") !== el.dataset.wbLabelOut) return;  // redrawn since
      el.dataset.wbLabelOut = render(el.dataset.wbLabel);
      el.setAttribute("aria-label", el.dataset.wbLabelOut);
    });
    fixup();
  }

  // -- choosing a language ----------------------------------------------------------------
  let core = null;
  function coreModule() {
    // the module the page already loaded (same URL, so the same instance): its
    // changeLocale sets Gradio's locale store
    core = core || (async () => {
      let url = null;
      if (CORE) {
        const main = document.querySelector('script[type="module"][src*="assets/index-"]');
        url = new URL(CORE, main ? main.src : new URL("assets/", document.baseURI)).href;
      } else {
        url = performance.getEntriesByType("resource").map((e) => e.name)
          .find((n) => /\/assets\/core-[\w-]+\.js$/.test(n));
      }
      if (!url) return null;
      const mod = await import(url);
      return typeof mod.changeLocale === "function" ? mod : null;
    })().catch((err) => { console.warn("Workbench: Gradio's changeLocale not found", err); return null; });
    return core;
  }
  function until(test, ms) {
    return new Promise((resolve) => {
      const started = Date.now();
      const poll = () => {
        const got = test();
        if (got || Date.now() - started > ms) return resolve(got || null);
        setTimeout(poll, 50);
      };
      poll();
    });
  }
  async function viaSettings(locale) {
    // fallback: Gradio's Settings panel, its Language dropdown
    const names = {"en": "English", "zh-CN": "简体中文"};
    const open = document.querySelector("footer button.settings");
    if (!open) return false;
    open.click();
    const input = await until(() => document.querySelector('[role="dialog"] input[aria-label="Language"]'), 3000);
    let ok = false;
    if (input) {
      input.focus();
      input.click();
      const option = await until(() => Array.from(document.querySelectorAll('[role="option"]'))
        .find((o) => (o.getAttribute("aria-label") || o.textContent.trim()) === names[locale]), 2000);
      if (option) {
        option.dispatchEvent(new MouseEvent("mousedown", {bubbles: true}));
        option.click();
        ok = Boolean(await until(() => document.documentElement.lang === locale, 3000));
      }
    }
    const dialog = document.querySelector('[role="dialog"]');
    const close = dialog && (dialog.querySelector(".banner-wrap button") || dialog.querySelector(".backdrop"));
    if (close) close.click();
    return ok;
  }
  async function apply(l) {
    const locale = LOCALE[l];
    if (document.documentElement.lang !== locale) {
      const mod = await coreModule();
      let ok = false;
      if (mod) {
        mod.changeLocale(locale);  // sets <html lang> once the locale's strings are loaded
        ok = Boolean(await until(() => document.documentElement.lang === locale, 5000));
      }
      if (!ok) ok = await viaSettings(locale);
      if (!ok) document.documentElement.lang = locale;  // our own text follows still
    }
    if (wanted === l) wanted = null;
    fixup();
  }
  let queue = Promise.resolve();
  function setLanguage(l, remember) {
    l = l === "zh" ? "zh" : "en";
    if (remember) {
      try { localStorage.setItem(KEY, l); } catch (err) { /* private mode: this page only */ }
      document.cookie = KEY + "=" + l + "; path=/; max-age=31536000; SameSite=Lax";
    }
    wanted = l;
    fixup();
    queue = queue.then(() => apply(l));  // one change at a time: a locale loads async
    return queue;
  }
  function saved() {
    try { return localStorage.getItem(KEY); } catch (err) { return null; }
  }
  window.workbenchLanguage = {set: (l) => setLanguage(l, true), get: lang, viaSettings};

  function start() {
    walk(document.body);
    fixup();
    let pending = false;
    new MutationObserver((muts) => {
      for (const mu of muts) {
        if (mu.type === "characterData") translateNode(mu.target);
        else if (mu.type === "attributes") translateLabel(mu.target);
        else mu.addedNodes.forEach(walk);
      }
      if (!pending) {
        pending = true;
        setTimeout(() => { pending = false; fixup(); }, 0);
      }
    }).observe(document.body, {childList: true, subtree: true, characterData: true,
                               attributes: true, attributeFilter: ["aria-label"]});
    new MutationObserver(retranslate).observe(document.documentElement,
      {attributes: true, attributeFilter: ["lang"]});
    document.addEventListener("click", (ev) => {
      const b = ev.target.closest && ev.target.closest("[data-wb-lang]");
      if (b) setLanguage(b.dataset.wbLang, true);
    });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
  // the remembered choice, as early as the page allows (this runs before the first render)
  const choice = saved();
  if (choice === "en" || choice === "zh") setLanguage(choice, false);
})();
"""

_STYLE = """
#language-switch {flex: 0 0 auto !important; width: auto !important;
  min-width: max-content !important; align-self: center}
#language-switch .wb-lang {display: inline-flex; border: 1px solid var(--border-color-primary);
  border-radius: var(--radius-lg); overflow: hidden; white-space: nowrap}
#language-switch .wb-lang button {padding: 5px 14px; margin: 0; font-size: var(--text-md);
  cursor: pointer; border: 0; border-radius: 0; background: var(--background-fill-primary);
  color: var(--body-text-color)}
#language-switch .wb-lang button + button {border-left: 1px solid var(--border-color-primary)}
#language-switch .wb-lang button:hover {background: var(--background-fill-secondary)}
#language-switch .wb-lang button[aria-checked="true"] {background: var(--color-accent);
  color: white}
"""


def page_head() -> str:
    """The <script> that translates m() markers and runs the language switch, and the
    switch's style; passed to launch(head=...)."""
    def js(value) -> str:
        return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")
    tbl = {k: {"en": v["en"], "zh": v["zh"]} for k, v in table().items()}
    script = (_SCRIPT.replace("__TABLE__", js(tbl))
              .replace("__GRADIO_TEXT__", js(GRADIO_TEXT))
              .replace("__HEADER_TEXT__", js(HEADER_TEXT))
              .replace("__HEADER_CLASS__", HEADER_CLASS)
              .replace("__CORE__", js(gradio_core_asset()))
              .replace("__KEY__", js(STORAGE_KEY))
              .replace("__LOCALE__", js(GRADIO_LOCALE)))
    return "<script>" + script + "</script><style>" + _STYLE + "</style>"


@lru_cache(maxsize=1)
def _i18n():
    import gradio as gr
    tbl = table()
    return gr.I18n(en={k: v["en"] for k, v in tbl.items()},
                   zh={k: v["zh"] for k, v in tbl.items()})


def i18n():
    """The `gr.I18n` instance passed to `launch(i18n=...)`."""
    return _i18n()
