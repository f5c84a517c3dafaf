"""Training on several processes, as the preset's `distributed` section says.

    python launch.py train cpu-demo --set distributed.processes=2

With `distributed.processes` above 1, the training process (the CLI's `train` / `resume`,
or the detached job the app starts) becomes a supervisor: it checks the plan (`check`),
takes the run folder over (its pid in status.json, `world_size`), and starts the same
training entry point (`train.train`) in N worker processes under a launcher, through
`runs.jobs.run_group`:

- `torchrun`: `python -m torch.distributed.run --standalone --nproc_per_node N`, DDP with
  gloo on a CPU and nccl on CUDA (the trainer picks the backend);
- `accelerate`: `accelerate launch --config_file F --num_processes N` (DDP, FSDP or
  DeepSpeed, as the file says; examples in presets/accelerate/).

The workers run `python -m workbench.train.distributed RUN [--resume]`. Only rank 0 writes
the run folder (status, metrics, checkpoints, adapter; `train.is_main_process`); a STOP
file is seen by every rank at the same step (`any_rank`), so all of them stop together.
A rank that fails writes its error to a folder the supervisor names; the launcher then
ends the others, and the supervisor marks the run failed with that rank's error.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from workbench import paths, runs
from workbench.config import Preset
from workbench.errors import PresetError, RunError, WorkbenchError

WORKER_ENV = "WORKBENCH_DIST_WORKER"    # set by the supervisor for its workers
ERRORS_ENV = "WORKBENCH_DIST_ERRORS"    # the folder a failing rank writes its error to
WORKER_MODULE = "workbench.train.distributed"
# accelerate's distributed_type values that need CUDA GPUs, and the package each needs
GPU_TYPES = {"MULTI_GPU", "FSDP", "DEEPSPEED", "MEGATRON_LM"}
TYPE_PACKAGES = {"DEEPSPEED": "deepspeed", "MEGATRON_LM": "megatron"}
FOUR_BIT = ("nf4", "fp4")


# -- where this process stands ------------------------------------------------------------

def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_worker() -> bool:
    """Started by a supervisor's launcher (it tees the output and owns the status pid)."""
    return os.environ.get(WORKER_ENV) == "1"


def under_launcher() -> bool:
    """Already one of several processes (a launcher set the rank variables)."""
    return "LOCAL_RANK" in os.environ and world_size() > 1


def launch_needed(preset: Preset) -> bool:
    return preset.distributed.processes > 1 and not under_launcher() and not is_worker()


def gpu_count() -> int:
    """CUDA devices here; torch is not imported on a machine without an NVIDIA driver."""
    if "torch" not in sys.modules and not os.path.exists("/dev/nvidiactl"):
        return 0
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def any_rank(flag: bool) -> bool:
    """True on every rank when it is True on any (one collective; plain `flag` alone)."""
    if world_size() <= 1:
        return flag
    import torch
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = f"cuda:{torch.cuda.current_device()}"
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# -- the plan: checked before anything starts -----------------------------------------------

@dataclass
class Plan:
    launcher: str
    processes: int
    gpus: int
    config_file: Path | None = None
    distributed_type: str | None = None   # accelerate's, from the config file
    notes: list[str] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return "nccl" if self.gpus else "gloo"

    def describe(self) -> str:
        how = (f"accelerate launch ({self.distributed_type}, {self.config_file.name})"
               if self.launcher == "accelerate" else f"torchrun (DDP, {self.backend})")
        where = f"{self.gpus} GPU(s)" if self.gpus else "the CPU"
        return f"{self.processes} processes on {where} through {how}"


def config_path(text: str) -> Path:
    return paths.resolve_data_path(text, PresetError)


def check(preset: Preset, gpus: int | None = None) -> Plan:
    """The launch plan for `preset`, or a WorkbenchError naming the field, the file or the
    package to fix. `gpus`: the CUDA devices (default: count them here)."""
    d = preset.distributed
    gpus = gpu_count() if gpus is None else gpus
    plan = Plan(d.launcher, d.processes, gpus)
    if gpus and d.processes > gpus:
        raise PresetError(f"distributed.processes: {d.processes} processes but this machine "
                          f"has {gpus} GPU(s); use at most {gpus} (one process per GPU)")
    if d.launcher == "torchrun":
        if d.accelerate_config:
            plan.notes.append("note: distributed.accelerate_config is used only with "
                              "launcher accelerate; torchrun ignores it")
    else:
        _check_accelerate(preset, plan)
    if not gpus and d.processes > (os.cpu_count() or 1):
        plan.notes.append(f"note: {d.processes} processes share {os.cpu_count()} CPU "
                          "cores; each gets one thread")
    return plan


