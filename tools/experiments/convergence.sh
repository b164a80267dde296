#!/usr/bin/env bash
# tools/experiments/convergence.sh: convergence of each bottleneck kind on tinyshakespeare (issue 4, point 6).
#
#   tools/experiments/convergence.sh [STEPS] [OUT_DIR]        (defaults: 300, docs)
#
# Trains the tiny preset split into S=2 pipeline stages with the one trainer (//train --executor mpi: two MPI ranks,
# one per stage) for STEPS steps, with the
# same seed, the same token stream (sequential order) and the same hyper-parameters for every kind:
#   none | resbm r=32 | resbm r=128 | linear r=128 | ae r=128   (tiny: C = 128, so r = 128 is a one-channel code)
# then writes OUT_DIR/resbm_convergence.md (final train and validation loss, bytes per step, measured
# compression) and OUT_DIR/resbm_convergence.png (train and validation curves, gnuplot). Each run's log.jsonl is
# copied to OUT_DIR/resbm_convergence_logs/<name>.jsonl (its output directory, with the final checkpoint, stays in
# $RUNS_DIR, default /tmp/resbm_convergence_runs). Data: `prepare tinyshakespeare` (online, or from
# $RESBM_DATA_MIRROR).
# Environment: EXECUTOR=local runs the stages in one process instead (bitwise the same losses); EXTRA=1 adds
# resbm r=32 with an int8 code, the fused layout at r=128 and the orthogonal identity at r=128; REUSE=1 keeps the
# logs of runs that already completed STEPS steps (to add runs to an existing table).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-300}"
OUT="${2:-docs}"
EXECUTOR="${EXECUTOR:-mpi}"
LOGS="$OUT/resbm_convergence_logs"
DATA="${DATA_DIR:-/tmp/resbm_tinyshakespeare}"
RUNS_DIR="${RUNS_DIR:-/tmp/resbm_convergence_runs}"
mkdir -p "$OUT" "$LOGS" "$DATA"

tools/bazel build //train //tools:prepare >&2
bazel-bin/tools/prepare tinyshakespeare --out "$DATA" ${RESBM_DATA_MIRROR:+--mirror "$RESBM_DATA_MIRROR"} >&2

# name | flags
RUNS=(
  "none|--bottleneck none"
  "resbm_r32|--bottleneck resbm --ratio 32"
  "resbm_r128|--bottleneck resbm --ratio 128"
  "linear_r128|--bottleneck linear --ratio 128"
  "ae_r128|--bottleneck ae --ratio 128"
)
if [ "${EXTRA:-0}" = 1 ]; then
  RUNS+=(
    "resbm_r32_int8|--bottleneck resbm --ratio 32 --code-dtype int8"
    "resbm_fused_r128|--bottleneck resbm --ratio 128 --resbm-layout fused"
    "resbm_orth_r128|--bottleneck resbm --ratio 128 --bottleneck-identity orthogonal"
  )
fi
# Constant lr 1e-3, weight decay 0.1, sequential data: the settings this table was first measured with.
COMMON=(--preset tiny --stages 2 --micro-batches 2 --batch-size 4 --seq-len 64 --steps "$STEPS" --lr 1e-3
        --warmup-steps 0 --final-lr-frac 1 --weight-decay 0.1 --data-order sequential --seed 1337
        --train-data "$DATA/tiny_shakespeare_train.bin" --val-data "$DATA/tiny_shakespeare_val.bin"
        --eval-interval 50 --eval-batches 16 --executor "$EXECUTOR" --comm-timeout-s 600 --log-interval 1000000
        --sample-length 0 --checkpoint-interval 0)

for run in "${RUNS[@]}"; do
  name="${run%%|*}"
  flags="${run#*|}"
  if [ "${REUSE:-0}" = 1 ] && grep -q "\"step\": $STEPS, \"loss\"" "$LOGS/$name.jsonl" 2>/dev/null; then
    echo "== $name: reusing $LOGS/$name.jsonl" >&2
    continue
  fi
  echo "== $name: $flags" >&2
  rm -rf "${RUNS_DIR:?}/$name"
  # shellcheck disable=SC2086
  timeout 7200 bazel-bin/train/train "${COMMON[@]}" $flags --out-dir "$RUNS_DIR/$name" >&2
  cp "$RUNS_DIR/$name/log.jsonl" "$LOGS/$name.jsonl"
