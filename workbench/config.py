"""The Preset: one typed tree of dataclasses that the YAML, the CLI and the UI all share.

Every field carries its help text, its allowed range or choices, and a label in its
`metadata`, so the UI builds its widgets from here and the CLI validates `--set` overrides
with the same rules. `Preset.from_dict()` validates and names the field on any error:

    >>> Preset.from_dict({"lora": {"rank": 8}})
    PresetError: lora.rank: unknown key (did you mean lora.r?)

Long because the fields, their checks and the YAML parser (`load_yaml`, with the limits
on nesting, numbers and aliases that preset files and `--set` values share) decide
together what a preset may hold; split up, a reader could skip a check.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import PresetError, WorkbenchError, describe, path_text, plain, shown

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"
ALL_LINEAR = "all-linear"   # LoRA on every linear layer but the output head (peft's name)
AUTO = "auto"               # a switch decided on the machine and data (a bool field's third value)

# Limits on user input, checked before parsing or converting (issue 13). A preset is a few
# dozen values three levels deep; the data readers share MAX_NUMBER_DIGITS.
MAX_NUMBER_DIGITS = 1000        # a number written with more characters is refused
YAML_MAX_CHARS = 1_000_000      # a preset file or a --set value
YAML_MAX_DEPTH = 32             # nested mappings and lists
YAML_MAX_NODES = 100_000        # values, each alias (*name) counted in full
PLACEHOLDER_NAME = r"[A-Za-z_][\w.-]*"   # the name inside {{...}} (data.placeholders keys)
MAX_WATCH_PROMPTS = 10          # train.watch_prompts: each costs a generation per eval step


def _f(default, help, *, label=None, choices=None, min=None, max=None, step=None,
       nullable=False, factory=None):
    """A dataclass field with the metadata the validator and the UI read."""
    meta = {"help": help, "label": label, "choices": choices, "min": min, "max": max,
            "step": step, "nullable": nullable}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelCfg:
    name_or_path: str = _f(
        EMBEDDED_MODEL,
        "The base model: 'embedded:smollm2-135m-instruct' (ships with Workbench), a local "
        "Hugging Face model folder, a local .gguf file, or a Hub id (needs internet).",
        label="Base model")
    trust_remote_code: bool = _f(
        False, "Run Python code shipped with the model. Only for models you trust.",
        label="Trust remote code")


DATA_FORMATS = ["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text"]
COLUMN_ROLES = ["instruction", "input", "output", "system", "history", "prompt",
                "completion", "messages", "conversations", "text"]


@dataclass
class DataCfg:
    path: str = _f("data/identity.jsonl",
                   "Dataset file (.json, .jsonl, .csv, .parquet); relative paths are "
                   "looked up in the project folder. Several files: separate with ','.",
                   label="Dataset file")
    format: str = _f("auto", "Dataset format; 'auto' detects it from the columns.",
                     label="Format", choices=DATA_FORMATS)
    columns: dict = _f(None, "Map roles to your column names, e.g. {output: answer}. Roles: "
                       + ", ".join(COLUMN_ROLES) + ".", label="Column mapping", factory=dict)
    placeholders: dict = _f(None, "Values for template placeholders in the data, e.g. "
                            "{name: Ada} turns '{{name}}' into 'Ada'.",
                            label="Placeholders", factory=dict)
    eval_fraction: float = _f(0.1, "Share of rows held out to measure eval loss (0 = none).",
                              label="Eval fraction", min=0.0, max=0.5, step=0.01)
    max_samples: int | None = _f(None, "Use at most this many rows (empty or 0 = all).",
                                 label="Max samples", min=1, max=10_000_000, nullable=True)
    seed: int = _f(42, "Seed for shuffling and the train/eval split.", label="Data seed",
                   min=0, max=2**31 - 1)
    mix: list = _f(None, "General instruction rows mixed into training so the model keeps "
                   "what it knew: a list of {path, fraction}; each adds round(fraction × "
                   "your rows) rows of that file, split and masked like yours, e.g. "
                   "[{path: data/general_mix.jsonl, fraction: 0.5}]. Empty = none.",
                   label="General mix", factory=list)


QUANT_MODES = ["none", "int8", "nf4", "fp4"]
COMPUTE_DTYPES = ["auto", "bfloat16", "float16", "float32"]


@dataclass
class QuantizationCfg:
    mode: str = _f("nf4",
                   "How the frozen base weights are stored. nf4: 4-bit NormalFloat, the "
                   "QLoRA choice; fp4: plain 4-bit float; int8: LLM.int8 with outliers in "
                   "16-bit; none: 16-bit weights.", label="Quantization", choices=QUANT_MODES)
    double_quant: bool = _f(True, "Also quantise the 4-bit scaling constants (saves about "
                            "0.37 bits per parameter).", label="Double quantization")
    compute_dtype: str = _f("auto", "Precision of the matrix multiplications while "
                            "training. auto: bfloat16 (the QLoRA choice) where the chip "
                            "computes it natively (CUDA with bf16, AVX512-BF16/AMX CPUs), "
                            "float16 on older GPUs, float32 on other CPUs, where bfloat16 "
                            "is emulated and several times slower.",
                            label="Compute dtype", choices=COMPUTE_DTYPES)
    int8_threshold: float = _f(6.0, "LLM.int8 outlier threshold: input features larger than "
                               "this stay in 16-bit (the paper uses 6.0).",
                               label="Int8 outlier threshold", min=0.0, max=100.0, step=0.5)


LORA_BIAS = ["none", "all", "lora_only"]


@dataclass
class LoraCfg:
    r: int = _f(8, "Rank: the size of the small update the adapter learns. Larger can learn "
                "more but uses more memory. Typical: 8–16; 64 in the QLoRA paper.",
                label="Rank (r)", min=1, max=1024, step=1)
    alpha: float = _f(16, "How strongly the adapter's update counts: it is scaled by "
                      "alpha / r. Typical: twice the rank (16 for r 8); the QLoRA paper "
                      "used 16.", label="Alpha", min=0.0, max=4096.0, step=1)
    dropout: float = _f(0.05, "Share of the adapter's input randomly switched off while "
                        "training, so it memorises less. Typical: 0.05–0.1.",
                        label="Dropout", min=0.0, max=0.9, step=0.01)
    target_modules: Any = _f(ALL_LINEAR, "Which layers get an adapter: 'all-linear' (every "
                             "layer but the output, the QLoRA choice) or a list of names "
                             "such as [q_proj, v_proj] (fewer parameters). Typical: "
                             "all-linear.", label="Target modules")
    bias: str = _f("none", "Whether the model's bias values are trained too. Typical: none.",
                   label="Bias", choices=LORA_BIAS)
    use_rslora: bool = _f(False, "Rank-stabilised LoRA: scale by alpha / √r, which helps "
                          "large ranks (64 and up) learn. Typical: off.", label="rsLoRA")
    use_dora: bool = _f(False, "DoRA: also learn how large each output is; sometimes better "
                        "at small ranks, but slower. Typical: off.", label="DoRA")


SCHEDULERS = ["linear", "cosine", "constant", "constant_with_warmup"]
OPTIMIZERS = ["adamw_torch", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit",
              "adafactor", "sgd"]


@dataclass
class TrainCfg:
    max_length: int = _f(512, "Longest row in tokens (a token is about ¾ of a word); longer "
                         "rows are cut off. Typical: 512–2048; shorter uses less memory.",
                         label="Max length", min=16, max=131072, step=16)
    epochs: float = _f(3, "How many times training reads the whole dataset. Typical: 1–3; "
                       "a few dozen rows may need more.", label="Epochs", min=0.01,
                       max=1000, step=0.5)
    max_steps: int = _f(-1, "Stop after this many steps instead of counting epochs (-1 = "
                        "use epochs). Typical: -1; e.g. 20 for a quick try.",
                        label="Max steps", min=-1, max=10_000_000, step=1)
    batch_size: int = _f(4, "Rows learned from at once on each device; larger is faster but "
                         "needs more memory. Typical: 1–8.", label="Batch size", min=1,
                         max=4096, step=1)
    grad_accum: int = _f(1, "Add up this many batches before each update: each step learns "
                         "from batch size × this many rows, without more memory. Typical: "
                         "1–8.", label="Gradient accumulation", min=1, max=4096, step=1)
    learning_rate: float = _f(2e-4, "How big each learning step is: too high and the loss "
                              "jumps, too low and little is learned. Typical: 1e-4–2e-4 "
                              "(2e-4 in the QLoRA paper); tiny models take up to 1e-3.",
                              label="Learning rate", min=0.0, max=1.0, step=1e-5)
    lr_scheduler: str = _f("cosine", "How the learning rate changes over the run: cosine "
                           "and linear ease it down to zero, constant keeps it. Typical: "
                           "cosine.", label="LR schedule", choices=SCHEDULERS)
    warmup_ratio: float = _f(0.03, "Share of the steps spent raising the learning rate from "
                             "zero, for a gentle start ('constant' skips it). Typical: "
                             "0.03–0.1.", label="Warmup ratio", min=0.0, max=0.5, step=0.01)
    optimizer: str = _f("adamw_torch", "How the gradients become weight updates. Typical: "
                        "adamw_torch; the 8bit and paged ones save memory but need a CUDA "
                        "GPU (on a CPU they fall back to adamw_torch, with a note).",
                        label="Optimizer", choices=OPTIMIZERS)
    max_grad_norm: float = _f(1.0, "Caps the size of one update so an odd batch cannot throw "
                              "training off (0 = no cap). Typical: 1.0; 0.3 in the QLoRA "
                              "paper.", label="Max grad norm", min=0.0, max=100.0, step=0.1)
    gradient_checkpointing: bool | str = _f(
        "auto", "Recompute intermediate results instead of keeping them (CPU, 384-token "
        "rows: half the memory, 1.3-1.5x the time). auto: on where that saves 1 GiB and "
        "1/16 of the memory (long rows). Typical: auto.",
        label="Gradient checkpointing", choices=[AUTO, True, False])
    packing: bool = _f(False, "Join several short rows into one sequence, so less is wasted "
                       "on padding. Typical: off; on for thousands of short rows.",
                       label="Packing")
    completion_only_loss: bool = _f(True, "Learn only from the answers, not from the "
                                    "questions, so the model learns to reply. Typical: on.",
                                    label="Loss on answers only")
    logging_steps: int = _f(5, "Record the loss every N steps (the points of the loss "
                            "chart). Typical: 1–10.", label="Logging steps", min=1,
                            max=100000, step=1)
    eval_steps: int = _f(20, "Score the held-out rows (eval loss) every N steps, to spot "
                         "memorising; each check takes time. Typical: 10–100.",
                         label="Eval steps", min=1, max=100000, step=1)
    watch_prompts: list = _f(
        None, "Questions the model answers at each eval step while it trains (short greedy "
        "answers, saved in samples.jsonl), to see when its answers change. Typical: empty "
        "(3 held-out questions of the data).", label="Watch prompts", factory=list)
    save_steps: int = _f(50, "Save a checkpoint every N steps, so a stopped run can resume "
                         "(the last 3 are kept). Typical: 50–500.", label="Save steps",
                         min=1, max=100000, step=1)
    seed: int = _f(42, "Starting point for the random choices: the same seed and settings "
                   "repeat a run. Typical: any number, e.g. 42.", label="Seed", min=0,
                   max=2**31 - 1)


@dataclass
class GenerationCfg:
    max_new_tokens: int = _f(64, "Longest answer in tokens (64 is a few sentences; longer "
                             "answers take longer to compare).", label="Max new tokens",
                             min=1, max=8192, step=1)
    temperature: float = _f(0.0, "Randomness; 0 = always the most likely token (greedy).",
                            label="Temperature", min=0.0, max=2.0, step=0.05)
    top_p: float = _f(0.9, "Sample only from the most likely tokens covering this "
                      "probability.", label="Top-p", min=0.01, max=1.0, step=0.01)
    repetition_penalty: float = _f(1.1, "Values above 1 discourage repeating text (1.1 is "
                                   "mild: small models otherwise loop).",
                                   label="Repetition penalty", min=0.5, max=2.0, step=0.05)
    system_prompt: str = _f("", "System prompt for chat (empty = the model's default).",
                            label="System prompt")


LAUNCHERS = ["torchrun", "accelerate"]


@dataclass
class DistributedCfg:
    processes: int = _f(1, "Training processes to start, one per GPU (DDP): 1 = one "
                        "process, as usual. On a CPU they share its cores (gloo).",
                        label="Processes", min=1, max=1024, step=1)
    launcher: str = _f("torchrun", "What starts them: torchrun (DDP), or accelerate with "
                       "a config file (DDP, FSDP, DeepSpeed).", label="Launcher",
                       choices=LAUNCHERS)
    accelerate_config: str | None = _f(
        None, "The accelerate config file for launcher accelerate, e.g. "
        "presets/accelerate/multi-gpu.yaml (empty = none).", label="Accelerate config",
        nullable=True)


SECTIONS = {"model": ModelCfg, "data": DataCfg, "quantization": QuantizationCfg,
            "lora": LoraCfg, "train": TrainCfg, "generation": GenerationCfg,
            "distributed": DistributedCfg}


@dataclass
class Preset:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    quantization: QuantizationCfg = field(default_factory=QuantizationCfg)
    lora: LoraCfg = field(default_factory=LoraCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    generation: GenerationCfg = field(default_factory=GenerationCfg)
    distributed: DistributedCfg = field(default_factory=DistributedCfg)

    # -- conversion -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict | None, where: str = "preset") -> "Preset":
        """Validate a plain dict (from YAML) into a Preset; errors name `where` and field.
        Whatever `raw` holds, the result is a Preset or a PresetError."""
        where = path_text(where, 120)
        try:
            return cls._from_dict(raw, where)
        except WorkbenchError:
            raise
        except RecursionError:
            raise PresetError(f"{where}: nested too deeply") from None
        except Exception as exc:  # a value no check foresaw: still the user's to fix
            raise PresetError(f"{where}: cannot use this preset ({describe(exc)})") from None

    @classmethod
    def _from_dict(cls, raw, where: str) -> "Preset":
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise PresetError(f"{where}: expected a mapping of sections "
                              f"({', '.join(SECTIONS)}), got {type(raw).__name__}")
        sections = {}
        for key, value in raw.items():
            if key not in SECTIONS:
                raise PresetError(f"{where}: {plain(key)}: unknown section"
                                  f"{_did_you_mean(key, SECTIONS)}")
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise PresetError(f"{where}: {key}: expected a mapping of keys, "
                                  f"got {shown(value)}")
            sections[key] = _build_section(SECTIONS[key], key, value, where)
        preset = cls(**sections)
        preset.check()
        return preset

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def copy(self) -> "Preset":
        return Preset.from_dict(self.to_dict())

    def with_overrides(self, overrides: list[str] | dict, where: str = "--set") -> "Preset":
        """Apply `section.key=value` strings (values parsed as YAML) or a {dotted: value} dict."""
        data = self.to_dict()
        items = overrides.items() if isinstance(overrides, dict) else [
            _split_override(o, where) for o in overrides]
        for dotted, value in items:
            if not isinstance(dotted, str):
                raise PresetError(f"{where}: {shown(dotted)}: expected section.key")
            if isinstance(value, str) and not isinstance(overrides, dict):
                try:
                    value = load_yaml(value, f"{where}: {plain(dotted)}") if value != "" else ""
                except _InvalidYaml:
                    pass  # keep as string; the type check below names the field
            section, _, key = dotted.partition(".")
            if section not in SECTIONS:
                raise PresetError(f"{where}: {plain(dotted)}: unknown section"
                                  f"{_did_you_mean(section, SECTIONS)}")
            names = [f.name for f in dataclasses.fields(SECTIONS[section])]
            if key not in names:
                raise PresetError(f"{where}: {plain(dotted)}: unknown key"
                                  f"{_did_you_mean(key, names, section + '.')}")
            data[section][key] = value
        return Preset.from_dict(data, where)

    def check(self) -> None:
        """Cross-field rules that a single field's range cannot express."""
        t = self.train
        if t.max_steps == 0:
            raise PresetError("train.max_steps: 0 would train nothing; use -1 to train by "
                              "epochs or a positive number of steps")


