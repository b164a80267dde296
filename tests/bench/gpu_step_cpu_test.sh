#!/usr/bin/env bash
# tests/bench/gpu_step_cpu_test.sh: the step benchmark (tools/bench/gpu_step) on the CPU at a tiny size: it runs the
# trainer's step and prints a table with sane numbers (finite losses that fall, positive step time and tokens/s),
# and a breakdown whose phases include the GEMMs, attention, layernorm, elementwise, cross-entropy and optimizer
# rows and add up to the step; with two stages and --compare, both rows and the boundary codes. A bad flag is one
# error line and exit 2.
set -u
bin="$1"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

tiny=(--device cpu --dtype fp32 --num-layers 2 --channels 64 --num-heads 2 --batch-size 2 --seq-len 32 --steps 2
      --threads 1)

# Checks one benchmark output ($1, the file): the table row named $2 and its breakdown.
check_output() {
  local out="$1" name="$2"
  local row
  row=$(grep -F "| $name |" "$out" | head -1)
  [ -n "$row" ] || { fail "$name: no table row"; return; }
  # | run | step ms | tokens/s | TFLOP/s | MFU bf16 | MFU fp32 | device MiB | activations MiB | loss first -> last |
  awk -F'|' -v name="$name" '
    function finite(x) { return x ~ /^ *-?[0-9]+(\.[0-9]+)? *$/ }
    {
      split($10, loss, "->")
      if (!(finite($3) && $3 > 0)) print "FAIL: " name ": step ms " $3
      if (!(finite($4) && $4 > 0)) print "FAIL: " name ": tokens/s " $4
      if (!(finite($5) && $5 > 0)) print "FAIL: " name ": TFLOP/s " $5
      if (!(finite($9) && $9 > 0)) print "FAIL: " name ": activations MiB " $9
      if (!(finite(loss[1]) && finite(loss[2]))) print "FAIL: " name ": losses not finite: " $10
      else if (!(loss[1] + 0 > 0 && loss[2] + 0 < loss[1] + 0)) print "FAIL: " name ": loss did not fall: " $10
    }' <<< "$row" | tee -a "$out.fails"

  # The breakdown: the lines after "breakdown of NAME" up to the next blank line.
  awk -v name="$name" 'index($0, "breakdown of " name " (") == 1 { on = 1; next } on && /^$/ { exit } on' "$out" \
    > "$out.breakdown"
  for phase in "GEMMs" "attention forward" "attention backward" "layernorm" "elementwise" "cross-entropy" \
               "optimizer" "outside kernels"; do
    grep -qF "| $phase |" "$out.breakdown" || fail "$name: breakdown has no '$phase' row"
  done
  awk -F'|' -v name="$name" '
    /^\| [a-zA-Z]/ && $2 !~ /phase/ {
      ms = $4 + 0; pct = $5; sub(/%/, "", pct)
      if (!($4 ~ /^ *[0-9]+\.[0-9]+ *$/) || ms < 0) print "FAIL: " name ": " $2 " ms " $4
      total += pct
      if ($2 !~ /outside/) kernels += ms
    }
    END {
      if (total < 99 || total > 101) print "FAIL: " name ": the phases add up to " total "% of the step"
      if (!(kernels > 0)) print "FAIL: " name ": no kernel time"
    }' "$out.breakdown" | tee -a "$out.fails"
  if [ -s "$out.fails" ]; then fails=$((fails + 1)); fi
}

out="$TEST_TMPDIR/one_stage.txt"
if "$bin" "${tiny[@]}" > "$out" 2>&1; then
  cat "$out"
  check_output "$out" "one stage"
else
  cat "$out"; fail "one stage: exit status $?"
fi

out="$TEST_TMPDIR/compare.txt"
if "$bin" "${tiny[@]}" --stages 2 --bottleneck resbm --ratio 8 --compare --profile-steps 1 > "$out" 2>&1; then
  cat "$out"
  check_output "$out" "none"
  resbm=$(grep -o '^| resbm [^|]*' "$out" | head -1 | sed 's/^| //; s/ *$//')
  if [ -n "$resbm" ]; then check_output "$out" "$resbm"; else fail "compare: no resbm row"; fi
  grep -q '^bottleneck cost (resbm' "$out" || fail "compare: no cost line"
  grep -A12 "breakdown of resbm" "$out" | grep -qF "| boundary codes |" || fail "compare: no boundary codes row"
else
  cat "$out"; fail "compare: exit status $?"
fi

"$bin" "${tiny[@]}" --warmup x > "$TEST_TMPDIR/bad.txt" 2>&1
rc=$?
[ $rc = 2 ] || fail "--warmup x: exit status $rc, expected 2"
grep -q '^error: --warmup: not a count' "$TEST_TMPDIR/bad.txt" || fail "--warmup x: $(cat "$TEST_TMPDIR/bad.txt")"
"$bin" "${tiny[@]}" --stages 2 --compare --bottleneck none > "$TEST_TMPDIR/bad.txt" 2>&1
rc=$?
[ $rc = 2 ] && grep -q '^error: --compare' "$TEST_TMPDIR/bad.txt" || fail "--compare without a bottleneck: rc=$rc"

[ $fails = 0 ] && echo "PASS" || { echo "$fails failure(s)"; exit 1; }