def _check_accelerate(preset: Preset, plan: Plan) -> None:
    d = preset.distributed
    if find_spec("accelerate") is None:
        raise WorkbenchError("distributed.launcher accelerate: the accelerate package is not "
                             "installed; pip install -r requirements.txt (it pins it)")
    if not d.accelerate_config:
        raise PresetError("distributed.accelerate_config: launcher accelerate needs a config "
                          "file, e.g. presets/accelerate/multi-cpu.yaml (see "
                          "presets/accelerate/README.md)")
    path = config_path(d.accelerate_config)
    if not path.is_file():
        raise PresetError(f"distributed.accelerate_config: {d.accelerate_config}: no such file "
                          "(a path relative to the project folder, or absolute)")
    cfg = read_accelerate_config(path)
    plan.config_file = path
    kind = str(cfg.distributed_type).rsplit(".", 1)[-1]
    plan.distributed_type = kind
    package = TYPE_PACKAGES.get(kind)
    if package and find_spec(package) is None:
        raise WorkbenchError(f"{path.name}: distributed_type {kind} needs the {package} "
                             f"package, which is not installed (pip install {package})")
    if kind == "MULTI_CPU" and not (getattr(cfg, "mpirun_config", None) or {}).get(
            "mpirun_hostfile"):
        raise PresetError(f"{path.name}: distributed_type MULTI_CPU starts one process "
                          "unless mpirun is set up; for several CPU processes use "
                          "distributed_type MULTI_GPU with use_cpu: true, as "
                          "presets/accelerate/multi-cpu.yaml does")
    uses_cpu = bool(getattr(cfg, "use_cpu", False))
    if kind in GPU_TYPES and not uses_cpu and not plan.gpus:
        raise PresetError(f"{path.name}: distributed_type {kind} needs CUDA GPUs and this "
                          "machine has none; use presets/accelerate/multi-cpu.yaml or "
                          "distributed.launcher torchrun")
    if kind in ("FSDP", "DEEPSPEED") and preset.quantization.mode == "int8":
        raise PresetError(f"quantization.mode: int8 cannot be sharded by {kind}; use nf4 "
                          "(FSDP-QLoRA) or none")
    if getattr(cfg, "num_processes", None) not in (None, plan.processes):
        plan.notes.append(f"note: {path.name} says num_processes {cfg.num_processes}; "
                          f"distributed.processes ({plan.processes}) is used")