done

# JSONL -> columns, in a scratch directory. Train: step loss (averaged below); val: step val_loss.
DAT="$(mktemp -d)"
trap 'rm -rf "$DAT"' EXIT
num() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p"; }
for run in "${RUNS[@]}"; do
  name="${run%%|*}"
  grep '"type": "step"' "$LOGS/$name.jsonl" | sed 's/.*"step": \([0-9]*\), "loss": \([^,]*\),.*/\1 \2/' \
    > "$DAT/$name.train.dat"
  grep '"type": "eval"' "$LOGS/$name.jsonl" | sed 's/.*"step": \([0-9]*\), "val_loss": \([^,}]*\).*/\1 \2/' \
    > "$DAT/$name.val.dat"
done

{
  echo "# ResBM convergence on tinyshakespeare (tiny preset, S=2)"
  echo
  echo "Produced by \`tools/experiments/convergence.sh $STEPS $OUT\` on $(date -u +%Y-%m-%d). Tiny preset (L=4, C=128, NH=4),"
  echo "2 pipeline stages ($EXECUTOR executor), M=2 micro-batches of B=4 x T=64 (512 tokens per step), AdamW lr 1e-3"
  echo "constant, weight decay 0.1, grad clip 1.0, seed 1337, the same sequential token stream for every kind; $STEPS steps."
  echo "Train loss: mean of the last 20 steps. Validation loss: the first 16 x 4 x 64 tokens of the validation split,"
  echo "at the last step. Bytes: code bytes crossing the boundary per step, forward (the backward carries the same)."
  echo "At C=128, r=32 is a 4-channel code and r=128 a single channel; an int8 code adds a 4-byte scale per row."
  echo
  echo "| kind | final train loss | final val loss | fwd bytes/step | measured ratio |"
  echo "|---|---:|---:|---:|---:|"
  for run in "${RUNS[@]}"; do
    name="${run%%|*}"
    train=$(tail -n 20 "$DAT/$name.train.dat" | awk '{s += $2} END {printf "%.4f", s / NR}')
    val=$(tail -n 1 "$DAT/$name.val.dat" | awk '{printf "%.4f", $2}')
    last=$(grep '"type": "step"' "$LOGS/$name.jsonl" | tail -n 1)
    bytes=$(echo "$last" | num bytes_fwd)
    ratio=$(echo "$last" | num compression)
    echo "| $name | $train | $val | $bytes | $(printf '%.1f' "$ratio") |"
  done
  echo
  echo "![curves](resbm_convergence.png)"
} > "$OUT/resbm_convergence.md"

plot_train=""
plot_val=""
for run in "${RUNS[@]}"; do
  name="${run%%|*}"
  # Train loss as a moving average over 20 steps (single steps are noisy at 512 tokens).
  awk '{v[NR % 20] = $2; s = 0; n = (NR < 20 ? NR : 20); for (i in v) s += v[i]; print $1, s / n}' \
    "$DAT/$name.train.dat" > "$DAT/$name.train_avg.dat"
  plot_train+="'$DAT/$name.train_avg.dat' using 1:2 with lines lw 2 title '$name', "
  plot_val+="'$DAT/$name.val.dat' using 1:2 with linespoints lw 2 title '$name', "
done
gnuplot <<GP
set terminal png size 1300,600 noenhanced
set output '$OUT/resbm_convergence.png'
set multiplot layout 1,2 title 'tiny preset on tinyshakespeare, S=2, same seed and tokens'
set grid
set xlabel 'step'
set ylabel 'train loss (20-step moving average)'
set yrange [4.5:8]
plot ${plot_train%, }
set ylabel 'validation loss'
set yrange [*:*]
plot ${plot_val%, }
unset multiplot
GP
cat "$OUT/resbm_convergence.md"