# -- validation helpers -----------------------------------------------------------------

def _did_you_mean(key: str, valid, prefix: str = "") -> str:
    key = key[:100] if isinstance(key, str) else plain(key)
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    if not close:
        # a prefix match catches short names such as rank -> r
        close = [v for v in valid if key and (key.startswith(v) or v.startswith(key))][:1]
    if close:
        return f" (did you mean {prefix}{close[0]}?)"
    return f" (valid: {', '.join(prefix + v for v in valid)})"


def _split_override(text: str, where: str) -> tuple[str, str]:
    if not isinstance(text, str) or "=" not in text or "." not in text.split("=", 1)[0]:
        raise PresetError(f"{where}: {shown(text)}: expected section.key=value, "
                          "e.g. train.max_steps=10")
    key, _, value = text.partition("=")
    return key.strip(), value.strip()


def field_path_meta(section: str, key: str) -> dict:
    """Metadata of one field (help, label, choices, min, max, step) for UIs and docs."""
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == key:
            meta = dict(f.metadata)
            meta["type"] = _field_type(f)
            meta["default"] = (f.default_factory() if f.default is dataclasses.MISSING
                               else f.default)
            return meta
    raise KeyError(f"{section}.{key}")


# a bool field that may also be auto (train.gradient_checkpointing): the page's dropdown
SWITCH = {AUTO: AUTO, "on": True, "off": False}


