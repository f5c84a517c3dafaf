"""What this machine computes natively, and the compute dtype `auto` resolves to.

    >>> resolve_compute_dtype("auto")                    # on an AVX2-only CPU
    DtypeChoice(dtype='float32', reason='auto → float32: this CPU (AVX2) has no native
                bfloat16; bfloat16 would be about 8× slower here', ...)

Why it matters: a CPU without AVX512-BF16 or AMX emulates bfloat16 arithmetic. There a
bf16 QLoRA step of the embedded model took ~48 s against 7.9 s in float32; on an
AVX512-BF16 CPU bf16 is the fast choice (3.4 s). So `auto` (the default) picks:

- CUDA: bfloat16 where the GPU supports it, else float16;
- CPU: bfloat16 only where the CPU has native bf16 instructions (AVX512-BF16 or AMX), as
  torch reports them; where torch cannot tell (another architecture), a short measured
  probe decides (bf16 no more than 1.5× slower than float32 counts as native);
- else float32.

An explicit dtype is kept as written, with a warning when it is expected to be slow. The
measured slowdown (bf16 time / float32 time of one Linear forward+backward) is cached in
WORKBENCH_HOME/cache/dtype_probe.json, keyed by the CPU and torch version, so it is paid
once per machine; messages quote it when known.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass

# bf16 measured at most this many times slower than float32 counts as "native"
NATIVE_RATIO = 1.5
PROBE_FILE = "dtype_probe.json"


@dataclass(frozen=True)
class CpuInfo:
    """What torch reports about the CPU. None means "torch cannot tell"."""
    capability: str          # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, ...
    avx512_bf16: bool | None
    amx: bool | None

    @property
    def native_bf16(self) -> bool | None:
        if self.avx512_bf16 or self.amx:
            return True
        if self.avx512_bf16 is None and self.amx is None:
            return None
        return False

    @property
    def label(self) -> str:
        extra = [n for n, on in (("AVX512-BF16", self.avx512_bf16), ("AMX", self.amx)) if on]
        return self.capability + (f" + {', '.join(extra)}" if extra else "")


@dataclass(frozen=True)
class DtypeChoice:
    """The compute dtype a preset asked for, what it resolved to here, and why."""
    requested: str
    dtype: str               # bfloat16 | float16 | float32
    device: str              # cpu | cuda
    capability: str          # CPU capability (or the GPU's name on CUDA)
    reason: str              # one line for logs, status.json and the UI
    warning: str | None = None   # set when an explicit choice is expected to be slow
    bf16_slowdown: float | None = None  # measured bf16 / float32 time on this CPU

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """From torch when it is already imported, else from /proc/cpuinfo (the app's start-up
    must not pay torch's import for a dtype label)."""
    if "torch" not in sys.modules:
        flags = _proc_flags()
        if flags is not None:
            cap = ("AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags
                   else "NO AVX")
            return CpuInfo(cap, "avx512_bf16" in flags, "amx_bf16" in flags)
    import torch
    cap = torch.backends.cpu.get_cpu_capability()

    def ask(name):
        fn = getattr(torch.cpu, name, None) or getattr(torch._C._cpu, name, None)
        try:
            return bool(fn()) if fn is not None else None
        except Exception:  # noqa: BLE001 - a missing probe means "cannot tell"
            return None
    bf16, amx = ask("_is_avx512_bf16_supported"), ask("_is_amx_tile_supported")
    if not _is_x86():
        # these probes only know x86; elsewhere they answer False without meaning it
        bf16 = amx = None
    return CpuInfo(capability=cap, avx512_bf16=bf16, amx=amx)


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _proc_flags() -> set[str] | None:
    """The x86 feature flags of the first CPU in /proc/cpuinfo; None elsewhere."""
    if not _is_x86():
        return None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def cuda_state() -> tuple[bool, bool, str]:
    """(CUDA available, it supports bfloat16, device name); torch is not imported on a
    machine without an NVIDIA driver."""
    if "torch" not in sys.modules and not os.path.exists("/dev/nvidiactl"):
        return False, False, ""
    import torch
    if not torch.cuda.is_available():
        return False, False, ""
    return True, bool(torch.cuda.is_bf16_supported()), torch.cuda.get_device_name(0)


def _fmt_ratio(ratio: float | None) -> str:
    return f"about {ratio:.0f}×" if ratio and ratio >= 2 else (
        f"about {ratio:.1f}×" if ratio else "several times")


def resolve_compute_dtype(requested: str = "auto", *, cpu: CpuInfo | None = None,
                          cuda: tuple[bool, bool, str] | None = None,
                          slowdown=None) -> DtypeChoice:
    """Resolve `quantization.compute_dtype` for this machine (or for the `cpu` / `cuda`
    facts given, which is how the tests feed fake hardware).

    `slowdown`: a function () -> float | None giving bf16 / float32 time on this CPU;
    by default the cached probe (measured on first need when torch cannot tell)."""
    from workbench.errors import PresetError
    requested = str(requested or "auto").strip().lower()
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32",
               "float": "float32"}
    requested = aliases.get(requested, requested.removeprefix("torch."))
    if requested not in ("auto", "bfloat16", "float16", "float32"):
        raise PresetError(f"quantization.compute_dtype: {requested!r} is not one of auto, "
                          "bfloat16, float16, float32")
    has_cuda, cuda_bf16, gpu = cuda if cuda is not None else cuda_state()
    if has_cuda:
        if requested == "auto":
            dtype = "bfloat16" if cuda_bf16 else "float16"
            why = ("this GPU supports bfloat16" if cuda_bf16
                   else "this GPU has no bfloat16 support")
            return DtypeChoice("auto", dtype, "cuda", gpu, f"auto → {dtype}: {why}")
        if requested == "bfloat16" and not cuda_bf16:
            return DtypeChoice(requested, "float16", "cuda", gpu,
                               "bfloat16 → float16: this GPU has no bfloat16 support",
                               warning="this GPU has no bfloat16 support; using float16")
        return DtypeChoice(requested, requested, "cuda", gpu, f"{requested} (as set)")

    info = cpu if cpu is not None else cpu_info()
    native = info.native_bf16
    # measured here only when torch cannot tell; train and dryrun measure beforehand
    # (measure_if_unknown) so their messages can quote the figure
    measure = slowdown if slowdown is not None else (
        lambda: bf16_slowdown(measure=native is None))
    ratio = None
    if native is None or requested in ("auto", "bfloat16"):
        ratio = measure()
    if native is None:  # torch cannot tell: the measurement decides
        native = ratio is not None and ratio <= NATIVE_RATIO
        how = f"bfloat16 measured {ratio:.1f}× the float32 time" if ratio else "unmeasured"
    else:
        how = info.label
    if requested == "auto":
        if native:
            return DtypeChoice("auto", "bfloat16", "cpu", info.label,
                               f"auto → bfloat16: this CPU computes bfloat16 natively ({how})",
                               bf16_slowdown=ratio)
        return DtypeChoice("auto", "float32", "cpu", info.label,
                           f"auto → float32: this CPU ({how}) has no native bfloat16; "
                           f"bfloat16 would be {_fmt_ratio(ratio)} slower here",
                           bf16_slowdown=ratio)
    warning = None
    if requested == "bfloat16" and not native:
        warning = (f"compute_dtype bfloat16 on a CPU without native bfloat16 ({how}): "
                   f"expect training {_fmt_ratio(ratio)} slower than float32 "
                   "(set quantization.compute_dtype to auto or float32)")
    elif requested == "float16":
        warning = ("compute_dtype float16 on a CPU: no float16 autocast here, so the "
                   "adapters train in float32 over a float16 base")
    return DtypeChoice(requested, requested, "cpu", info.label, f"{requested} (as set)",
                       warning=warning, bf16_slowdown=ratio)


