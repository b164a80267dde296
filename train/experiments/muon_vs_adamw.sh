#!/usr/bin/env bash
# train/experiments/muon_vs_adamw.sh: Muon vs AdamW at equal steps on the tiny preset (tinyshakespeare, the trainer's
# default 2 stages with ResBM), a small learning-rate sweep for each, then one plot and a table of final val losses.
#
#   train/experiments/muon_vs_adamw.sh [OUT_ROOT]          (default out/muon_vs_adamw; STEPS=300 by default)
#
# Builds //train and //tools:plot, runs the binaries directly (not through `bazel run`, which would hold the shared
# Bazel server for the whole sweep). Offline machines: set RESBM_DATA_MIRROR to the data mirror.
set -euo pipefail
cd "$(dirname "$0")/../.."
out_root="${1:-out/muon_vs_adamw}"
steps="${STEPS:-300}"
adamw_lrs="${ADAMW_LRS:-1e-3 3e-3 6e-3}"
muon_lrs="${MUON_LRS:-0.02 0.05}"
muon_adamw_lrs="${MUON_ADAMW_LRS:-1e-3 3e-3}"  # lr of Muon's AdamW part (embeddings, head, gains, biases)
common=(--steps "$steps" --eval-interval 50 --eval-batches 10 --checkpoint-interval 0 --sample-length 32
        --warmup-steps 20 --final-lr-frac 0.1 --seed 1337)

tools/bazel build //train //tools:plot >&2
mkdir -p "$out_root"
runs=()
# A run whose log already holds its final evaluation is kept, so the sweep can be re-run to add learning rates.
finished() { grep -q "\"type\": \"eval\", \"step\": $steps," "$1/log.jsonl" 2>/dev/null; }
run() {  # name, then the optimizer flags
  local name="$1"
  shift
  if ! finished "$out_root/$name"; then
    rm -rf "${out_root:?}/$name"  # an unfinished run starts over
    bazel-bin/train/train "${common[@]}" "$@" --out-dir "$out_root/$name" --run-name "$name" \
      > "$out_root/$name.txt" 2>&1
  fi
  runs+=("$out_root/$name")
}
for lr in $adamw_lrs; do run "adamw_lr$lr" --optimizer adamw --lr "$lr"; done
for alr in $muon_adamw_lrs; do
  for lr in $muon_lrs; do run "muon_lr${lr}_adamw$alr" --optimizer muon --muon-lr "$lr" --lr "$alr"; done
done
bazel-bin/tools/plot "${runs[@]}" --out "$out_root/curves.png" --title "Muon vs AdamW, tiny preset, $steps steps"

printf '%-26s %12s %12s %10s\n' run "val@end" "train@end" "ms/step"
for r in "${runs[@]}"; do
  val=$(grep '"type": "eval"' "$r/log.jsonl" | tail -1 | sed 's/.*"val_loss": \([^,}]*\).*/\1/')
  train=$(grep '"type": "step"' "$r/log.jsonl" | tail -1 | sed 's/.*"loss": \([^,}]*\).*/\1/')
  ms=$(grep '"type": "step"' "$r/log.jsonl" | sed 's/.*"ms": \([^,}]*\).*/\1/' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-26s %12.4f %12.4f %10.1f\n' "$(basename "$r")" "$val" "$train" "$ms"
done
