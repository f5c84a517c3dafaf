"""Workbench side by side with LLaMA-Factory 0.9.5 on the same QLoRA job (issue 9).

    .venv/bin/python bench/vs_llamafactory.py [--repeats 3] [--defaults-repeats 3]
        [--steps 8] [--defaults-steps 8] [--only equal|defaults [--workbench-only]]
        [--quick] [--snapshot]

The job: SmolLM2-135M-Instruct (the embedded model, copied as a plain HF folder), NF4 +
double quant, LoRA r 8 / alpha 16 on all linear layers, 160 alpaca rows (generated here,
276-354 tokens each after the chat template, so nothing is truncated at 384), max length
384, batch 4, grad accum 1, 8 steps, no evaluation, only the final adapter saved.

Two comparisons:
  equal     float32 compute and no gradient checkpointing in both; LoRA dropout 0.05,
            lr 2e-4 cosine, warm-up 3%, adamw_torch, max grad norm 1.0, seed 42 in both.
  defaults  each tool as its docs tell a user: LLaMA-Factory's QLoRA example
            (examples/train_qlora/llama3_lora_sft_otfq.yaml: bf16, gradient checkpointing
            on by default, 16 preprocessing workers) adapted only in model, template, data,
            steps, batch and length; Workbench's cpu-demo preset (compute_dtype auto),
            set to the same model, data, steps, batch, length and LoRA rank, alpha and
            targets. LoRA dropout is each tool's own: 0.0 in both.

On a CPU without native bfloat16 (AVX2) LF's defaults take about 450 s a step (bf16 is
emulated), so cap that comparison there: --defaults-steps 1 --defaults-repeats 1. The equal
comparison is defined for a CPU: on a GPU, LF without bf16/fp16 flags picks bf16 itself.

LLaMA-Factory lives in its own venv (bench/.lf-venv, created on first use: torch==2.13.0
first and pinned, then llamafactory==0.9.5 and our bitsandbytes version; pip resolves LF's
own transformers/peft/trl pins there). Each measured run is a fresh process, LF and
Workbench alternating, after one unmeasured warm-up run of each (page cache, Workbench's
quantised-weight cache, LF's dataset cache). Wall time is the whole process; peak RSS is
the largest process's maximum resident set (what /usr/bin/time -v reports, from wait4);
the summed RSS of the process tree, polled every 0.2 s, is recorded too. Results:
bench/results/vs_llamafactory.json. Nothing is downloaded from the Hugging Face hub.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LF_VENV = BENCH / ".lf-venv"
WORK = BENCH / ".lf-work"
RESULTS = BENCH / "results" / "vs_llamafactory.json"
LF_VERSION = "0.9.5"
TORCH = "2.13.0"
# LF requires torchvision and torchaudio. PyPI's Linux builds of both are linked against CUDA
# torch: on torch 2.13.0+cpu torchvision's operators fail to register ("operator
# torchvision::nms does not exist", and transformers then fails wherever it imports it), and
# torchaudio's extension libraries need libc10_cuda.so. LF's text SFT uses neither, but
# llamafactory.data.mm_plugin does `import torchaudio` unconditionally. So torchvision is
# removed again, and torchaudio is kept without its CUDA-linked .so files (its Python part
# then imports, with the extension reported unavailable).

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}


def log(msg: str) -> None:
    print(msg, flush=True)


# -- LLaMA-Factory's venv ------------------------------------------------------------------

def _lf_python() -> Path:
    return LF_VENV / "bin" / "python"


def lf_versions() -> dict | None:
    if not _lf_python().exists():
        return None
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "('llamafactory', 'torch', 'transformers', 'peft', 'trl', 'accelerate', "
            "'bitsandbytes', 'datasets', 'torchaudio')}))")
    proc = subprocess.run([str(_lf_python()), "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([str(_lf_python()), "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in ln]
        raise SystemExit(f"error: {what} failed (pip {' '.join(args)}):\n" + "\n".join(lines[-40:]))


def strip_torchaudio_cuda_libs() -> None:
    libs = list(LF_VENV.glob("lib/python3*/site-packages/torchaudio/lib/*.so"))
    for lib in libs:
        lib.unlink()
    if libs:
        log(f"removed torchaudio's CUDA-linked libraries: {', '.join(p.name for p in libs)}")


def ensure_lf_venv() -> dict:
    """bench/.lf-venv with llamafactory==0.9.5 on torch==2.13.0; returns the versions."""
    v = lf_versions()
    if v and v["llamafactory"] == LF_VERSION and v["torch"].split("+")[0] == TORCH:
        strip_torchaudio_cuda_libs()
        return v
    import importlib.metadata
    bnb = importlib.metadata.version("bitsandbytes")  # the same kernels as Workbench
    log(f"installing LLaMA-Factory {LF_VERSION} into {LF_VENV.relative_to(ROOT)} "
        f"(torch=={TORCH}, bitsandbytes=={bnb}; a few minutes)")
    if not _lf_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(LF_VENV)], check=True)
    constraints = LF_VENV / "constraints.txt"
    constraints.write_text(f"torch=={TORCH}\n")
    _pip(["install", "-q", f"torch=={TORCH}"], f"installing torch=={TORCH}")
    _pip(["install", "-q", "-c", str(constraints), f"llamafactory=={LF_VERSION}",
          f"bitsandbytes=={bnb}"], f"installing llamafactory=={LF_VERSION}")
    _pip(["uninstall", "-y", "torchvision"], "removing torchvision")
    strip_torchaudio_cuda_libs()
    v = lf_versions()
    if not v or v["llamafactory"] != LF_VERSION:
        raise SystemExit(f"error: llamafactory {LF_VERSION} is not importable in {LF_VENV}")
    return v


# -- the job's inputs ----------------------------------------------------------------------

def model_copy() -> Path:
    """A plain HF copy of the embedded model (safetensors + tokenizer) for LF."""
    code = "from workbench import models; print(models.resolve(models.EMBEDDED))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, **OFFLINE))
    if proc.returncode != 0:
        raise SystemExit(f"error: cannot resolve the embedded model:\n{proc.stderr[-2000:]}")
    src = Path(proc.stdout.strip().splitlines()[-1])
    dst = WORK / "smollm2-135m-instruct"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name == "workbench_import.json" or not f.is_file():
            continue
        out = dst / f.name
        if not out.exists() or out.stat().st_size != f.stat().st_size:
            shutil.copy2(f, out)
    return dst


TOPICS = ["bicycle repair", "home composting", "learning a new language", "saving money on groceries",
          "planning a garden", "writing a cover letter", "caring for a houseplant", "running a first 5k",
          "organising a small library", "baking bread", "camping in the rain", "teaching a child to swim",
          "choosing a used car", "keeping bees", "fixing a leaking tap", "starting a podcast",
          "reading more books", "cooking for a crowd", "moving to a new city", "sleeping better"]
AUDIENCES = ["a beginner", "a busy parent", "a student", "a retired teacher", "a new manager",
             "a curious child", "a small business owner", "a nurse on night shifts"]
VERBS = ["Write a short guide about", "Explain step by step", "Give practical advice on",
         "Describe the common mistakes in", "Summarise what matters most in"]
WORDS = ("the a small simple good careful quick easy first next last every other same new old "
         "time day week plan list step tool part place work water light paper money friend "
         "people hand room house garden table kitchen road city book note idea question answer "
         "make take keep start finish check clean cut fold carry open close change choose try "
         "help learn teach build write read cook wash store buy sell move walk run wait rest "
         "before after during while because when then often always never sometimes usually "
         "slowly gently firmly clearly early late together alone near far inside outside").split()


def alpaca_rows(n: int = 160, seed: int = 20261130) -> list[dict]:
    """n distinct alpaca rows of similar length (276-354 tokens with SmolLM2's template), so
    the padded batch length hardly depends on the order either tool shuffles them in."""
    rng = random.Random(seed)

    def sentence() -> str:
        w = [rng.choice(WORDS) for _ in range(rng.randint(10, 14))]
        return w[0].capitalize() + " " + " ".join(w[1:]) + "."

    rows = []
    for i in range(n):
        topic, aud, verb = TOPICS[i % len(TOPICS)], rng.choice(AUDIENCES), rng.choice(VERBS)
        inp = " ".join(sentence() for _ in range(rng.randint(1, 3))) if i % 2 else ""
        out = " ".join(sentence() for _ in range(18 + rng.randint(0, 1)))
        rows.append({"instruction": f"{verb} {topic} for {aud}. (request {i + 1})",
                     "input": inp, "output": out})
    return rows


def write_data() -> Path:
    data = WORK / "alpaca160.json"
    data.write_text(json.dumps(alpaca_rows(), indent=1, ensure_ascii=False) + "\n")
    (WORK / "dataset_info.json").write_text(json.dumps(
        {"bench_alpaca": {"file_name": data.name}}, indent=2) + "\n")  # alpaca columns
    return data


# -- the two tools' configurations ------------------------------------------------------------

def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def lf_yaml(kind: str, model: Path, steps: int) -> dict:
    common = {"model_name_or_path": str(model), "template": "smollm2",
              "dataset": "bench_alpaca", "dataset_dir": str(WORK), "cutoff_len": 384,
              "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
              "max_steps": steps, "output_dir": str(WORK / f"lf-out-{kind}"),
              # transformers refuses bf16 without a GPU unless use_cpu is set (Workbench's
              # trainer sets it on a CPU too)
              "use_cpu": not _cuda()}
    if kind == "equal":
        return {**common,
                "quantization_bit": 4, "quantization_method": "bnb", "quantization_type": "nf4",
                "double_quantization": True,
                "stage": "sft", "do_train": True, "finetuning_type": "lora",
                "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target": "all",
                # no bf16/fp16 flag: LF's infer_optim_dtype() then picks float32 on a CPU
                # (bf16/fp16 only where CUDA/NPU has them) for the 4-bit compute dtype
                "disable_gradient_checkpointing": True,
                "overwrite_cache": True,
                "logging_steps": 5, "save_steps": 500, "plot_loss": False,
                "overwrite_output_dir": True, "report_to": "none",
                "learning_rate": 2.0e-4, "lr_scheduler_type": "cosine", "warmup_ratio": 0.03,
                "optim": "adamw_torch", "max_grad_norm": 1.0, "seed": 42,
                "dataloader_num_workers": 0}
    # examples/train_qlora/llama3_lora_sft_otfq.yaml of LF 0.9.5, only model, template, data,
    # steps, batch, length and output_dir changed (its eval section is commented out there)
    return {**common,
            "quantization_bit": 4, "quantization_method": "bnb", "trust_remote_code": True,
            "stage": "sft", "do_train": True, "finetuning_type": "lora", "lora_rank": 8,
            "lora_target": "all",
            "max_samples": 1000, "overwrite_cache": True, "preprocessing_num_workers": 16,
            "logging_steps": 10, "save_steps": 500, "plot_loss": True,
            "overwrite_output_dir": True,
            "learning_rate": 1.0e-4, "num_train_epochs": 3.0, "lr_scheduler_type": "cosine",
            "warmup_ratio": 0.1, "bf16": True, "ddp_timeout": 180000000}


def wb_sets(kind: str, data: Path, steps: int) -> list[str]:
    sets = [f"data.path={data}", "data.eval_fraction=0", "data.mix=[]",  # LF has no mix
            f"train.max_steps={steps}",
            "train.max_length=384", "train.batch_size=4", "train.grad_accum=1",
            "lora.r=8", "lora.alpha=16", "lora.target_modules=all-linear",
            "quantization.mode=nf4", "quantization.double_quant=true"]
    if kind == "equal":  # the optimiser settings of LF's equal config, whatever cpu-demo has
        # (defaults: each tool's own LoRA dropout, 0.0 in both LF 0.9.5 and cpu-demo; until
        # 2026-12-01 ours was set to 0.05 there too, which LF's example leaves at 0.0)
        sets += ["lora.dropout=0.05",
                 "quantization.compute_dtype=float32", "train.gradient_checkpointing=false",
                 "train.learning_rate=2e-4", "train.lr_scheduler=cosine",
                 "train.warmup_ratio=0.03", "train.optimizer=adamw_torch",
                 "train.max_grad_norm=1.0", "train.seed=42"]
    return sets  # defaults: everything else as cpu-demo has it (compute_dtype auto, ...)


def write_yaml(path: Path, cfg: dict) -> None:
    lines = []
    for k, v in cfg.items():
        lines.append(f"{k}: {json.dumps(v) if isinstance(v, (bool, str)) else v}")
    path.write_text("\n".join(lines) + "\n")


# -- one measured process --------------------------------------------------------------------

def run_measured(cmd: list[str], cwd: Path, env: dict, logfile: Path) -> dict:
    """Wall time, the largest process's max RSS (wait4) and the tree's summed RSS (polled)."""
    load = os.getloadavg()
    peak_tree = 0
    done = threading.Event()
    with open(logfile, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

        def poll():
            nonlocal peak_tree
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.is_set():
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    pass
                peak_tree = max(peak_tree, total)
                done.wait(0.2)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        th.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"started_utc": datetime.fromtimestamp(time.time() - wall, timezone.utc)
            .isoformat(timespec="seconds"), "wall_s": wall, "rc": proc.returncode, "peak_rss": usage.ru_maxrss * 1024,
            "peak_tree_rss": peak_tree, "cpu_s": usage.ru_utime + usage.ru_stime,
            "load_before": [round(x, 2) for x in load]}


def _num(pattern: str, text: str) -> float | None:
    m = re.findall(pattern, text)
    return float(m[-1]) if m else None


def step_times(text: str, steps: int) -> list[int]:
    """Seconds of each optimizer step, from the trainer's progress bar (whole seconds). On a
    shared machine the fastest steps show the speed with the least interference."""
    seen: dict[int, int] = {}
    for m in re.finditer(r"\|\s*(\d+)/(\d+) \[((?:\d+:)?\d+:\d+)<", text):
        if int(m.group(2)) != steps:
            continue
        parts = [int(x) for x in m.group(3).split(":")]
        seen.setdefault(int(m.group(1)), sum(p * 60 ** i for i, p in enumerate(reversed(parts))))
    ns = sorted(seen)
    return [seen[b] - seen[a] for a, b in zip(ns, ns[1:]) if b == a + 1]


def run_lf(kind: str, yaml_path: Path, env: dict, tag: str, steps: int) -> dict:
    out = WORK / f"lf-out-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    logfile = WORK / "logs" / f"lf-{kind}-{tag}.log"
    r = run_measured([str(LF_VENV / "bin" / "llamafactory-cli"), "train", str(yaml_path)],
                     WORK, env, logfile)
    text = logfile.read_text(errors="replace")
    if r["rc"] != 0:
        raise SystemExit(f"error: LLaMA-Factory ({kind}) exited {r['rc']}; log: {logfile}\n"
                         + text[-3000:])
    res = {}
    if (out / "train_results.json").exists():
        res = json.loads((out / "train_results.json").read_text())
    m = re.search(r"compute dtype: (\S+)", text)
    r.update(tool="llamafactory", train_runtime_s=res.get("train_runtime"),
             step_s=step_times(text, steps),
             train_loss=res.get("train_loss"), steps_done=_steps_lf(out),
             compute_dtype_logged=m.group(1) if m else None, log=str(logfile.relative_to(ROOT)))
    shutil.rmtree(out, ignore_errors=True)
    return r


def _steps_lf(out: Path) -> int | None:
    state = out / "trainer_state.json"
    return json.loads(state.read_text()).get("global_step") if state.exists() else None


def run_wb(kind: str, wb_root: Path, sets: list[str], env: dict, tag: str, steps: int) -> dict:
    home = Path(env["WORKBENCH_HOME"])
    logfile = WORK / "logs" / f"wb-{kind}-{tag}.log"
    cmd = [sys.executable, str(wb_root / "launch.py"), "train", "cpu-demo",
           "--name", f"bench-{kind}", *[a for s in sets for a in ("--set", s)]]
    r = run_measured(cmd, ROOT, env, logfile)
    text = logfile.read_text(errors="replace")
    if r["rc"] != 0:
        raise SystemExit(f"error: Workbench ({kind}) exited {r['rc']}; log: {logfile}\n"
                         + text[-3000:])
    m = re.search(r"compute dtype: ([^\n]+)", text)
    steps = None
    runs = sorted((home / "runs").glob(f"bench-{kind}-*"))
    if runs:
        status = runs[-1] / "status.json"
        if status.exists():
            steps = json.loads(status.read_text()).get("step")
    r.update(tool="workbench", step_s=step_times(text, steps),
             train_runtime_s=_num(r"'train_runtime':\s*'?([0-9.]+)", text),
             train_loss=_num(r"'train_loss':\s*'?([0-9.]+)", text), steps_done=steps,
             compute_dtype_logged=m.group(1).strip() if m else None,
             log=str(logfile.relative_to(ROOT)))
    for run in runs:
        shutil.rmtree(run, ignore_errors=True)
    return r


# -- the comparison -------------------------------------------------------------------------

def median(rs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def compare(kind: str, repeats: int, steps: int, model: Path, data: Path, wb_root: Path,
            env: dict, warmup: str, on_run=lambda res: None, lf_runs: list | None = None) -> dict:
    """Alternating LF / Workbench runs; on_run gets the partial result after each run (so a
    killed benchmark keeps what it measured). lf_runs: LF's runs of an earlier invocation,
    kept instead of running LF again (--workbench-only)."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    yaml_path = WORK / f"lf-{kind}.yaml"
    write_yaml(yaml_path, lf_yaml(kind, model, steps))
    sets = wb_sets(kind, data, steps)
    wb_env = dict(env, WORKBENCH_HOME=str(WORK / "wb-home"))
    log(f"\n== {kind}: {repeats} x (LF, Workbench), {steps} steps ==")
    log(f"LF:        llamafactory-cli train {yaml_path.relative_to(ROOT)}")
    log("Workbench: python launch.py train cpu-demo " + " ".join(f"--set {s}" for s in sets))
    first = {}
    # one step each, not counted: page cache, Workbench's model import + quantised-weight
    # cache (and a check that the Workbench tree runs before LF's long runs start)
    if warmup == "both" and lf_runs is None:
        warm_yaml = WORK / f"lf-{kind}-warmup.yaml"
        write_yaml(warm_yaml, lf_yaml(kind, model, 1))
        first["llamafactory"] = run_lf(kind, warm_yaml, env, "warmup", 1)
    if warmup in ("both", "workbench"):
        first["workbench"] = run_wb(kind, wb_root, wb_sets(kind, data, 1), wb_env, "warmup", 1)
    for name, r in first.items():
        log(f"  warm-up (1 step) {name:12s} {r['wall_s']:7.1f} s  "
            f"(train loop {r['train_runtime_s']} s, compute dtype {r['compute_dtype_logged']})")
    runs = {"llamafactory": list(lf_runs or []), "workbench": []}
    for i in range(repeats):
        for name in ("workbench",) if lf_runs is not None else ("llamafactory", "workbench"):
            tag = f"{stamp}-{i + 1}"  # logs of earlier invocations are kept
            r = (run_lf(kind, yaml_path, env, tag, steps) if name == "llamafactory"
                 else run_wb(kind, wb_root, sets, wb_env, tag, steps))
            runs[name].append(r)
            if runs["llamafactory"] and runs["workbench"]:
                on_run(summarise({"kind": kind, "steps": steps, "repeats": repeats,
                                  "complete": False, "started_utc": started,
                                  "warmup": first, "runs": runs,
                                  "llamafactory_reused": lf_runs is not None}))
            log(f"  run {i + 1} {name:12s} wall {r['wall_s']:7.1f} s  train loop "
                f"{r['train_runtime_s']:7.1f} s  peak RSS {r['peak_rss'] / 2**20:6.0f} MiB  "
                f"tree {r['peak_tree_rss'] / 2**20:6.0f} MiB  steps {r['steps_done']}  "
                f"load before {r['load_before'][0]:.2f}")
    res = {"kind": kind, "steps": steps, "repeats": repeats, "complete": True,
           "started_utc": started,
           "ended_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "llamafactory_config": lf_yaml(kind, model, steps), "workbench_sets": sets,
           "warmup": first, "runs": runs, "llamafactory_reused": lf_runs is not None}
    summarise(res)
    on_run(res)
    return res


def summarise(res: dict) -> dict:
    """Medians and ratios of one comparison's runs (adds res["median"], res["ratios"])."""
    runs, steps = res["runs"], res["steps"]
    summary = {name: {k: median(rs, k) for k in ("wall_s", "train_runtime_s", "peak_rss",
                                                  "peak_tree_rss", "cpu_s", "train_loss")}
               for name, rs in runs.items()}
    for name, m in summary.items():
        m["seconds_per_step"] = m["train_runtime_s"] / steps if m["train_runtime_s"] else None
        m["outside_train_loop_s"] = median(
            [{"d": r["wall_s"] - r["train_runtime_s"]} for r in runs[name]
             if r.get("wall_s") is not None and r.get("train_runtime_s") is not None], "d")
        # every step but each run's first (which also starts the data loader), pooled
        pooled = [t for r in runs[name] for t in (r.get("step_s", [])[1:] or r.get("step_s", []))]
        m["step_median_s"] = statistics.median(pooled) if pooled else None
        m["step_fastest_s"] = min(pooled) if pooled else None
    s_lf, s_wb = summary["llamafactory"], summary["workbench"]
    def ratio(a, b):
        return a / b if a is not None and b else None
    ratios = {"wall_lf_over_ours": ratio(s_lf["wall_s"], s_wb["wall_s"]),
              "train_loop_lf_over_ours": ratio(s_lf["train_runtime_s"], s_wb["train_runtime_s"]),
              "cpu_lf_over_ours": ratio(s_lf["cpu_s"], s_wb["cpu_s"]),
              "median_step_lf_over_ours": ratio(s_lf["step_median_s"], s_wb["step_median_s"]),
              "fastest_step_lf_over_ours": ratio(s_lf["step_fastest_s"], s_wb["step_fastest_s"]),
              "peak_rss_ours_over_lf": ratio(s_wb["peak_rss"], s_lf["peak_rss"]),
              "peak_tree_rss_ours_over_lf": ratio(s_wb["peak_tree_rss"], s_lf["peak_tree_rss"])}
    res["median"], res["ratios"] = summary, {**res.get("ratios", {}), **ratios}
    return res


GOALS = {"equal": 1.0, "defaults": 1.3}  # wall LF / ours, from the issue
RSS_GOAL = 1.1  # peak RSS ours / LF at most


def table(results: list[dict]) -> str:
    def f(v, fmt="{:.0f}", unit=""):
        return "?" if v is None else fmt.format(v) + unit
    mib = lambda b: f(b and b / 2**20, "{:,.0f}", " MiB")  # noqa: E731
    lines = ["| comparison | tool | runs | wall | train loop | outside the loop | CPU time | "
             "step: median / fastest | peak RSS | tree RSS | load avg before each run |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for res in results:
        for name, label in (("llamafactory", "LLaMA-Factory 0.9.5"), ("workbench", "Workbench")):
            m, rs = res["median"][name], res["runs"][name]
            loads = ", ".join(f"{r['load_before'][0]:.2f}" for r in rs)
            lines.append(f"| {res['kind']}, {res['steps']} steps | {label} | {len(rs)} | "
                         f"{f(m['wall_s'], unit=' s')} | {f(m['train_runtime_s'], unit=' s')} | "
                         f"{f(m['outside_train_loop_s'], unit=' s')} | {f(m['cpu_s'], unit=' s')} | "
                         f"{f(m['step_median_s'])} / {f(m['step_fastest_s'])} s | "
                         f"{mib(m['peak_rss'])} | {mib(m['peak_tree_rss'])} | {loads} |")
    lines += ["", "| comparison | wall LF / ours | train loop LF / ours | CPU time LF / ours | "
              "step median / fastest LF / ours | peak RSS ours / LF | goal | met |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for res in results:
        r, goal = res["ratios"], GOALS[res["kind"]]
        x = lambda v: f(v, "{:.2f}", "x")  # noqa: E731
        speed = "?" if r["wall_lf_over_ours"] is None else (
            "yes" if r["wall_lf_over_ours"] >= goal else "no")
        rss = "?" if r["peak_rss_ours_over_lf"] is None else (
            "yes" if r["peak_rss_ours_over_lf"] <= RSS_GOAL else "no")
        lines.append(f"| {res['kind']} | {x(r['wall_lf_over_ours'])} | "
                     f"{x(r['train_loop_lf_over_ours'])} | {x(r['cpu_lf_over_ours'])} | "
                     f"{x(r['median_step_lf_over_ours'])} / {x(r['fastest_step_lf_over_ours'])} | "
                     f"{x(r['peak_rss_ours_over_lf'])} | wall >= {goal}x, RSS <= {RSS_GOAL}x | "
                     f"speed {speed}, RSS {rss} |")
    return "\n".join(lines)


def merged(res: dict, earlier: dict) -> dict:
    """res with the earlier invocations' runs of the same comparison put first."""
    if not earlier:
        return res
    out = {**res, "runs": {k: earlier.get(k, []) + v for k, v in res["runs"].items()}}
    out["repeats"] = min(len(v) for v in out["runs"].values())
    return summarise(out)


def report() -> int:
    """Recompute step times (from the kept logs), medians, ratios and the table of the
    results file; for results written by an older version of this script."""
    out = json.loads(RESULTS.read_text())
    for res in out["results"]:
        for rs in res["runs"].values():
            for r in rs:
                logfile = ROOT / r["log"] if r.get("log") else None
                if "step_s" not in r and logfile and logfile.exists():
                    r["step_s"] = step_times(logfile.read_text(errors="replace"), res["steps"])
        summarise(res)
    out["table"] = table(out["results"])
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    log(out["table"])
    return 0


def snapshot_workbench() -> Path:
    """A copy of the working tree's launch.py, workbench/ and presets/, so edits made in the
    tree while the benchmark runs cannot change what is measured halfway."""
    dst = WORK / "wb-snapshot"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    shutil.copy2(ROOT / "launch.py", dst / "launch.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sub in ("workbench", "presets", "data"):
        shutil.copytree(ROOT / sub, dst / sub, ignore=ignore)
    return dst


def git_state() -> dict:
    def git(*a):
        p = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return p.stdout.strip()
    dirty = git("status", "--porcelain", "--", "workbench", "presets", "launch.py")
    return {"head": git("rev-parse", "HEAD"), "workbench_files_changed_vs_head":
            len(dirty.splitlines()) if dirty else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="measured runs of each tool (equal)")
    ap.add_argument("--defaults-repeats", type=int, default=3,
                    help="measured runs of each tool (defaults); fewer if LF's bf16 is slow")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--defaults-steps", type=int, default=None, help="default: --steps")
    ap.add_argument("--only", choices=["equal", "defaults"])
    ap.add_argument("--quick", action="store_true",
                    help="one run of each side per comparison, no warm-up, nothing written")
    ap.add_argument("--snapshot", action="store_true",
                    help="run Workbench from a copy of the working tree taken at the start")
    ap.add_argument("--warmup", choices=["both", "workbench", "none"], default="both",
                    help="unmeasured 1-step runs first (workbench: skip LF's, when the page "
                         "cache is already warm)")
    ap.add_argument("--append", action="store_true",
                    help="with --only: add this invocation's runs to those already in the "
                         "results file (when a long benchmark has to be run in parts)")
    ap.add_argument("--workbench-only", action="store_true",
                    help="with --only: run Workbench alone and keep LF's runs of that "
                         "comparison from the results file (LF's config must be unchanged); "
                         "for a change on Workbench's side when LF's runs take an hour")
    ap.add_argument("--report", action="store_true",
                    help="only recompute the summary and table of the results file")
    args = ap.parse_args()
    if args.report:
        return report()

    import torch  # only for the CPU kind
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "logs").mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    lf_runs = None
    if args.workbench_only:
        if not args.only or args.quick or args.append or previous is None:
            raise SystemExit("error: --workbench-only needs --only and an earlier results "
                             f"file ({RESULTS.relative_to(ROOT)}), and no --quick or --append")
        old = next((r for r in previous["results"] if r["kind"] == args.only), None)
        steps = args.steps if args.only == "equal" else (args.defaults_steps or args.steps)
        if old is None or old["steps"] != steps:
            raise SystemExit(f"error: the results file has no {args.only} comparison of "
                             f"{steps} steps whose LF runs could be kept")
        lf_runs = old["runs"]["llamafactory"]
        versions = previous["llamafactory"]["versions"]
        log(f"LLaMA-Factory: {len(lf_runs)} run(s) kept from {old['started_utc']}")
    else:
        versions = ensure_lf_venv()
        log(f"LLaMA-Factory venv: {versions}")
    model = model_copy()
    if lf_runs is not None and old.get("llamafactory_config") != lf_yaml(args.only, model, steps):
        raise SystemExit("error: LF's config of the kept runs differs from this script's; "
                         "run LF again (without --workbench-only)")
    data = write_data()
    wb_root = snapshot_workbench() if args.snapshot else ROOT
    env = dict(os.environ, **OFFLINE)
    env.pop("WORKBENCH_HOME", None)
    import importlib.metadata as md
    # with --only, the other comparison's results already in the file are kept
    kept, earlier = [], {}
    if args.only and not args.quick and previous is not None:
        kept = [r for r in previous["results"] if r["kind"] != args.only]
        if args.append:  # this invocation's runs join the earlier ones of the same comparison
            earlier = next((r["runs"] for r in previous["results"]
                            if r["kind"] == args.only), {})
    header = {"cpu": {"capability": torch.backends.cpu.get_cpu_capability(),
                      "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
              "workbench": {**git_state(), "snapshot": args.snapshot,
                            "versions": {p: md.version(p) for p in
                                         ("torch", "transformers", "peft", "trl", "accelerate",
                                          "bitsandbytes", "datasets")}},
              "llamafactory": {"versions": versions},
              "data": {"rows": 160, "file": "bench/.lf-work/alpaca160.json from alpaca_rows()"}}
    order = ["equal", "defaults"]

    def save(current: list[dict]) -> None:
        if args.quick:
            return
        results = sorted(kept + current, key=lambda r: order.index(r["kind"]))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({**header, "results": results, "table": table(results)},
                                      indent=1) + "\n")

    done: list[dict] = []
    for kind in [args.only] if args.only else order:
        repeats = 1 if args.quick else (args.repeats if kind == "equal" else args.defaults_repeats)
        steps = args.steps if kind == "equal" else (args.defaults_steps or args.steps)
        res = compare(kind, repeats, steps, model, data, wb_root, env,
                      warmup="none" if args.quick else args.warmup,
                      on_run=lambda partial: save(done + [merged(partial, earlier)]),
                      lf_runs=lf_runs)
        res = merged(res, earlier)
        done.append(res)
    log("\n" + table(sorted(kept + done, key=lambda r: order.index(r["kind"]))))
    if not args.quick:
        log(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