# -- the measured probe, cached per machine -----------------------------------------------

def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('' where there is none, e.g. not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), "")
    except OSError:
        return ""


def _probe_key() -> str:
    """The CPU model, torch version and thread setting (without importing torch)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "?"
    return "|".join([platform.machine(), cpu_model(), torch_version, cpu_info().label,
                     str(os.cpu_count()), os.environ.get("OMP_NUM_THREADS", "")])


def measure_bf16_slowdown(repeats: int = 3) -> float:
    """bf16 time / float32 time of one Linear forward+backward (256×576 @ 576×1536, the
    shape of an MLP projection of the embedded model on a batch of 256 tokens); median."""
    import torch

    def one(dtype) -> float:
        lin = torch.nn.Linear(576, 1536, dtype=dtype)
        x = torch.randn(256, 576, dtype=dtype, requires_grad=True)
        lin(x).sum().backward()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            lin(x).sum().backward()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]
    return one(torch.bfloat16) / max(one(torch.float32), 1e-9)


def measure_if_unknown() -> float | None:
    """Make sure the probe is cached on a CPU where bf16 is not native (train, dryrun):
    their messages then say how much slower bf16 would be."""
    if cuda_state()[0] or cpu_info().native_bf16:
        return None
    return bf16_slowdown(measure=True)


def bf16_slowdown(measure: bool = False) -> float | None:
    """The cached probe result for this machine; measured (~1-3 s) when `measure` and not
    cached yet. None when unknown.

    A probe taken on a busy machine overstates the slowdown (35x measured under load
    against 12.4x idle on the same AVX2 CPU), so the load at measuring time is kept with
    it; a later `measure` on a quieter machine measures again and keeps the lower figure."""
    from workbench import fsio, paths
    path = paths.cache_dir() / PROBE_FILE
    key = _probe_key()
    cached_ratio, cached_load = None, None
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            cached_ratio = float(cached["bf16_over_fp32"])
            cached_load = cached.get("load")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    load = _load_per_core()
    quieter = (isinstance(cached_load, (int, float)) and cached_load > BUSY_LOAD
               and load is not None and load < cached_load / 2)
    if cached_ratio is not None and not (measure and quieter):
        return cached_ratio
    if not measure:
        return None
    ratio = round(measure_bf16_slowdown(), 2)
    if cached_ratio is not None:
        ratio = min(ratio, cached_ratio)
    try:
        fsio.atomic_write(path, json.dumps({"key": key, "bf16_over_fp32": ratio,
                                            "load": load}) + "\n")
    except OSError:
        pass
    return ratio


BUSY_LOAD = 0.75  # 1-minute load average per core above which a probe is re-taken later


def _load_per_core() -> float | None:
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 2)
    except (OSError, AttributeError):
        return None


def measure_matmul_flops(dtype: str, n: int | None = None, repeats: int = 5,
                         device: str = "cpu") -> float:
    """Best FLOP/s of an n×n @ n×n matmul in `dtype` with torch's threads (or on the GPU:
    n 8192, synchronised)."""
    import torch
    dt = getattr(torch, dtype)
    n = n or (8192 if device == "cuda" else 1024)
    a = torch.randn(n, n, dtype=dt, device=device)
    b = torch.randn(n, n, dtype=dt, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    a @ b  # warm-up
    sync()
    if device == "cpu" and time.perf_counter() - t0 > 0.3 and n > 256:
        return measure_matmul_flops(dtype, n // 2, repeats)  # emulated: keep it short
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / max(best, 1e-9)


def matmul_peak_flops(dtype: str, device: str = "cpu") -> float:
    """This machine's matmul peak in `dtype` on `device`: the denominator of the dry run's
    FLOP utilisation. Measured at each call (≤ 1-2 s) and cached as the best seen, since a
    shared machine only ever makes a measurement lower than the real peak."""
    from workbench import fsio, paths
    path = paths.cache_dir() / "matmul_peak.json"
    key = f"{_probe_key()}|{dtype}" + ("" if device == "cpu" else
                                       f"|{device}:{cuda_state()[2]}")
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    best = cached.get(key) if isinstance(cached.get(key), (int, float)) else 0
    now = round(measure_matmul_flops(dtype, device=device))
    if now <= best:
        return float(best)
    cached[key] = now
    try:
        fsio.atomic_write(path, json.dumps(cached, indent=1) + "\n")
    except OSError:
        pass
    return float(cached[key])
