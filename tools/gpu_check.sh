#!/usr/bin/env bash
# The GPU measurements the benchmark notebook (nbs/18_bench.ipynb, "Still to measure on a GPU") lists,
# in one script for one lent GPU, in at most about 8 minutes:
#   - synth-size C3D and R(2+1)D, variant full: (1) backbone, (2) step with the teacher online and cached,
#     (3) end to end with the host's cores as DataLoader workers, fine-tuning and feature extraction,
#     at the device's precision (bf16, or fp16 + scaler) with channels_last, beside the fp32 baseline (interleaved);
#   - the same with torch.compile (its compile time is the first step's time, `step_first_s`);
#   - the step's host-device syncs (profiler + CUDA sync-debug warnings), peak memory;
#   - (2)/ideal, (3)/(2), and the synth reproduction's projected step time.
# It writes one CSV and a short summary (markdown) that the benchmark notebook renders:
#   $OUT/gpu_check.csv and $OUT/gpu_check.md   (default OUT: data/bench/gpu)
#
# usage: tools/gpu_check.sh [--cpu-dry-run] [--out DIR]
#   --cpu-dry-run   the same commands on the CPU at smoke size, 1 iteration, compile traced with aot_eager:
#                   checks the script end to end where there is no GPU (tests/test_bench.py runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=data/bench/gpu
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (use --cpu-dry-run, --out DIR)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
CSV="$OUT/gpu_check.csv"
rm -f "$CSV"
START=$(date +%s)

if [ "$DRY" = 1 ]; then
  DEV=cpu; PRESET=smoke; WARM=0; ITERS=1; WORKERS=0; EXTRA=(--threads 1)
  export HCMTL_COMPILE_BACKEND=aot_eager  # trace as inductor would, without generating code
else
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA GPU visible (use --cpu-dry-run on a CPU)')"
  DEV=cuda; PRESET=synth; WARM=5; ITERS=15; WORKERS=$(( $(nproc) - 1 )); EXTRA=()
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" || true
fi
B=(hcmtl-bench --device "$DEV" --preset "$PRESET" --variant full --warmup "$WARM" --iters "$ITERS" --workers "$WORKERS"
   --csv "$CSV" "${EXTRA[@]}")

for bb in c3d r21d; do
  # the device's precision with channels_last beside the fp32 baseline, every stage, the profiler's sync count
  "${B[@]}" --backbone "$bb" --precision auto --channels-last --no-compile --baseline --profile
  # compiled: backbone and step (first step = compile time)
  "${B[@]}" --backbone "$bb" --precision auto --channels-last --compile --no-baseline --phases backbone,step,cached
done
# the cost of the trainer's per-step loss read-back (one device->host sync per step)
"${B[@]}" --backbone c3d --precision auto --channels-last --no-baseline --no-readback --phases step

python - "$CSV" "$OUT/gpu_check.md" "$START" "$PRESET" <<'PY'
import sys, time, pandas as pd
from hcmtl.bench import gpu_summary
csv, md, start, preset = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
text = gpu_summary(pd.read_csv(csv), preset, time.time() - start)
open(md, 'w').write(text)
print(text)
PY
echo "gpu_check.sh: wrote $CSV and $OUT/gpu_check.md in $(( $(date +%s) - START )) s"