def allows_auto(meta: dict) -> bool:
    return AUTO in (meta.get("choices") or ())


def is_switch(meta: dict) -> bool:
    return meta["type"] == "bool" and allows_auto(meta)


def to_switch(value) -> str:
    """The dropdown's label for a switch field's value: True -> on, False -> off."""
    return "on" if value is True else "off" if value is False else str(value)


def iter_fields():
    """Yield (section, key, metadata) for every field of the Preset, in order."""
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            yield section, f.name, field_path_meta(section, f.name)


def _field_type(f) -> str:
    t = str(f.type)
    for name in ("bool", "int", "float", "dict", "list", "str"):
        if t.startswith(name):
            return name
    return "any"


def _build_section(cls, section: str, values: dict, where: str):
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise PresetError(f"{where}: {section}.{plain(key)}: unknown key"
                              f"{_did_you_mean(key, names, section + '.')}")
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _check_value(section, f, values[f.name], where)
    return cls(**kwargs)


# fields that hold a path: a file name whose bytes are not UTF-8 arrives with surrogates
_PATH_FIELDS = {("data", "path"), ("model", "name_or_path")}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_value(section: str, f, value, where: str):
    meta = f.metadata
    kind = _field_type(f)
    name = f"{where}: {section}.{f.name}"
    if value is None or (value == "" and kind == "str" and meta.get("nullable")):
        if meta.get("nullable"):
            return None  # an emptied text box of a nullable field, too
        if kind in ("dict", "list"):
            return {} if kind == "dict" else []
        raise PresetError(f"{name}: a value is required (got null)")
    if kind == "bool":
        switch = allows_auto(meta)
        if switch and isinstance(value, str) and value in SWITCH:
            return SWITCH[value]  # auto: decided on the data (train/checkpointing.py)
        if not isinstance(value, bool):
            also = ", or auto" if switch else ""
            raise PresetError(f"{name}: expected true or false{also}, got {shown(value)}")
        return value
    if kind in ("int", "float"):
        return _check_number(name, kind, meta, value)
    if kind == "dict":
        if not isinstance(value, dict):
            raise PresetError(f"{name}: expected a mapping like {{key: value}}, "
                              f"got {shown(value)}")
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise PresetError(f"{name}: keys must be text, got {shown(bad[0])}")
        if f.name == "columns":
            for role, col in value.items():
                if role not in COLUMN_ROLES:
                    raise PresetError(f"{name}.{plain(role)}: unknown role"
                                      f"{_did_you_mean(role, COLUMN_ROLES)}")
                if not isinstance(col, str) or not col:
                    raise PresetError(f"{name}.{role}: expected a column name, "
                                      f"got {shown(col)}")
                _check_text(f"{name}.{role}", col)
        else:
            for k in value:
                if not re.fullmatch(PLACEHOLDER_NAME, k):
                    raise PresetError(f"{name}: {shown(k)} is not a placeholder name (the "
                                      "name inside {{...}}: letters, digits, '_', '.', '-')")
            value = {k: _scalar_text(f"{name}.{plain(k)}", v) for k, v in value.items()}
        return dict(value)
    if f.name == "watch_prompts":
        if isinstance(value, str):
            value = [value]
        if (not isinstance(value, list) or len(value) > MAX_WATCH_PROMPTS
                or not all(isinstance(v, str) and v.strip() for v in value)):
            raise PresetError(f"{name}: expected a list of at most {MAX_WATCH_PROMPTS} "
                              f"non-empty questions, got {shown(value)}")
        return [_check_text(name, v.strip()) for v in value]
    if kind == "list":
        return _check_mix(name, value)
    if f.name == "target_modules":
        if isinstance(value, str) and value.strip():
            return _check_text(name, value.strip())
        if (isinstance(value, list) and value
                and all(isinstance(v, str) and v.strip() for v in value)):
            return [_check_text(name, v.strip()) for v in value]
        raise PresetError(f"{name}: expected 'all-linear' or a non-empty list of module "
                          f"names, got {shown(value)}")
    # plain strings
    if not isinstance(value, str):
        raise PresetError(f"{name}: expected text, got {shown(value)}")
    _check_text(name, value, "; rename the file to a UTF-8 name" if (
        section, f.name) in _PATH_FIELDS else "")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise PresetError(f"{name}: {shown(value)} is not one of {', '.join(choices)}"
                          f"{_did_you_mean(value, choices) if _close(value, choices) else ''}")
    return value