def read_accelerate_config(path: Path):
    """The file read by the installed accelerate's own config class (its keys, its
    checks); a PresetError naming the file when it refuses it."""
    try:
        from accelerate.commands.config.config_args import load_config_from_file
        return load_config_from_file(str(path))
    except (ValueError, TypeError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise PresetError(f"{path.name}: not a valid accelerate config ({first})") from None
    except Exception as exc:  # noqa: BLE001 - yaml errors and the like: still the file's
        raise PresetError(f"{path.name}: cannot read it as an accelerate config "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None


def quant_storage(preset: Preset, compute_dtype: str) -> str | None:
    """The storage dtype 4-bit weights need to be sharded by FSDP (FSDP-QLoRA): the
    compute dtype, so every flat parameter has one dtype. None when not needed."""
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
    if fsdp and preset.quantization.mode in FOUR_BIT:
        return compute_dtype
    return None


# -- the supervisor -------------------------------------------------------------------------

def command(plan: Plan, run: Path, resume: bool) -> list[str]:
    worker = ["-m", WORKER_MODULE, str(run)] + (["--resume"] if resume else [])
    if plan.launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch",
                "--config_file", str(plan.config_file), "--num_processes",
                str(plan.processes), "--main_process_port", str(_free_port()), *worker]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nnodes", "1", "--nproc_per_node", str(plan.processes), *worker]


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(plan: Plan, errors: Path) -> dict:
    env = {WORKER_ENV: "1", ERRORS_ENV: str(errors)}
    if not plan.gpus:  # the processes share the cores: one thread each, unless set
        threads = max(1, (os.cpu_count() or 1) // plan.processes)
        env.setdefault("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", str(threads)))
    return env


def supervise(run: Path, preset: Preset, *, resume: bool, take_over, log) -> dict:
    """Start the workers, wait for them, and leave the run's final state in status.json.
    `take_over(world_size=..)` is train's own start of a run (pid, resume preparation)."""
    from workbench.runs import jobs
    started = time.monotonic()
    plan = check(preset)
    take_over(world_size=plan.processes, launcher=plan.launcher)
    log(f"distributed: {plan.describe()}")
    for note in plan.notes:
        log(note)
    errors = Path(tempfile.mkdtemp(prefix="workbench-ranks-"))
    tail = collections.deque(maxlen=400)  # the launcher's report of a failed rank

    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        tail.append(text)

    try:
        try:
            code = jobs.run_group(command(plan, run, resume), env=worker_env(plan, errors),
                                  echo=echo)
        except KeyboardInterrupt:
            code = -signal.SIGINT
        status = runs.read_json(run / "status.json")
        if code == 0 and status.get("state") in ("completed", "stopped"):
            return status
        message = failed_rank(errors, "".join(tail)) or (
            f"a training process ended with exit code {code}")
        if "details in" not in message:
            message += f" (details in {run / 'train.log'})"
        if code == -signal.SIGINT:
            return runs.write_status(run, state="stopped", phase="done", ended_at=runs.now_iso(),
                                     error="interrupted (Ctrl-C); resume it to continue from "
                                           "the last checkpoint")
        print(f"error: {message}", flush=True)
        return runs.write_status(run, state="failed", phase="done", error=message,
                                 ended_at=runs.now_iso(),
                                 elapsed_s=round(time.monotonic() - started, 1))
    finally:
        shutil.rmtree(errors, ignore_errors=True)


def failed_rank(errors: Path, output: str) -> str | None:
    """Why the group failed, naming the rank that failed first: the launcher's report
    says which (the others fail because it went away: "Connection reset by peer"), that
    rank's own error says why; a rank killed by a signal wrote none."""
    root = _ROOT_CAUSE.search(output)
    if root:
        own = rank_error(errors, root.group(1))
        return own or launcher_error(output)
    return rank_error(errors)


def rank_error(errors: Path, rank_: str | None = None) -> str | None:
    """The error rank `rank_` wrote (default: the first one written)."""
    files = sorted(errors.glob(f"rank{rank_ if rank_ is not None else '*'}.txt"),
                   key=lambda p: p.stat().st_mtime_ns)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            return f"rank {path.stem.removeprefix('rank')}: {text}"
    return None


_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)"
                         r"(?:.*?traceback\s*:\s*([^\n]+))?", re.S)


def launcher_error(output: str) -> str | None:
    """The failed rank as torchrun's failure report names it (a rank killed by a signal
    or out of memory writes no error of its own)."""
    found = _ROOT_CAUSE.search(output)
    if not found:
        return None
    rank_, code, why = found.groups()
    why = (why or "").strip()
    if why.startswith("Signal 9"):
        why += " (killed: out of memory, or by hand)"
    return f"rank {rank_}: the process ended with exit code {code}" + (
        f": {why}" if why and why != "<N/A>" else "")


def record_error(message: str) -> None:
    """A worker's failure, for its supervisor (nothing outside a supervised worker)."""
    folder = os.environ.get(ERRORS_ENV)
    if folder and is_worker():
        try:
            (Path(folder) / f"rank{rank()}.txt").write_text(message, encoding="utf-8")
        except OSError:
            pass


# -- the worker ----------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Linux: end this worker when its launcher is killed (kill -9 of the job)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main(argv: list[str]) -> int:
    """`python -m workbench.train.distributed RUN [--resume]`, started by `supervise`."""
    from workbench import train
    if not argv or len(argv) > 2 or (len(argv) == 2 and argv[1] != "--resume"):
        print("usage: python -m workbench.train.distributed RUN [--resume] (started by "
              "`launch.py train` with distributed.processes > 1)", file=sys.stderr)
        return 2
    _die_with_parent()
    try:
        import torch
        if not torch.cuda.is_available():
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        run = Path(argv[0])
        if not (run / "preset.yaml").is_file():
            raise RunError(f"{run}: not a run folder (no preset.yaml)")
        final = train.train(run, resume=len(argv) == 2)
    except WorkbenchError as exc:
        record_error(str(exc))
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0 if final.get("state") in ("completed", "stopped") else 1


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
