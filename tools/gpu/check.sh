#!/usr/bin/env bash
# tools/gpu/check.sh: the whole GPU check in one command, for a session that is lent a GPU (see tools/gpu/README.md).
#
# Two modes:
#   tools/gpu/check.sh stage    HERE (the build machine, no GPU needed): builds the CUDA targets with tools/bazel, then
#                               copies the binaries and the shared libraries they need into .gpu/ (ignored by git).
#                               bazel-bin holds symlinks into the Bazel cache and the tests find their own libraries
#                               through $ORIGIN-relative runpaths, so the binaries are copied (cp -L) into .gpu/bin and
#                               every library they resolve (except libc's family and the CUDA toolkit's, which the GPU
#                               machine has) into .gpu/lib.tar.gz (compressed: the carry limit counts bytes).
#                               Optional: tokenized data in .gpu/data for the training run
#                               (train_*.bin / val_*.bin shards; the stage step copies data_cache/tinyshakespeare if
#                               present). The total must stay under the device tool's 64 MiB carry limit.
#   tools/gpu/check.sh run      THERE (on the GPU machine), in ONE device call with carry [".gpu"]:
#                                 run(command="bash tools/gpu/check.sh run", carry=[".gpu"], timeout_s=600)
#                               Within a global 540 s deadline (CHECK_BUDGET_S) every step respects: a smoke test
#                               (driver, ldd, one step), the GPU-tagged tests at small sizes, the kernel benchmark and
#                               the trainer's step timed with its per-phase breakdown (gpu_step: d12 bf16 B=64
#                               T=1024), short training runs (bitwise reruns; one d12 bf16 run), NCCL, the pipeline on the GPU, compute-sanitizer memcheck on flash attention
#                               and the bf16 ops. Each result row is appended to $OUT/summary.md the moment it exists
#                               and each log to $OUT/logs.txt (an overrun loses nothing that finished). CHECK_PARTS
#                               picks parts (smoke, tests, bench, train, nccl, pipeline, sanitize) for a second call.
# Exit status: 0 when every step that ran passed (SKIP rows do not fail the run, and say why).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here" || exit 1
mode="${1:-run}"
gpu_dir="$here/.gpu"