MIX_KEYS = ("path", "fraction")
MIX_MAX_FRACTION = 10.0


def _check_mix(name: str, value) -> list[dict]:
    """data.mix: a list of {path: text, fraction: number above 0, at most 10}."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise PresetError(f"{name}: expected a list like [{{path: data/general_mix.jsonl, "
                          f"fraction: 0.5}}], got {shown(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise PresetError(f"{at}: expected {{path: FILE, fraction: NUMBER}}, got "
                              f"{shown(item)}")
        for key in item:
            if key not in MIX_KEYS:
                raise PresetError(f"{at}.{plain(key)}: unknown key"
                                  f"{_did_you_mean(key, MIX_KEYS)}")
        path = item.get("path")
        if not isinstance(path, str) or not path.strip():
            raise PresetError(f"{at}.path: expected a dataset file name, got {shown(path)}")
        if "fraction" not in item:
            raise PresetError(f"{at}.fraction: missing; e.g. 0.5 adds half as many "
                              "general rows as your data has")
        fraction = _check_number(f"{at}.fraction", "float",
                                 {"min": 0.0, "max": MIX_MAX_FRACTION}, item["fraction"])
        if fraction <= 0:
            raise PresetError(f"{at}.fraction: must be above 0 (remove the entry to mix "
                              "nothing)")
        out.append({"path": _check_text(f"{at}.path", path.strip(), "; rename the file to "
                                        "a UTF-8 name"), "fraction": fraction})
    return out


def _check_number(name: str, kind: str, meta, value):
    """A number field's value: numbers written as text are read (YAML 1.1 reads 1e-4,
    without a dot, as text); nan, inf, 1e400 and out-of-range values are refused."""
    original = value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = float(text) if len(text) <= MAX_NUMBER_DIGITS else value
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PresetError(f"{name}: expected a number, got {shown(original)}")
    if isinstance(value, float) and math.isnan(value):
        raise PresetError(f"{name}: expected a number, got {shown(original)}")
    lo, hi = meta.get("min"), meta.get("max")
    # before any conversion: int(inf) and float(10**400) would raise
    if (lo is not None and value < lo) or (hi is not None and value > hi) or (
            isinstance(value, float) and math.isinf(value)):
        raise PresetError(f"{name}: {shown(original)} is out of range; allowed {lo} to {hi}")
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise PresetError(f"{name}: expected a whole number, got {shown(original)}")
        return int(value)
    return float(value)


def _check_text(name: str, value: str, hint: str = "") -> str:
    """Text that the tokenizer, YAML and the terminal can take: no lone surrogates."""
    bad = None if value.isascii() else _SURROGATE.search(value)
    if bad:
        raise PresetError(f"{name}: contains a lone surrogate \\u{ord(bad.group()):04x} at "
                          f"character {bad.start()}, which is not valid Unicode{hint}")
    return value


def _scalar_text(name: str, value) -> str:
    """A placeholder's value as text: text, a number or true/false."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and (
            value.bit_length() > MAX_NUMBER_DIGITS * 3.33):
        raise PresetError(f"{name}: a number of more than {MAX_NUMBER_DIGITS} digits")
    if not isinstance(value, (str, int, float)):
        raise PresetError(f"{name}: expected text or a number, got {shown(value)}")
    return _check_text(name, str(value))


