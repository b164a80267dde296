#!/usr/bin/env python3
"""tools/experiments/wan_sim_validate.py: tools/wan_sim's predictions against measured emulated-link runs.

    tools/bazel build //train //tools/wan_sim && python3 tools/experiments/wan_sim_validate.py  # runs what has no log yet, then writes the table
    python3 tools/experiments/wan_sim_validate.py --report   # the table from the committed logs only

Each run is a short `//train --executor mpi --link-mbps R --link-latency-ms 20 --link-mode MODE` run (one rank per
stage, the link emulator between them) of a tiny byte-level model; its JSONL log is copied to
docs/wan_sim/logs/<name>.jsonl, which is what gets committed. The table in docs/wan_sim.md (between its
`validation` markers) compares, per run, the median measured step time (steps after the warm-up) with wan_sim's
prediction from the same log: the compute each stage logged (stage_forward_ms, ...), the bytes the engine counted,
and the link the run was given. The grid: S in {2, 4}, M in {1, 4}, GPipe and 1F1B, 10 and 50 Mbit/s, boundary and
node mode (32 runs, about 6 minutes on 2 cores).

    python3 tools/experiments/wan_sim_validate.py --real   # also the real-link runs (root: network namespaces, tc)

The same model over a real link instead (`--real-link-mbps 10`: each rank in a network namespace of its own, its
egress shaped by tc, MPI over TCP), S in {2, 4}, M in {1, 4}, GPipe: 4 runs whose logs go to docs/wan_sim/logs/real_*,
predicted by wan_sim in both link modes at the same rate and no latency (tc shapes each rank's uplink; its downlink
is free), in the table between the `validation-real` markers.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOGS = os.path.join(ROOT, "docs", "wan_sim", "logs")
DOC = os.path.join(ROOT, "docs", "wan_sim.md")
WORK = os.path.join(ROOT, "out", "wan_sim_validate")
TRAIN = os.path.join(ROOT, "bazel-bin", "train", "train")
WAN_SIM = os.path.join(ROOT, "bazel-bin", "tools", "wan_sim", "wan_sim")

STEPS = 14          # per run
SKIP = 4            # warm-up steps left out of both the measurement and the compute medians
LATENCY_MS = 20
RATES = (10, 50)    # Mbit/s
TARGET = 0.10       # the acceptance bound on |predicted - measured| / measured

# A tiny model (C = 64, 4 blocks), so that compute is a few ms per micro-batch and the link matters; an untied head
# (no tied exchange: only codes cross); the full residual stream crosses (`none`, fp32: 64 KiB per micro-batch).
BASE = [
    "--tokenizer", "bytes", "--num-layers", "4", "--num-heads", "4", "--channels", "64", "--max-seq-len", "64",
    "--seq-len", "64", "--batch-size", "4", "--bottleneck", "none", "--untie-head", "--steps", str(STEPS),
    "--eval-interval", "0", "--sample-interval", "0", "--sample-length", "0", "--checkpoint-interval", "0",
    "--executor", "mpi", "--threads", "1",
]
COMMON = BASE + ["--link-latency-ms", str(LATENCY_MS)]  # the emulated runs' one-way latency


def grid():
    for S in (2, 4):
        for M in (1, 4):
            for schedule in ("gpipe", "1f1b"):
                for rate in RATES:
                    for mode in ("boundary", "node"):
                        name = f"S{S}_M{M}_{schedule}_{rate}mbps_{mode}"
                        flags = ["--stages", str(S), "--micro-batches", str(M), "--schedule", schedule,
                                 "--link-mbps", str(rate), "--link-mode", mode]
                        yield name, (S, M, schedule, rate, mode), flags


REAL_MBPS = 10


def real_grid():
    for S in (2, 4):
        for M in (1, 4):
            name = f"real_S{S}_M{M}_gpipe_{REAL_MBPS}mbps"
            flags = ["--stages", str(S), "--micro-batches", str(M), "--schedule", "gpipe",
                     "--real-link-mbps", str(REAL_MBPS)]
            yield name, (S, M), flags


def run_missing(runs, common):
    os.makedirs(LOGS, exist_ok=True)
    for name, _, flags in runs:
        dest = os.path.join(LOGS, name + ".jsonl")
        if os.path.exists(dest):
            continue
        out = os.path.join(WORK, name)
        shutil.rmtree(out, ignore_errors=True)
        cmd = [TRAIN] + common + flags + ["--out-dir", out]
        print("run:", name, flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(out, "log.jsonl"), dest)


def predict(log, extra=()):
    out = subprocess.run([WAN_SIM, "--log", log, "--skip-steps", str(SKIP), "--json"] + list(extra), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def real_table():
    rows = ["| S | M | measured s/step (real link) | predicted, boundary mode | predicted, node mode |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    for name, (S, M), _ in real_grid():
        log = os.path.join(LOGS, name + ".jsonl")
        if not os.path.exists(log):
            rows.append(f"| {S} | {M} | (no log: run with --real, as root) | | |")
            continue
        cells = []
        for mode in ("boundary", "node"):
            p = predict(log, ["--link-mode", mode, "--up-mbps", str(REAL_MBPS), "--latency-ms", "0"])
            measured = p["measured_step_s"]
            cells.append(f"{p['step_s']:.4f} ({100 * (p['step_s'] - measured) / measured:+.1f}%)")
        rows.append(f"| {S} | {M} | {measured:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def table():
    rows = ["| S | M | schedule | Mbit/s | mode | measured s/step | predicted s/step | error |",
            "| ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |"]
    errors = []
    for name, (S, M, schedule, rate, mode), _ in grid():
        log = os.path.join(LOGS, name + ".jsonl")
        if not os.path.exists(log):
            rows.append(f"| {S} | {M} | {schedule} | {rate} | {mode} | (no log) | | |")
            continue
        p = predict(log)
        measured, predicted = p["measured_step_s"], p["step_s"]
        err = (predicted - measured) / measured
        errors.append(abs(err))
        rows.append(f"| {S} | {M} | {schedule} | {rate} | {mode} | {measured:.4f} | {predicted:.4f} | "
                    f"{100 * err:+.1f}% |")
    summary = (f"{len(errors)} runs; worst |error| {100 * max(errors):.1f}%, median "
               f"{100 * statistics.median(errors):.1f}%; {sum(e <= TARGET for e in errors)} of {len(errors)} "
               f"within {100 * TARGET:.0f}%." if errors else "no logs yet.")
    return "\n".join(rows) + "\n\n" + summary + "\n"


def write_section(marker, body):
    """Replaces what lies between <!-- marker: begin --> and <!-- marker: end --> in docs/wan_sim.md."""
    text = open(DOC).read()
    begin, end = f"<!-- {marker}: begin -->", f"<!-- {marker}: end -->"
    a, b = text.index(begin) + len(begin), text.index(end)
    open(DOC, "w").write(text[:a] + "\n" + body + text[b:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="store_true", help="only write the table from the committed logs")
    ap.add_argument("--real", action="store_true", help="also run the real-link grid (root; network namespaces)")
    args = ap.parse_args()
    for binary in (TRAIN, WAN_SIM):
        if not os.path.exists(binary):
            sys.exit(f"error: {binary} is missing: build it first, tools/bazel build //train //tools/wan_sim")
    if not args.report:
        run_missing(grid(), COMMON)
        if args.real:
            run_missing(real_grid(), BASE)
    body = table()
    write_section("validation", body)
    real = real_table()
    write_section("validation-real", real)
    print(body + "\n" + real)


if __name__ == "__main__":
    sys.exit(main())
