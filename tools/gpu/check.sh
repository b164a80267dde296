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
#                               Runs every CUDA test, the NCCL probe, short training runs twice each (bitwise-equal
#                               losses: tiny fp32 and bf16, GPT-2 124M bf16), the trainer's and the pipeline's GPU
#                               tests, the kernel benchmark, the whole-step benchmark (GPT-2 124M bf16 at B=16..64,
#                               tokens/s and MFU; fp32; the ResBM cost side by side), and last compute-sanitizer memcheck and
#                               racecheck over the GPU tests (small cases, within what is left of a 540 s budget:
#                               CHECK_BUDGET_S); prints one summary table at the end. CHECK_PARTS picks parts (tests,
#                               bench, nccl, train, pipeline, sanitize) for a second call when one is not enough. Logs go
#                               to /tmp/gpu_check; when $OUT is set (the device tool), two files come back in it:
#                               summary.md (the table, the benchmark, the error figures) and logs.txt (every log).
# Exit status: 0 when every step that ran passed (SKIP rows do not fail the run, and say why).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
mode="${1:-run}"
gpu_dir="$here/.gpu"

stage() {
  local targets=(//tests/kernels/cuda:all //tests/bench:all //tools/bench/gpu_kernels //tools/bench/gpu_step
                 //engine/comm/nccl_transport:nccl_probe)
  tools/bazel build "${targets[@]}" || { echo "check.sh stage: build failed" >&2; exit 1; }
  # The trainer is optional (its own owners may have it mid-edit): build it on its own.
  local have_train=0
  local runfiles_tests=(//tests/train:train_device_test //tests/pipeline:pipeline_cuda_test
                        //tests/pipeline:wire_layout_test)
  if tools/bazel build //train "${runfiles_tests[@]}" 2>/dev/null; then have_train=1; fi
  rm -rf "$gpu_dir/bin" "$gpu_dir/lib" "$gpu_dir/lib.tar.gz"
  mkdir -p "$gpu_dir/bin" "$gpu_dir/lib"
  local bins=()
  # The tests the BUILD file declares now (bazel-bin may still hold binaries of removed targets).
  local t
  for t in $(tools/bazel query 'tests(//tests/kernels/cuda:all) + tests(//tests/bench:all)' 2>/dev/null); do
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
  if [ ! -d data_cache/tinyshakespeare ] && tools/bazel build //tools:prepare 2>/dev/null; then
    bazel-bin/tools/prepare tinyshakespeare --out data_cache/tinyshakespeare || true
  fi
  if [ ! -d "$gpu_dir/data" ] && [ -d data_cache/tinyshakespeare ]; then
    mkdir -p "$gpu_dir/data" && cp -L data_cache/tinyshakespeare/*.bin "$gpu_dir/data/" 2>/dev/null || true
  fi
  # The libraries travel compressed (OpenBLAS alone is 36 MiB): the carry limit is 64 MiB with the working tree.
  rm -f "$gpu_dir/lib.tar.gz"
  tar -C "$gpu_dir" -czf "$gpu_dir/lib.tar.gz" lib && rm -rf "$gpu_dir/lib"
  git rev-parse HEAD > "$gpu_dir/COMMIT" 2>/dev/null || true
  # The tests that use the GPU (tag "gpu"): the sanitizers run over these only.
  tools/bazel query 'attr(tags, gpu, tests(//tests/kernels/cuda:all) + tests(//tests/bench:all))' 2>/dev/null | sed 's|.*:||' > "$gpu_dir/GPU_TESTS"
  local mib
  mib=$(du -sm "$gpu_dir" | cut -f1)
  echo "check.sh stage: $(ls "$gpu_dir/bin" | wc -l) binaries, $(tar -tzf "$gpu_dir/lib.tar.gz" | grep -c '\.so') libraries (lib.tar.gz), ${mib} MiB in .gpu/"
  if [ "$mib" -gt 63 ]; then echo "check.sh stage: .gpu/ is over the 64 MiB carry limit" >&2; exit 1; fi
  echo "now, with a GPU: device run(command=\"bash tools/gpu/check.sh run\", carry=[\".gpu\"], timeout_s=600)"
}

# ---------------------------------------------------------------------------------------------------------------
# run mode
out=/tmp/gpu_check
rm -rf "$out" && mkdir -p "$out"
summary="$out/summary.md"
rows=()
failures=0
row() {  # row STEP STATUS DETAIL
  rows+=("| $1 | $2 | $3 |")
  [ "$2" = FAIL ] && failures=$((failures + 1))
  echo "== $1: $2 $3"
}

# gtest counts from a log: "passed/skipped/failed"
gtest_counts() {
  local log="$1" p s f
  p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  s=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -1)
  f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -1)
  echo "${p:-0} passed, ${s:-0} skipped, ${f:-0} failed"
}

# train_twice LABEL ARGS...: two identical 'train --device cuda' runs; PASS when both train and their per-step
# losses are bitwise equal.
train_twice() {
  local label="$1" tag i
  shift
  tag=$(echo "$label" | tr ' =' '__')
  local args=(--device cuda --eval-interval 0 --sample-interval 0 --train-data "$gpu_dir/data/*train*.bin"
              --val-data "$gpu_dir/data/*val*.bin" "$@")
  for i in 1 2; do
    timeout 240 "$gpu_dir/bin/train" "${args[@]}" --out-dir "$out/$tag$i" > "$out/$tag$i.log" 2>&1
  done
  if [ -f "$out/${tag}1/log.jsonl" ] && grep -q '"loss"' "$out/${tag}1/log.jsonl"; then
    local ms
    ms=$(grep -oE '[0-9.]+ ms/step|step_ms":[0-9.]+' "$out/${tag}1.log" "$out/${tag}1/log.jsonl" 2>/dev/null | tail -1)
    if cmp -s <(grep -o '"loss":[^,]*' "$out/${tag}1/log.jsonl") <(grep -o '"loss":[^,]*' "$out/${tag}2/log.jsonl"); then
      row "$label x2" PASS "losses bitwise equal; first/last: $(grep -o '"loss":[^,]*' "$out/${tag}1/log.jsonl" | sed -n '1p;$p' | tr '\n' ' ')${ms:+; $ms}"
    else
      row "$label x2" FAIL "losses differ between two identical runs"
    fi
  else
    row "$label" FAIL "$(grep -m1 -i 'error\|fatal\|abort' "$out/${tag}1.log" | cut -c1-150)"
  fi
}

# bazel_like_test NAME: a test that runs our binaries by their workspace path (train/train, ...) as under
# `bazel test`: from a folder laid out like its runfiles, with TEST_TMPDIR set.
bazel_like_test() {  # NAME [test arguments...]
  local name="$1" root="$out/runfiles_$1" log="$out/test_$1.log"
  shift
  mkdir -p "$root/train" "$root/tmp"
  ln -sf "$gpu_dir/bin/train" "$root/train/train"
  (cd "$root" && TEST_TMPDIR="$root/tmp" timeout 300 "$gpu_dir/bin/$name" "$@" > "$log" 2>&1)
  local rc=$? status=PASS
  [ $rc != 0 ] && status=FAIL
  # Only the tests of machines without a GPU (named NoGpu...) may skip here.
  if grep -E '^\[  SKIPPED \] [A-Za-z0-9_]+\.[A-Za-z0-9_]+ \(' "$log" | grep -qv '\.NoGpu'; then
    status=FAIL
  fi
  row "test $name" "$status" "$(gtest_counts "$log"), rc=$rc"
}

# The parts of a run, in the order they run: CHECK_PARTS (comma-separated; default all) picks some, e.g. a second
# device call with CHECK_PARTS=sanitize,pipeline when the first one's budget ran out.
want() { [[ ",${CHECK_PARTS:-tests,bench,nccl,train,pipeline,sanitize}," == *",$1,"* ]]; }

part_tests() {
  # Every CUDA test (a test that SKIPS on a GPU machine is a failure here: it means it could not use the GPU)
  for t in "${tests[@]}"; do
    local name log rc counts status
    name=$(basename "$t")
    log="$out/test_$name.log"
    timeout 300 "$t" > "$log" 2>&1
    rc=$?
    counts=$(gtest_counts "$log")
    status=PASS
    if [ $rc != 0 ]; then status=FAIL; fi
    if [ "$name" != signatures_test ] && grep -q '^\[  SKIPPED \]' "$log"; then status=FAIL; counts="$counts (skipped on a GPU machine: $(grep -m1 'no CUDA device' "$log"))"; fi
    row "test $name" "$status" "$counts, rc=$rc"
  done
  # The max relative errors the tests printed, for the record.
  grep -h '^\[ compare  \]' "$out"/test_*.log > "$out/compare_errors.txt" 2>/dev/null || true
}

part_bench() {
  # The kernel benchmark
  if [ -x "$bin/gpu_kernels" ]; then
    timeout 300 "$bin/gpu_kernels" 8 1024 20 > "$out/gpu_kernels.md" 2>&1
    local rc=$?
    row "bench gpu_kernels" "$( [ $rc = 0 ] && echo PASS || echo FAIL )" "B=8 T=1024 fp32 and bf16 kernels, table below (rc=$rc)"
  fi

  # The whole-step GPT-2 124M (gpu_step, llm.c-style flat step): bf16 at B = 16, 32, 64 (T = 1024; flash attention,
  # and at B = 64 also the cuBLAS + softmax attention), fp32 at B = 8 for the record, and the ResBM cost side by side
  # in one process (3 boundaries = 4 stages' worth, r = 32 and 128).
  if [ -x "$bin/gpu_step" ]; then
    local spec label
    for spec in "16 1024 10" "32 1024 10" "64 1024 10" "64 1024 10 --attention cublas" "8 1024 10 --dtype fp32" \
                "16 1024 10 --compare --bottlenecks 3 --ratio 32" "16 1024 10 --compare --bottlenecks 3 --ratio 128"; do
      label=$(echo "$spec" | tr ' ' '_' | tr -s '_' | sed 's/--//g')
      # shellcheck disable=SC2086
      timeout 240 "$bin/gpu_step" $spec > "$out/gpu_step_$label.md" 2>&1
      local rc=$?
      row "bench gpu_step $spec" "$( [ $rc = 0 ] && echo PASS || echo FAIL )" \
          "$( (grep -m1 'ResBM cost' "$out/gpu_step_$label.md" || grep -A2 'step ms' "$out/gpu_step_$label.md" | tail -1) | cut -c1-220) (rc=$rc)"
    done
    if ls "$gpu_dir"/data/gpt2_124M.bin > /dev/null 2>&1; then  # llm.c's weights, when someone carried them
      timeout 240 "$bin/gpu_step" 16 1024 10 --load "$gpu_dir/data/gpt2_124M.bin" > "$out/gpu_step_llmc.md" 2>&1
      local rc=$?
      row "bench gpu_step on llm.c weights" "$( [ $rc = 0 ] && echo PASS || echo FAIL )" \
          "$(grep -A2 'step ms' "$out/gpu_step_llmc.md" | tail -1 | cut -c1-200) (rc=$rc)"
    fi
  fi
}

part_nccl() {
  # NCCL: the transport's refusal of a world size != stages, then a real exchange (or, on one GPU, the refusal of
  # two ranks on one GPU).
  local probe="$bin/nccl_probe"
  if [ ! -x "$probe" ]; then
    row "nccl" SKIP "no nccl_probe binary"
  elif ! command -v mpirun > /dev/null 2>&1; then
    timeout 60 "$probe" 1 > "$out/nccl_probe_1.log" 2>&1
    local rc1=$?
    if grep -qi 'opal_init\|orte_init\|ompi_mpi_init\|ompi_rte_init\|MPI_Init' "$out/nccl_probe_1.log" && [ $rc1 != 0 ]; then
      # OpenMPI's runtime (mpirun, its plugins) is not on this machine and is not carried (11 MiB, many deps).
      row "nccl" SKIP "no usable MPI runtime here (no mpirun; singleton MPI_Init failed): $(grep -m1 -i 'init' "$out/nccl_probe_1.log" | cut -c1-100)"
    else
      timeout 60 "$probe" 2 > "$out/nccl_probe_2.log" 2>&1
      local rc2=$?
      row "nccl one rank" "$( [ $rc1 = 0 ] && echo PASS || echo FAIL )" "$(tail -1 "$out/nccl_probe_1.log") (no mpirun: singleton only)"
      row "nccl world size refusal" "$( [ $rc2 = 3 ] && grep -q 'MPI ranks' "$out/nccl_probe_2.log" && echo PASS || echo FAIL )" \
          "rc=$rc2: $(tail -1 "$out/nccl_probe_2.log" | cut -c1-150)"
    fi
  else
    local ngpu
    ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
    timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 "$probe" 2 > "$out/nccl_probe_np2.log" 2>&1
    local rc=$?
    if [ "$ngpu" -ge 2 ]; then
      row "nccl 2 stages" "$( [ $rc = 0 ] && [ "$(grep -c 'OK' "$out/nccl_probe_np2.log")" = 2 ] && echo PASS || echo FAIL )" \
          "rc=$rc: $(grep nccl_probe "$out/nccl_probe_np2.log" | tr '\n' ' ' | cut -c1-200)"
    else
      row "nccl shared-GPU refusal" "$( [ $rc != 0 ] && grep -q 'share one GPU' "$out/nccl_probe_np2.log" && echo PASS || echo FAIL )" \
          "1 GPU, 2 ranks: rc=$rc: $(grep -m1 'share one GPU' "$out/nccl_probe_np2.log" | cut -c1-150)"
    fi
    timeout 60 mpirun --allow-run-as-root -np 1 "$probe" 2 > "$out/nccl_probe_np1.log" 2>&1
    rc=$?
    row "nccl world size refusal" "$( [ $rc != 0 ] && grep -q 'MPI ranks' "$out/nccl_probe_np1.log" && echo PASS || echo FAIL )" \
        "rc=$rc: $(grep -m1 'MPI ranks' "$out/nccl_probe_np1.log" | cut -c1-150)"
  fi
}

part_train() {
  # Short training runs on CUDA, each twice (losses must be bitwise equal): the tiny preset in fp32 and in bf16
  # (--dtype bf16: the matmuls on bf16 tensor cores), and GPT-2 124M (d12) at B=8, T=1024 in bf16.
  if [ ! -x "$bin/train" ]; then
    row "train (cuda)" SKIP "no trainer binary staged"
  elif ! ls "$gpu_dir"/data/*train*.bin > /dev/null 2>&1; then
    row "train (cuda)" SKIP "no token shards in .gpu/data"
  else
    train_twice "train tiny fp32" --preset tiny --steps 10
    train_twice "train tiny bf16" --preset tiny --steps 10 --dtype bf16
    train_twice "train d12 bf16 B=8 T=1024" --preset d12 --steps 6 --batch-size 8 --seq-len 1024 --dtype bf16
  fi
  # The trainer's own GPU tests (CUDA vs CPU losses in fp32 and bf16, reruns bitwise) run the binary as Bazel would:
  # from a runfiles-like folder holding train/train.
  if [ -x "$bin/train_device_test" ] && [ -x "$bin/train" ]; then
    bazel_like_test train_device_test
  fi
}

part_pipeline() {
  # //train --executor mpi --device cuda: one rank per stage. One GPU: two ranks share it over --transport mpi; NCCL
  # (which refuses two ranks on one GPU) needs two GPUs. Without mpirun only the local executor and the refusals run.
  # The device wire path's byte layout (CUDA codec kernels == the host codec's bytes).
  [ -x "$bin/wire_layout_test" ] && bazel_like_test wire_layout_test
  if [ -x "$bin/pipeline_cuda_test" ] && [ -x "$bin/train" ]; then
    local ngpus
    ngpus=$(nvidia-smi -L 2>/dev/null | wc -l)
    if ! command -v mpirun > /dev/null 2>&1; then
      bazel_like_test pipeline_cuda_test \
        --gtest_filter='PipelineCudaRefusal.*:PipelineCuda.LocalExecutorOnGpuMatchesCpuAndRepeatsBitwise'
      row "pipeline mpi/nccl on GPU" SKIP "no mpirun on this machine: the one-process-per-stage runs need OpenMPI"
    elif [ "$ngpus" -ge 2 ]; then
      bazel_like_test pipeline_cuda_test --gtest_filter='-PipelineCuda.NcclWithOneGpuIsRefused'
    else
      bazel_like_test pipeline_cuda_test --gtest_filter='-PipelineCuda.NcclMatchesMpiBitwiseOnTwoGpus'
      row "pipeline nccl 2 GPUs" SKIP "one GPU here: NCCL needs one GPU per rank"
    fi
  fi
}

part_sanitize() {
  # compute-sanitizer over the GPU tests, last: it is the slow part. Small cases only (RESBM_TEST_SMALL=1) and a
  # time budget, so that the whole check fits one 600 s device call; what the budget cuts is reported as SKIP.
  local sanitizer=""
  for c in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
           /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
    if command -v "$c" > /dev/null 2>&1; then sanitizer=$(command -v "$c"); break; fi
  done
  if [ -z "$sanitizer" ]; then
    row "compute-sanitizer" SKIP "not found on this machine"
  else
    for tool in memcheck racecheck; do
      for t in "${tests[@]}"; do
        local name log rc errs
        name=$(basename "$t")
        grep -qx "$name" "$gpu_dir/GPU_TESTS" 2>/dev/null || continue  # CPU-only tests: nothing for a sanitizer
        log="$out/${tool}_$name.log"
        local left=$((budget_end - $(date +%s)))
        if [ "$left" -lt 30 ]; then
          row "$tool $name" SKIP "time budget of this device call spent (rerun: RESBM_TEST_SMALL=1 compute-sanitizer --tool $tool .gpu/bin/$name)"
          continue
        fi
        # Fixed seed: a sanitizer finding must be reproducible.
        RESBM_TEST_SMALL=1 RESBM_TEST_SEED=1234 timeout "$left" "$sanitizer" --tool "$tool" --error-exitcode 9 "$t" > "$log" 2>&1
        rc=$?
        errs=$(grep -oE 'ERROR SUMMARY: [0-9]+ error' "$log" | grep -oE '[0-9]+' | tail -1)
        if grep -q '^\[  SKIPPED \]' "$log"; then
          # e.g. the sanitizer refuses the device (seen on gVisor machines): the test skipped, nothing was checked
          row "$tool $name" SKIP "the test could not use the GPU under the sanitizer: $(grep -m1 'no CUDA device' "$log" | cut -c1-100)"
        elif [ $rc = 0 ] && [ "${errs:-0}" = 0 ] && grep -q 'ERROR SUMMARY' "$log"; then
          row "$tool $name" PASS "0 errors"
        elif [ $rc = 124 ]; then
          row "$tool $name" FAIL "timed out (budget)"
        else
          row "$tool $name" FAIL "rc=$rc, ${errs:-?} errors (see ${tool}_$name.log)"
        fi
      done
    done
  fi
}

run_checks() {
  local bin="$gpu_dir/bin"
  # Everything must end inside one device call (600 s at most): the sanitizers get what is left until this mark.
  local budget_end=$(( $(date +%s) + ${CHECK_BUDGET_S:-540} ))
  [ -d "$bin" ] || { echo "check.sh run: no .gpu/bin: run 'tools/gpu/check.sh stage' on the build machine and carry .gpu" >&2; exit 1; }
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

  nvidia-smi -L > "$out/nvidia-smi.txt" 2>&1
  row "device" "$( [ $? = 0 ] && echo INFO || echo FAIL )" "$(head -1 "$out/nvidia-smi.txt"); commit $(cat "$gpu_dir/COMMIT" 2>/dev/null)"

  # The test binaries (the sanitizers run over these too), except those run from a runfiles-like folder.
  tests=()
  for t in "$bin"/*_test; do
    [ -x "$t" ] || continue
    grep -qx "$(basename "$t")" "$gpu_dir/RUNFILES_TESTS" 2>/dev/null && continue  # run by bazel_like_test
    tests+=("$t")
  done
  want tests && part_tests
  want bench && part_bench
  want nccl && part_nccl
  want train && part_train
  want pipeline && part_pipeline
  want sanitize && part_sanitize

  {
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(head -1 "$out/nvidia-smi.txt")"
    echo
    echo "| step | status | detail |"
    echo "|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    [ -f "$out/gpu_kernels.md" ] && cat "$out/gpu_kernels.md"
    for f in "$out"/gpu_step_*.md; do [ -f "$f" ] && { echo; echo "### $(basename "$f" .md)"; cat "$f"; }; done
    echo
    echo "## largest relative errors per comparison (CUDA vs CPU twin)"
    [ -f "$out/compare_errors.txt" ] && sort -u "$out/compare_errors.txt" | head -80
  } > "$summary"
  if [ -n "${OUT:-}" ]; then  # the device tool brings back at most 8 files: one summary, one concatenated log
    cp "$summary" "$OUT/summary.md"
    for f in "$out"/*.log "$out"/*.txt; do
      [ -f "$f" ] || continue
      echo "===== $(basename "$f")"
      tail -n 300 "$f"
    done > "$OUT/logs.txt"
  fi
  echo
  cat "$summary"
  echo
  echo "check.sh: $failures failing step(s); logs in $out${OUT:+ (and \$OUT/logs.txt)}"
  [ "$failures" = 0 ]
}

case "$mode" in
  stage) stage ;;
  run) run_checks ;;
  *) echo "usage: tools/gpu/check.sh stage|run" >&2; exit 2 ;;
esac