def _close(value, choices) -> bool:
    return bool(difflib.get_close_matches(value[:100], choices, n=1, cutoff=0.5))


# -- YAML: the one parser for preset files and --set values --------------------------------

class _InvalidYaml(PresetError):
    """Text that is not valid YAML, as opposed to YAML over a limit."""


def load_yaml(text: str, where: str):
    """Parse preset YAML (yaml.safe_load) within the limits above. Every failure is a
    PresetError naming `where` and the line: syntax errors, values a tag cannot take
    (`!!int abc`, a date like 2001-13-45), nesting deeper than YAML_MAX_DEPTH, numbers
    longer than MAX_NUMBER_DIGITS, aliases that expand past YAML_MAX_NODES values."""
    import yaml
    if len(text) > YAML_MAX_CHARS:
        raise PresetError(f"{where}: {len(text):,} characters of YAML; a preset is at most "
                          f"{YAML_MAX_CHARS:,}")
    try:
        _check_yaml_limits(text, where)
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a safe loader)
    except WorkbenchError:
        raise
    except yaml.YAMLError as exc:
        raise _InvalidYaml(f"{where}:{_yaml_place(exc, text)} invalid YAML: "
                           f"{_yaml_problem(exc)}") from None
    except RecursionError:
        raise PresetError(f"{where}: nested too deeply (at most {YAML_MAX_DEPTH} "
                          "levels)") from None
    except Exception as exc:
        raise _InvalidYaml(f"{where}: invalid YAML ({describe(exc)})") from None