stage() {
  local targets=(//tests/kernels/cuda:all //tests/bench:all //tests/resbm:gpt2_bf16_gpu_test //tools/bench/gpu_kernels
                 //tools/bench/gpu_step //engine/comm/nccl_transport:nccl_probe)
  tools/bazel build "${targets[@]}" || { echo "check.sh stage: build failed" >&2; exit 1; }
  # The trainer is optional (its own owners may have it mid-edit): build it on its own.
  local have_train=0
  local runfiles_tests=(//tests/train:train_device_test //tests/pipeline:pipeline_cuda_test
                        //tests/pipeline:wire_layout_test)
  if tools/bazel build //train "${runfiles_tests[@]}" 2>/dev/null; then have_train=1; fi
  rm -rf "${gpu_dir:?}/bin" "${gpu_dir:?}/lib" "${gpu_dir:?}/lib.tar.gz"
  mkdir -p "$gpu_dir/bin" "$gpu_dir/lib"
  local bins=()
  # The C++ tests the BUILD files declare now (bazel-bin may still hold binaries of removed targets); the engine's
  # GPT-2 on CUDA against its CPU twins (tests/resbm) beside the kernels' own. Shell tests (tests/bench's CPU run of
  # the benchmark) ran in CI.
  local t test_query='kind(cc_test, tests(//tests/kernels/cuda:all) + tests(//tests/bench:all) + //tests/resbm:gpt2_bf16_gpu_test)'
  for t in $(tools/bazel query "$test_query" 2>/dev/null); do
    t="${t#//}"
    # The emulated kernel tests run the CUDA source on the CPU: CI runs them; device time is for the GPU.
    case "$t" in *_emulated_test) continue ;; esac
    bins+=("bazel-bin/${t/://}")
  done
  bins+=(bazel-bin/tools/bench/gpu_kernels/gpu_kernels bazel-bin/tools/bench/gpu_step/gpu_step
         bazel-bin/engine/comm/nccl_transport/nccl_probe)
  : > "$gpu_dir/RUNFILES_TESTS"
  if [ "$have_train" = 1 ] && [ -x bazel-bin/train/train ]; then
    bins+=(bazel-bin/train/train)
    for t in "${runfiles_tests[@]}"; do
      t="${t#//}"
      bins+=("bazel-bin/${t/://}")
      basename "${t/://}" >> "$gpu_dir/RUNFILES_TESTS"
    done
  fi
  for b in "${bins[@]}"; do
    cp -L "$b" "$gpu_dir/bin/"
    # Every resolved library outside the CUDA toolkit and outside glibc/libstdc++ (newer on the GPU machine).
    ldd "$b" | awk '/=> \// {print $3}' | while read -r lib; do
      case "$(realpath "$lib")" in
        /usr/local/cuda*|*/libc.so*|*/libm.so*|*/libdl.so*|*/libpthread.so*|*/librt.so*|*/ld-linux*|*/libstdc++.so*|*/libgcc_s.so*) ;;
        *) cp -Ln "$lib" "$gpu_dir/lib/$(basename "$lib")" 2>/dev/null || true ;;
      esac
    done
  done
  # Token shards for the training runs: tinyshakespeare, prepared here if it is not yet (offline: RESBM_DATA_MIRROR).
  # (By its shards, not its folder: an offline attempt without the mirror leaves the folder behind, empty.)
  if ! ls data_cache/tinyshakespeare/*train*.bin > /dev/null 2>&1 && tools/bazel build //tools:prepare 2>/dev/null; then
    bazel-bin/tools/prepare tinyshakespeare --out data_cache/tinyshakespeare || true
  fi
  if ! ls "$gpu_dir"/data/*train*.bin > /dev/null 2>&1 && ls data_cache/tinyshakespeare/*train*.bin > /dev/null 2>&1; then
    mkdir -p "$gpu_dir/data" && cp -L data_cache/tinyshakespeare/*.bin "$gpu_dir/data/" 2>/dev/null || true
  fi
  # The libraries travel compressed (OpenBLAS alone is 36 MiB): the carry limit is 64 MiB with the working tree.
  rm -f "$gpu_dir/lib.tar.gz"
  tar -C "$gpu_dir" -czf "$gpu_dir/lib.tar.gz" lib && rm -rf "${gpu_dir:?}/lib"
  git rev-parse HEAD > "$gpu_dir/COMMIT" 2>/dev/null || true
  # The tests that use the GPU (tag "gpu"): the sanitizers run over these only.
  tools/bazel query "attr(tags, gpu, $test_query)" 2>/dev/null | sed 's|.*:||' > "$gpu_dir/GPU_TESTS"
  local mib
  mib=$(du -sm "$gpu_dir" | cut -f1)
  echo "check.sh stage: $(ls "$gpu_dir/bin" | wc -l) binaries, $(tar -tzf "$gpu_dir/lib.tar.gz" | grep -c '\.so') libraries (lib.tar.gz), ${mib} MiB in .gpu/"
  if [ "$mib" -gt 63 ]; then echo "check.sh stage: .gpu/ is over the 64 MiB carry limit" >&2; exit 1; fi
  echo "now, with a GPU: device run(command=\"bash tools/gpu/check.sh run\", carry=[\".gpu\"], timeout_s=600)"
}

# ---------------------------------------------------------------------------------------------------------------
# run mode: one device call of at most 9 minutes (CHECK_BUDGET_S, default 540 s, inside the tool's 600 s limit).
#
# Every step asks `slot` for its time: the smaller of its own budget and what is left before the global deadline
# (minus a 10 s reserve for the summary), or a SKIP row when too little is left. Every result row is appended to
# $OUT/summary.md the moment it exists, and each step's log to $OUT/logs.txt when the step ends, so a call cut short
# loses nothing that had finished. Budgets per part (seconds; the order is the order of importance):
#   smoke 40     driver and GPU name, `ldd` of every carried binary (a missing library fails here, not later), one
#                small bf16 step; a failed smoke test stops the check (everything after would fail the same way)
#   tests 150    the GPU-tagged tests only (CPU-only tests ran in CI), at small sizes (RESBM_TEST_SMALL=1)
#   bench 120    the kernel benchmark 20; the trainer's step (gpu_step) at d12 bf16 B=64 T=1024 with its per-phase
#                breakdown 50; fp32 B=8 25; ResBM's cost beside none (4 stages, bf16, B=8) 25
#   train 110    tiny fp32 and bf16 twice each (bitwise reruns), one d12 bf16 run, the trainer's GPU test
#   nccl 20, pipeline 60   NCCL probe; //train --executor mpi --device cuda
#   sanitize 40  compute-sanitizer memcheck on the flash-attention and bf16-op tests (small cases), then racecheck
#                if time is left
out=/tmp/gpu_check
rm -rf "$out" && mkdir -p "$out"
sink="${OUT:-$out}"  # where results stream to: the device tool's $OUT when set
failures=0
check_start=$(date +%s)
deadline=$((check_start + ${CHECK_BUDGET_S:-540}))

row() {  # row STEP STATUS DETAIL: printed and appended to the summary at once
  printf '| %s | %s | %s |\n' "$1" "$2" "$3" >> "$sink/summary.md"
  [ "$2" = FAIL ] && failures=$((failures + 1))
  echo "== $1: $2 $3 (t+$(( $(date +%s) - check_start )) s)"
}

keep() {  # keep LOG...: append logs to $sink/logs.txt (the device tool brings back few files: one for every log)
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    { echo "===== $(basename "$f")"; tail -n 300 "$f"; } >> "$sink/logs.txt"
  done
}

# slot NAME MAX: sets $t to the seconds this step may run (<= MAX, ending 10 s before the deadline); returns 1 with a
# SKIP row when fewer than 15 s are left for it.
slot() {
  local left=$((deadline - 10 - $(date +%s)))
  t=$(( left < $2 ? left : $2 ))
  if [ "$t" -lt 15 ]; then
    row "$1" SKIP "the call's ${CHECK_BUDGET_S:-540} s budget is spent (rerun this part: CHECK_PARTS=...)"
    return 1
  fi
}

part_end() {  # part_end NAME BUDGET STARTED: one line on how the part kept its budget
  echo "-- part $1: $(( $(date +%s) - $3 )) s of its $2 s"
}

# gtest counts from a log: "passed/skipped/failed"
gtest_counts() {
  local log="$1" p s f
  p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  s=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -1)
  f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -1)
  echo "${p:-0} passed, ${s:-0} skipped, ${f:-0} failed"
}

# train_run LABEL TIMES MAX ARGS...: TIMES identical 'train --device cuda' runs (1 or 2); with 2, PASS needs their
# per-step losses bitwise equal.
train_run() {
  local label="$1" times="$2" max="$3" tag i
  shift 3
  tag=$(echo "$label" | tr ' =' '__')
  local args=(--device cuda --eval-interval 0 --sample-interval 0 --train-data "$gpu_dir/data/*train*.bin"
              --val-data "$gpu_dir/data/*val*.bin" "$@")
  for ((i = 1; i <= times; i++)); do
    slot "$label run $i" "$max" || return
    timeout "$t" "$gpu_dir/bin/train" "${args[@]}" --out-dir "$out/$tag$i" > "$out/$tag$i.log" 2>&1
    keep "$out/$tag$i.log"
  done
  if [ -f "$out/${tag}1/log.jsonl" ] && grep -q '"loss"' "$out/${tag}1/log.jsonl"; then
    local losses ms
    losses=$(grep -o '"loss":[^,]*' "$out/${tag}1/log.jsonl" | sed -n '1p;$p' | tr '\n' ' ')
    ms=$(grep -oE '[0-9.]+ ms \|' "$out/${tag}1.log" | tail -1)
    if [ "$times" = 1 ]; then
      row "$label" PASS "first/last: $losses; last step ${ms% |}"
    elif cmp -s <(grep -o '"loss":[^,]*' "$out/${tag}1/log.jsonl") <(grep -o '"loss":[^,]*' "$out/${tag}2/log.jsonl"); then
      row "$label x2" PASS "losses bitwise equal; first/last: $losses; last step ${ms% |}"
    else
      row "$label x2" FAIL "losses differ between two identical runs"
    fi
  else
    row "$label" FAIL "$(grep -m1 -i 'error\|fatal\|abort' "$out/${tag}1.log" | cut -c1-150)"
  fi
}

# bazel_like_test NAME MAX [test arguments...]: a test that runs our binaries by their workspace path (train/train)
# as under `bazel test`: from a folder laid out like its runfiles, with TEST_TMPDIR set.
bazel_like_test() {
  local name="$1" max="$2" root="$out/runfiles_$1" log="$out/test_$1.log"
  shift 2
  slot "test $name" "$max" || return
  mkdir -p "$root/train" "$root/tmp"
  ln -sf "$gpu_dir/bin/train" "$root/train/train"
  (cd "$root" && TEST_TMPDIR="$root/tmp" timeout "$t" "$gpu_dir/bin/$name" "$@" > "$log" 2>&1)
  local rc=$? status=PASS
  [ $rc != 0 ] && status=FAIL
  # Only the tests of machines without a GPU (named NoGpu...) may skip here.
  if grep -E '^\[  SKIPPED \] [A-Za-z0-9_]+\.[A-Za-z0-9_]+ \(' "$log" | grep -qv '\.NoGpu'; then
    status=FAIL
  fi
  row "test $name" "$status" "$(gtest_counts "$log"), rc=$rc"
  keep "$log"
}

# The parts of a run, in the order they run: CHECK_PARTS (comma-separated; default all) picks some, e.g. a second
# device call with CHECK_PARTS=sanitize,pipeline when the first one's budget ran out.
want() { [[ ",${CHECK_PARTS:-smoke,tests,bench,train,nccl,pipeline,sanitize}," == *",$1,"* ]]; }

part_smoke() {  # 40 s. Returns 1 when the GPU cannot be used at all.
  local started=$(date +%s) b missing=""
  if ! nvidia-smi -L > "$out/nvidia-smi.txt" 2>&1; then
    row "smoke: driver" FAIL "nvidia-smi failed: $(head -1 "$out/nvidia-smi.txt" | cut -c1-150)"
    return 1
  fi
  row "smoke: driver" PASS "$(head -1 "$out/nvidia-smi.txt"); commit $(cat "$gpu_dir/COMMIT" 2>/dev/null)"
  for b in "$bin"/*; do
    ldd "$b" 2>/dev/null | grep -q 'not found' && missing+="$(basename "$b"): $(ldd "$b" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
  done
  if [ -n "$missing" ]; then row "smoke: ldd" FAIL "${missing:0:300}"; return 1; fi
  row "smoke: ldd" PASS "$(ls "$bin" | wc -l) binaries, every library found"
  if [ -x "$bin/gpu_step" ] && slot "smoke: one step" 30; then
    local smoke=(--preset tiny --batch-size 2 --seq-len 128 --dtype bf16 --steps 1 --warmup 1 --profile-steps 1)
    timeout "$t" "$bin/gpu_step" "${smoke[@]}" > "$out/smoke_step.log" 2>&1
    local rc=$?
    keep "$out/smoke_step.log"
    if [ $rc != 0 ]; then
      row "smoke: one step" FAIL "gpu_step ${smoke[*]}: rc=$rc: $(grep -m1 -i 'error\|fail' "$out/smoke_step.log" | cut -c1-150)"
      return 1
    fi
    row "smoke: one step" PASS "gpu_step ${smoke[*]}"
  fi
  part_end smoke 40 "$started"
}

part_tests() {  # 150 s: the GPU-tagged tests, small sizes (a test that SKIPS on a GPU machine fails here)
  local started=$(date +%s) tb name log rc counts status
  for tb in "${tests[@]}"; do
    name=$(basename "$tb")
    slot "test $name" 60 || continue
    log="$out/test_$name.log"
    RESBM_TEST_SMALL=1 timeout "$t" "$tb" > "$log" 2>&1
    rc=$?
    counts=$(gtest_counts "$log")
    status=PASS
    [ $rc != 0 ] && status=FAIL
    if grep -q '^\[  SKIPPED \]' "$log"; then status=FAIL; counts="$counts (skipped on a GPU machine: $(grep -m1 'no CUDA device' "$log"))"; fi
    row "test $name" "$status" "$counts, rc=$rc"
    grep -h '^\[ compare  \]' "$log" >> "$out/compare_errors.txt" 2>/dev/null
    keep "$log"
  done
  part_end tests 150 "$started"
}

# bench_step LABEL MAX ARGS...: gpu_step (the trainer's step on random tokens) with ARGS; the row carries its table
# row (or the bottleneck's cost) and the breakdown's phases in % of the step, with the table's | turned into / so as
# not to break the summary's table.
bench_step() {
  local label="$1" max="$2" log rc detail
  shift 2
  log="$out/bench_gpu_step_$(echo "$label" | tr -c 'a-zA-Z0-9\n' '_').log"
  slot "bench gpu_step $label" "$max" || return
  timeout "$t" "$bin/gpu_step" "$@" > "$log" 2>&1
  rc=$?
  detail=$( (grep -m1 '^bottleneck cost' "$log" || grep -A2 '^| run' "$log" | tail -1) | tr '|' '/' | cut -c1-220)
  # The phases of the last breakdown (with --compare: the bottleneck's run).
  detail+="; phases: $(awk -F'|' '/^breakdown of/ {n++; p = ""} n && /^\| [a-zA-Z]/ && !/phase/ {p = p $2 $5 ","} END {print p}' \
    "$log" | tr -s ' ')"
  row "bench gpu_step $label" "$( [ $rc = 0 ] && echo PASS || echo FAIL )" "$detail (rc=$rc)"
  keep "$log"
}

part_bench() {  # 120 s
  local started=$(date +%s) rc
  if [ -x "$bin/gpu_kernels" ] && slot "bench gpu_kernels" 20; then
    timeout "$t" "$bin/gpu_kernels" 8 1024 20 > "$out/bench_gpu_kernels.log" 2>&1
    rc=$?
    row "bench gpu_kernels" "$( [ $rc = 0 ] && echo PASS || echo FAIL )" "B=8 T=1024 fp32 and bf16 kernels (table in logs.txt), rc=$rc"
    keep "$out/bench_gpu_kernels.log"
  fi
  [ -x "$bin/gpu_step" ] || return
  # The number the GPU issue asks for first: GPT-2 124M (d12) in bf16 at B=64, T=1024 (the arenas sized for bf16
  # hold 33.6 + 26.8 GiB of activations and their gradients there; fp32's would need 2 x 146 GiB, hence B=8 below).
  bench_step "d12 bf16 B=64 T=1024" 50 --preset d12 --dtype bf16 --batch-size 64 --seq-len 1024 --steps 5 \
    --warmup 2 --profile-steps 1
  bench_step "d12 fp32 B=8 T=1024" 25 --preset d12 --dtype fp32 --batch-size 8 --seq-len 1024 --steps 5 \
    --profile-steps 1
  # ResBM's cost: the same 4-stage pipeline (every stage on this GPU) with and without r=32 bottlenecks.
  bench_step "d12 bf16 S=4 resbm r=32 vs none" 25 --preset d12 --dtype bf16 --batch-size 8 --seq-len 1024 \
    --stages 4 --bottleneck resbm --ratio 32 --compare --steps 5 --profile-steps 1
  part_end bench 120 "$started"
}

part_nccl() {  # 20 s: the transport's refusals, or a real exchange with 2+ GPUs
  local started=$(date +%s) probe="$bin/nccl_probe" rc
  if [ ! -x "$probe" ]; then
    row "nccl" SKIP "no nccl_probe binary"
  elif ! command -v mpirun > /dev/null 2>&1; then
    slot "nccl one rank" 10 || return
    timeout "$t" "$probe" 1 > "$out/nccl_probe_1.log" 2>&1
    rc=$?
    keep "$out/nccl_probe_1.log"
    if grep -qi 'opal_init\|orte_init\|ompi_mpi_init\|ompi_rte_init\|MPI_Init' "$out/nccl_probe_1.log" && [ $rc != 0 ]; then
      row "nccl" SKIP "no usable MPI runtime here (no mpirun; singleton MPI_Init failed)"
    else
      row "nccl one rank" "$( [ $rc = 0 ] && echo PASS || echo FAIL )" "$(tail -1 "$out/nccl_probe_1.log" | cut -c1-150) (no mpirun: singleton only)"
    fi
  else
    local ngpu
    ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
    slot "nccl 2 ranks" 20 || return
    timeout "$t" mpirun --allow-run-as-root --oversubscribe -np 2 "$probe" 2 > "$out/nccl_probe_np2.log" 2>&1
    rc=$?
    keep "$out/nccl_probe_np2.log"
    if [ "$ngpu" -ge 2 ]; then
      row "nccl 2 stages" "$( [ $rc = 0 ] && [ "$(grep -c 'OK' "$out/nccl_probe_np2.log")" = 2 ] && echo PASS || echo FAIL )" \
          "rc=$rc: $(grep nccl_probe "$out/nccl_probe_np2.log" | tr '\n' ' ' | cut -c1-200)"
    else
      row "nccl shared-GPU refusal" "$( [ $rc != 0 ] && grep -q 'share one GPU' "$out/nccl_probe_np2.log" && echo PASS || echo FAIL )" \
          "1 GPU, 2 ranks: rc=$rc: $(grep -m1 'share one GPU' "$out/nccl_probe_np2.log" | cut -c1-150)"
    fi
  fi
  part_end nccl 20 "$started"
}

part_train() {  # 110 s
  local started=$(date +%s)
  if [ ! -x "$bin/train" ]; then
    row "train (cuda)" SKIP "no trainer binary staged"
  elif ! ls "$gpu_dir"/data/*train*.bin > /dev/null 2>&1; then
    row "train (cuda)" SKIP "no token shards in .gpu/data"
  else
    train_run "train tiny fp32" 2 15 --preset tiny --steps 10
    train_run "train tiny bf16" 2 15 --preset tiny --steps 10 --dtype bf16
    train_run "train d12 bf16 B=8 T=1024" 1 40 --preset d12 --steps 10 --batch-size 8 --seq-len 1024 --dtype bf16
  fi
  # The trainer's own GPU tests (CUDA vs CPU losses in fp32 and bf16, reruns bitwise).
  if [ -x "$bin/train_device_test" ] && [ -x "$bin/train" ]; then bazel_like_test train_device_test 30; fi
  part_end train 110 "$started"
}

part_pipeline() {  # 60 s
  # //train --executor mpi --device cuda: one rank per stage. One GPU: two ranks share it over --transport mpi; NCCL
  # (which refuses two ranks on one GPU) needs two GPUs. Without mpirun only the local executor and the refusals run.
  local started=$(date +%s)
  [ -x "$bin/wire_layout_test" ] && bazel_like_test wire_layout_test 10
  if [ -x "$bin/pipeline_cuda_test" ] && [ -x "$bin/train" ]; then
    local ngpus
    ngpus=$(nvidia-smi -L 2>/dev/null | wc -l)
    if ! command -v mpirun > /dev/null 2>&1; then
      bazel_like_test pipeline_cuda_test 50 \
        --gtest_filter='PipelineCudaRefusal.*:PipelineCuda.LocalExecutorOnGpuMatchesCpuAndRepeatsBitwise'
      row "pipeline mpi/nccl on GPU" SKIP "no mpirun on this machine: the one-process-per-stage runs need OpenMPI"
    elif [ "$ngpus" -ge 2 ]; then
      bazel_like_test pipeline_cuda_test 50 --gtest_filter='-PipelineCuda.NcclWithOneGpuIsRefused'
    else
      bazel_like_test pipeline_cuda_test 50 --gtest_filter='-PipelineCuda.NcclMatchesMpiBitwiseOnTwoGpus'
      row "pipeline nccl 2 GPUs" SKIP "one GPU here: NCCL needs one GPU per rank"
    fi
  fi
  part_end pipeline 60 "$started"
}

part_sanitize() {  # 40 s and whatever is left: memcheck on flash attention and the bf16 ops, then racecheck
  local started=$(date +%s) sanitizer="" c tool name tb log rc errs
  for c in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
           /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
    if command -v "$c" > /dev/null 2>&1; then sanitizer=$(command -v "$c"); break; fi
  done
  if [ -z "$sanitizer" ]; then row "compute-sanitizer" SKIP "not found on this machine"; return; fi
  for tool in memcheck racecheck; do
    for name in bf16_flash_attention_test bf16_ops_test; do
      tb="$bin/$name"
      [ -x "$tb" ] || { row "$tool $name" SKIP "not staged"; continue; }
      slot "$tool $name" 120 || continue
      log="$out/${tool}_$name.log"
      # Fixed seed: a finding must be reproducible.
      RESBM_TEST_SMALL=1 RESBM_TEST_SEED=1234 timeout "$t" "$sanitizer" --tool "$tool" --error-exitcode 9 "$tb" > "$log" 2>&1
      rc=$?
      errs=$(grep -oE 'ERROR SUMMARY: [0-9]+ error' "$log" | grep -oE '[0-9]+' | tail -1)
      if grep -q '^\[  SKIPPED \]' "$log"; then
        row "$tool $name" SKIP "the test could not use the GPU under the sanitizer: $(grep -m1 'no CUDA device' "$log" | cut -c1-100)"
      elif [ $rc = 0 ] && [ "${errs:-0}" = 0 ] && grep -q 'ERROR SUMMARY' "$log"; then
        row "$tool $name" PASS "0 errors"
      elif [ $rc = 124 ]; then
        row "$tool $name" FAIL "cut by its time slot (${t} s)"
      else
        row "$tool $name" FAIL "rc=$rc, ${errs:-?} errors (see ${tool}_$name.log)"
      fi
      keep "$log"
    done
  done
  part_end sanitize 40 "$started"
}

run_checks() {
  local bin="$gpu_dir/bin"
  [ -d "$bin" ] || { echo "check.sh run: no .gpu/bin: run 'tools/gpu/check.sh stage' on the build machine and carry .gpu" >&2; exit 1; }
  mkdir -p "$sink"
  : > "$sink/logs.txt"
  {
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), budget ${CHECK_BUDGET_S:-540} s"
    echo
    echo "| step | status | detail |"
    echo "|---|---|---|"
  } > "$sink/summary.md"
  # Libraries: ours first, then the toolkit's, then CUDA libraries that pip packages ship (nvidia-* wheels).
  local pylibs
  pylibs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = set()
for root in site.getsitepackages():
    for lib in glob.glob(os.path.join(root, "nvidia", "*", "lib")):
        dirs.add(lib)
print(":".join(sorted(dirs)))
PY
)
  local libdir="$gpu_dir/lib"
  if [ -f "$gpu_dir/lib.tar.gz" ]; then
    libdir=/tmp/gpu_check_lib/lib
    rm -rf /tmp/gpu_check_lib && mkdir -p /tmp/gpu_check_lib && tar -C /tmp/gpu_check_lib -xzf "$gpu_dir/lib.tar.gz"
  fi
  export LD_LIBRARY_PATH="$libdir:/usr/local/cuda/lib64:${pylibs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"

  # The GPU-tagged test binaries (the list the stage step wrote); the CPU-only ones ran in CI, not here.
  tests=()
  local tb
  for tb in "$bin"/*_test; do
    [ -x "$tb" ] || continue
    grep -qx "$(basename "$tb")" "$gpu_dir/RUNFILES_TESTS" 2>/dev/null && continue  # run by bazel_like_test
    grep -qx "$(basename "$tb")" "$gpu_dir/GPU_TESTS" 2>/dev/null || continue
    tests+=("$tb")
  done
  local smoke_ok=1
  if want smoke; then part_smoke || smoke_ok=0; fi
  if [ "$smoke_ok" = 1 ]; then
    want tests && part_tests
    want bench && part_bench
    want train && part_train
    want nccl && part_nccl
    want pipeline && part_pipeline
    want sanitize && part_sanitize
  else
    row "the rest" SKIP "the smoke test failed: nothing else can pass on this machine"
  fi
  {
    echo
    echo "## largest relative errors per comparison (CUDA vs CPU twin)"
    [ -f "$out/compare_errors.txt" ] && sort -u "$out/compare_errors.txt" | head -80
  } >> "$sink/summary.md"
  echo
  cat "$sink/summary.md"
  echo
  echo "check.sh: $failures failing step(s) in $(( $(date +%s) - check_start )) s; every log in $sink/logs.txt"
  [ "$failures" = 0 ]
}

case "$mode" in
  stage) stage ;;
  run) run_checks ;;
  *) echo "usage: tools/gpu/check.sh stage|run" >&2; exit 2 ;;
esac
