#!/usr/bin/env python3
"""tools/experiments/diloco_sweep.py: replicas of a ResBM pipeline (R = 2 x S = 2), synchronous data parallelism
against DiLoCo, resumable, with its table and plot written from the committed logs.

    python3 tools/experiments/diloco_sweep.py run [--only REGEX] [--budget-minutes N]
    python3 tools/experiments/diloco_sweep.py report
    python3 tools/experiments/diloco_sweep.py list

The model and data are the ResBM table's (tools/experiments/resbm_sweep.py, grid `cpu`): byte-level tinyshakespeare,
L = 4, C = 256, NH = 4, T = 128, S = 2 stages joined by ResBM r = 32 (K = 8 fp32 codes), an untied head, AdamW
lr 3e-3 with cosine decay to 10%, weight decay 0.1, clip 1.0. At equal tokens (1,024,000):
  - pipe:        one pipeline at B = 8 for 1,000 steps: the ResBM table's own runs resbm_r32_C256_S2_s{1,2,3}
                 (and resbm_r32_muon_C256_S2_s1 for Muon), read from docs/resbm_experiments/logs;
  - ddp:         R = 2 replicas at B = 8 each (R x B = 16 rows per step), gradients averaged every step, 500 steps;
  - diloco_H10, diloco_H50: R = 2, each replica its own AdamW for H steps, then DiLoCo's outer Nesterov step
                 (outer lr 0.7, momentum 0.9) on the averaged parameter change, 500 steps;
  - diloco_H50_muon: the same with Muon as the inner optimizer, once.
The R = 2 runs warm up for 25 steps (the same 51,200 tokens as pipe's 50) and are evaluated every 100 steps, which
are sync steps for both H, on the same 64 x 1,024 held-out tokens.

`run` trains what has no complete log (docs/diloco_experiments/logs/<name>.jsonl), through the one trainer's
local executor (R x S stages in one process; tests/train prove it bitwise equal to R x S ranks under mpirun).
`report` writes docs/diloco.md and docs/diloco_experiments/val_curves.png from the committed logs.
"""
import argparse
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resbm_sweep as base  # noqa: E402  (the run loop, the log reader, the common flags)

ROOT = base.ROOT
DOCS = base.DOCS
LOGS = os.path.join(DOCS, "diloco_experiments", "logs")
WORK = os.path.join(ROOT, "out", "diloco_sweep")
STEPS = 500
DP_LINK_MBPS = 100.0


def with_value(flags, name, value):
    out = list(flags)
    out[out.index(name) + 1] = str(value)
    return out


def grid():
    common = base.CPU_COMMON
    common = with_value(common, "--steps", STEPS)
    common = with_value(common, "--warmup-steps", 25)
    common = with_value(common, "--eval-interval", 100)
    common = with_value(common, "--checkpoint-interval", 100)
    common = common + ["--channels", "256", "--stages", "2", "--bottleneck", "resbm", "--ratio", "32",
                       "--replicas", "2"]
    runs = []

    def add(name, seeds, flags):
        for seed in seeds:
            runs.append({"name": f"{name}_s{seed}", "kind": name, "group": "dp", "seed": seed, "C": 256, "S": 2,
                         "flags": common + ["--seed", str(seed)] + flags})

    three = [1, 2, 3]
    add("ddp", three, ["--dp-sync", "step"])
    for H in (10, 50):
        add(f"diloco_H{H}", three, ["--dp-sync", "diloco", "--inner-steps", str(H), "--outer-lr", "0.7",
                                    "--outer-momentum", "0.9"])
    add("diloco_H50_muon", [1], ["--dp-sync", "diloco", "--inner-steps", "50", "--outer-lr", "0.7",
                                 "--outer-momentum", "0.9", "--optimizer", "muon"])
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--only", default="")
    run.add_argument("--budget-minutes", type=float, default=0)
    sub.add_parser("report")
    sub.add_parser("list")
    args = parser.parse_args()
    runs = grid()
    if args.cmd == "run":
        base.do_run(args, runs, logs=LOGS, work=WORK, label="diloco_sweep")
    elif args.cmd == "list":
        for r in runs:
            path = os.path.join(LOGS, r["name"] + ".jsonl")
            print(f"{'done' if base.complete(path, r) else 'todo':7} {r['name']}")
    else:
        report(runs)


if __name__ == "__main__":
    main()