def _yaml_place(exc, text: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f" line {mark.line + 1}, column {mark.column + 1}:"
    pos = getattr(exc, "position", None)  # ReaderError: a character YAML does not allow
    if isinstance(pos, int):
        line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        return f" line {line}, column {column}:"
    return ""


def _yaml_problem(exc) -> str:
    problem = getattr(exc, "problem", None)
    return describe(problem if problem else exc)


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _check_yaml_limits(text: str, where: str) -> None:
    """Walk the parser's events (no objects built, no recursion) and refuse nesting, long
    numbers and alias expansion past the limits before the constructor runs."""
    import yaml
    from yaml import events
    resolver = yaml.resolver.Resolver()
    depth, nodes, opened, anchors = 0, 0, [], {}
    for ev in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        at = f"{where}: line {ev.start_mark.line + 1}" if ev.start_mark else where
        if isinstance(ev, events.CollectionStartEvent):
            depth += 1
            if depth > YAML_MAX_DEPTH:
                raise PresetError(f"{at}: nested more than {YAML_MAX_DEPTH} levels deep; a "
                                  "preset needs three (section, key, value)")
            opened.append((ev.anchor, nodes))
            nodes += 1
        elif isinstance(ev, events.CollectionEndEvent):
            depth -= 1
            anchor, start = opened.pop()
            if anchor is not None:
                anchors[anchor] = nodes - start
        elif isinstance(ev, events.ScalarEvent):
            nodes += 1
            if ev.anchor is not None:
                anchors[ev.anchor] = 1
            if len(ev.value) > MAX_NUMBER_DIGITS and (ev.tag in _NUMBER_TAGS or (
                    ev.tag is None and ev.implicit[0] and resolver.resolve(
                        yaml.ScalarNode, ev.value, (True, False)) in _NUMBER_TAGS)):
                raise PresetError(f"{at}: a number of {len(ev.value):,} characters; numbers "
                                  f"are limited to {MAX_NUMBER_DIGITS} digits")
        elif isinstance(ev, events.AliasEvent):
            if any(anchor == ev.anchor for anchor, _ in opened):
                raise PresetError(f"{at}: the alias *{plain(ev.anchor, 40)} is inside the "
                                  "value it names (a loop); write the value out instead")
            nodes += anchors.get(ev.anchor, 1)
        if nodes > YAML_MAX_NODES:
            raise PresetError(f"{at}: more than {YAML_MAX_NODES:,} values (each alias *name "
                              "counted in full); write the values out instead of aliasing")


@functools.cache
def _yaml_loader():
    """yaml's safe loader (libyaml's when installed: ten times faster) whose constructor
    errors that are not YAMLError (ValueError from `!!int abc` or 2001-13-45, IndexError
    from `!!float ''`, KeyError from `!!bool maybe`, AttributeError from `!!timestamp bad`)
    become YAMLErrors with the node's line."""
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        def construct_object(self, node, deep=False):
            try:
                return super().construct_object(node, deep)
            except (yaml.YAMLError, RecursionError):
                raise
            except Exception as exc:
                tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
                value = node.value if isinstance(node.value, str) else ""
                why = describe(exc, 60) if type(exc) is ValueError else ""
                # "month must be in 1..12" helps; "invalid literal for int()" repeats
                why = "" if why.startswith(("invalid literal", "could not")) else f" ({why})"
                raise yaml.constructor.ConstructorError(
                    None, None, f"{shown(value, 40)} is not a valid {tag}{why}",
                    node.start_mark) from None

    return Loader
