#!/usr/bin/env python3
"""tools/experiments/diloco_sweep.py: replicas of a ResBM pipeline (R = 2 x S = 2), synchronous data parallelism
against DiLoCo, resumable, with its table and plot written from the committed logs.

    python3 tools/experiments/diloco_sweep.py run [--only REGEX] [--budget-minutes N]
    python3 tools/experiments/diloco_sweep.py time [--only REGEX]
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
  - average_H10: H = 10 with outer lr 1 and momentum 0, i.e. plain parameter averaging every 10 steps;
  - diloco_H50_int8: H = 50 sending int8 changes (--dp-code int8: 1 byte per parameter plus a scale per 256);
  - diloco_H50_muon: the same with Muon as the inner optimizer, once.
The R = 2 runs warm up for 25 steps (the same 51,200 tokens as pipe's 50) and are evaluated every 100 steps, which
are sync steps for both H, on the same 64 x 1,024 held-out tokens.

`run` trains what has no complete log (docs/diloco_experiments/logs/<name>.jsonl), through the one trainer's
local executor (R x S stages in one process; tests/train prove it bitwise equal to R x S ranks under mpirun).
`time` runs every configuration (seed 1) for TIME_STEPS steps over an emulated 100 Mbit/s data-parallel link
(--dp-link-mbps 100: each sync waits for its payload's time on the link, engine/pipeline/replicas.h) and commits
those logs too (docs/diloco_experiments/timing/); run it on an otherwise idle machine.
`report` writes docs/diloco.md and docs/diloco_experiments/val_curves.png from the committed logs.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resbm_sweep as base  # noqa: E402  (the run loop, the log reader, the common flags)

ROOT = base.ROOT
DOCS = base.DOCS
LOGS = os.path.join(DOCS, "diloco_experiments", "logs")
WORK = os.path.join(ROOT, "out", "diloco_sweep")
TIMING = os.path.join(DOCS, "diloco_experiments", "timing")
STEPS = 500
DP_LINK_MBPS = 100.0
TIME_STEPS = 100  # two syncs at H = 50
BASELINE = "resbm_r32_C256_S2_s{seed}"        # the ResBM table's one pipeline at B (AdamW), 1,000 steps
BASELINE_MUON = "resbm_r32_muon_C256_S2_s{seed}"


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
    # What the outer optimizer adds: H = 10 with outer lr 1 and no momentum is plain parameter averaging every 10
    # steps (engine/optim/diloco.h).
    add("average_H10", three, ["--dp-sync", "diloco", "--inner-steps", "10", "--outer-lr", "1", "--outer-momentum",
                               "0"])
    add("diloco_H50_int8", three, ["--dp-sync", "diloco", "--inner-steps", "50", "--outer-lr", "0.7",
                                   "--outer-momentum", "0.9", "--dp-code", "int8"])
    add("diloco_H50_muon", [1], ["--dp-sync", "diloco", "--inner-steps", "50", "--outer-lr", "0.7",
                                 "--outer-momentum", "0.9", "--optimizer", "muon"])
    return runs


# ---------------------------------------------------------------------------------------------------------------
# time: step time over the emulated DP link


def timing_runs(runs):
    """Seed 1 of every configuration, and the one pipeline (R = 1, the same flags as the ResBM table's run)."""
    out = []
    for r in runs:
        if r["seed"] != 1:
            continue
        flags = with_value(r["flags"], "--steps", TIME_STEPS)
        flags = with_value(flags, "--eval-interval", 0)
        flags = with_value(flags, "--checkpoint-interval", 0)
        out.append({"name": r["name"], "flags": flags + ["--dp-link-mbps", str(DP_LINK_MBPS)]})
    pipe = with_value(with_value(with_value(grid()[0]["flags"], "--steps", TIME_STEPS), "--eval-interval", 0),
                      "--checkpoint-interval", 0)
    pipe = with_value(pipe, "--replicas", 1)
    pipe = with_value(pipe, "--warmup-steps", 50)
    pipe = [f for f in pipe if f not in ("--dp-sync", "step")]
    out.insert(0, {"name": "pipe_s1", "flags": pipe})
    return out


def do_time(args, runs):
    if not os.path.exists(base.TRAIN):
        sys.exit(f"error: {base.TRAIN} is missing: build it first with `tools/bazel build //train`")
    os.makedirs(TIMING, exist_ok=True)
    for run in timing_runs(runs):
        if args.only and not __import__("re").search(args.only, run["name"]):
            continue
        out = os.path.join(WORK, "timing", run["name"])
        subprocess.run(["rm", "-rf", out], check=True)
        print(f"== timing {run['name']}", file=sys.stderr, flush=True)
        rc = subprocess.run([base.TRAIN] + run["flags"] + ["--out-dir", out], cwd=ROOT,
                            stdout=subprocess.DEVNULL).returncode
        if rc != 0:
            sys.exit(f"error: timing run {run['name']} exited with {rc}")
        dst = os.path.join(TIMING, run["name"] + ".jsonl")
        with open(os.path.join(out, "log.jsonl")) as f, open(dst + ".tmp", "w") as g:
            g.write(f.read())
        os.replace(dst + ".tmp", dst)


# ---------------------------------------------------------------------------------------------------------------
# report


def row_of(path, steps):
    """Final val loss, the curve by tokens, bytes per token on the boundary and on the DP links, or None."""
    if not os.path.exists(path):
        return None
    config, recs, evals = base.read_log(path)
    if not any(s["step"] == steps for s in recs) or not any(e["step"] == steps for e in evals):
        return None
    flags = config["flags"]
    tokens_per_step = int(flags["batch-size"]) * int(flags["seq-len"]) * int(flags["micro-batches"]) * \
        int(flags.get("replicas", "1"))
    boundary = sum(s.get("bytes_fwd", 0) + s.get("bytes_bwd", 0) + s.get("bytes_tied", 0) for s in recs)
    dp = sum(s.get("bytes_dp", 0) for s in recs)
    tokens = tokens_per_step * len(recs)
    return {
        "val": next(e["val_loss"] for e in evals if e["step"] == steps),
        "curve": sorted((e["step"] * tokens_per_step, e["val_loss"]) for e in evals),
        "boundary_per_token": boundary / tokens,
        "dp_per_token": dp / tokens,
        "syncs": sum(1 for s in recs if s.get("bytes_dp", 0) > 0),
    }


WAN_SIM = os.path.join(ROOT, "bazel-bin", "tools", "wan_sim", "wan_sim")


def simulated_ms(path):
    """tools/wan_sim's step time for the logged run with each replica on machines of its own (the logged compute
    per stage, the DP link the run emulated, boundaries unlimited as in the run), or None without the binary."""
    if not os.path.exists(WAN_SIM):
        return None
    out = subprocess.run([WAN_SIM, "--log", path, "--skip-steps", "10", "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: wan_sim failed on {path}: {out.stderr.strip()}")
    return json.loads(out.stdout)["step_s"] * 1000.0


def timing_of(name):
    """Mean ms per step (after 10 warm-up steps), tokens/s, and wan_sim's ms with the replicas apart, or None."""
    path = os.path.join(TIMING, name + ".jsonl")
    if not os.path.exists(path):
        return None
    config, recs, _ = base.read_log(path)
    ms = [s["ms"] for s in recs if s["step"] > 10]
    if not ms:
        return None
    flags = config["flags"]
    tokens = int(flags["batch-size"]) * int(flags["seq-len"]) * int(flags["micro-batches"]) * \
        int(flags.get("replicas", "1"))
    mean = sum(ms) / len(ms)
    return {"ms": mean, "tokens_per_s": tokens / (mean / 1000.0), "apart_ms": simulated_ms(path)}


def report(runs):
    kinds = []
    for r in runs:
        if r["kind"] not in kinds:
            kinds.append(r["kind"])
    pipe_rows = {}
    for seed in (1, 2, 3):
        for key, pattern in (("pipe", BASELINE), ("pipe_muon", BASELINE_MUON)):
            path = os.path.join(base.LOGS, pattern.format(seed=seed) + ".jsonl")
            row = row_of(path, base.CPU_STEPS)
            if row is not None:
                pipe_rows[(key, seed)] = row
    rows = {r["name"]: row_of(os.path.join(LOGS, r["name"] + ".jsonl"), STEPS) for r in runs}
    lines = []
    out = lines.append
    out("# Replicas of a ResBM pipeline: synchronous data parallelism against DiLoCo")
    out("")
    out("Generated by `python3 tools/experiments/diloco_sweep.py report` from the committed logs in")
    out("`docs/diloco_experiments/logs/` (convergence) and `docs/diloco_experiments/timing/` (step time); the one")
    out("pipeline's rows are the ResBM table's own runs (`docs/resbm_experiments/logs/`). Do not edit by hand.")
    out("")
    out("Setup: byte-level tinyshakespeare, L = 4, C = 256, NH = 4, T = 128, S = 2 stages joined by ResBM r = 32")
    out("(K = 8 fp32 codes), an untied head, AdamW lr 3e-3 (cosine to 10%), weight decay 0.1, clip 1.0; validation")
    out("on 64 x 1,024 held-out bytes. Every row trains on the same 1,024,000 tokens: the one pipeline 1,000 steps")
    out("of B = 8 rows; R = 2 replicas 500 steps of 2 x 8 rows (each replica its own 8 rows of every step).")
    out("DiLoCo: outer Nesterov lr 0.7, momentum 0.9. The local executor ran every run (it equals R x S = 4 mpirun")
    out("ranks bit for bit: tests/pipeline/mpi_replicas_test.cc).")
    out("")
    out("| configuration | seeds | val loss (mean ± s.e.) | vs one pipeline (paired) | boundary B/token | "
        "DP B/token | DP syncs | ms/step @ 100 Mbit/s DP | tokens/s @ 100 Mbit/s | ms/step, replicas apart "
        "(wan_sim) |")
    out("|---|---|---|---|---|---|---|---|---|---|")

    def line(label, vals, diffs, sample, timing):
        mean, se = base.mean_se(vals)
        dmean, dse = base.mean_se(diffs)
        diff = "—" if not diffs else (f"{dmean:+.4f} ± {dse:.4f}" if len(diffs) > 1 else f"{dmean:+.4f}")
        val = f"{mean:.4f} ± {se:.4f}" if len(vals) > 1 else f"{mean:.4f}"
        t_ms = "—" if timing is None else f"{timing['ms']:.0f}"
        t_tps = "—" if timing is None else f"{timing['tokens_per_s']:,.0f}"
        apart = "—" if timing is None or timing["apart_ms"] is None else f"{timing['apart_ms']:.0f}"
        out(f"| {label} | {len(vals)} | {val} | {diff} | {sample['boundary_per_token']:.1f} | "
            f"{sample['dp_per_token']:,.1f} | {sample['syncs']} | {t_ms} | {t_tps} | {apart} |")

    for key, label in (("pipe", "one pipeline, B = 8 (AdamW)"), ("pipe_muon", "one pipeline, B = 8 (Muon)")):
        vals = [pipe_rows[(key, s)]["val"] for s in (1, 2, 3) if (key, s) in pipe_rows]
        if vals:
            line(label, vals, [], pipe_rows[(key, next(s for s in (1, 2, 3) if (key, s) in pipe_rows))],
                 timing_of("pipe_s1") if key == "pipe" else None)
    missing = []
    for kind in kinds:
        chosen = [r for r in runs if r["kind"] == kind]
        done = [r for r in chosen if rows[r["name"]] is not None]
        missing += [r["name"] for r in chosen if rows[r["name"]] is None]
        if not done:
            continue
        ref = "pipe_muon" if "muon" in kind else "pipe"
        vals = [rows[r["name"]]["val"] for r in done]
        diffs = [rows[r["name"]]["val"] - pipe_rows[(ref, r["seed"])]["val"] for r in done
                 if (ref, r["seed"]) in pipe_rows]
        line(f"`{kind}`", vals, diffs, rows[done[0]["name"]], timing_of(f"{kind}_s1"))
    out("")
    out("The paired difference subtracts the one pipeline's validation loss of the same seed (the same initial")
    out("weights); its standard error is over seeds. Bytes per token: boundary = codes and their gradients over the")
    out("stage boundaries (all replicas), DP = what the data-parallel sync sends, each replica's payload once")
    out("(gradients every step, or a DiLoCo change every H steps), both divided by the tokens trained. Step time:")
    out(f"{TIME_STEPS} steps of seed 1 (steps 11-{TIME_STEPS} averaged) with `--dp-link-mbps {DP_LINK_MBPS:g}`, on this")
    out("2-core machine, both replicas in one process (their compute adds up; each sync waits for its payload's")
    out("time on the link, (R - 1) x payload / rate). Replicas apart: `wan_sim --log` on the same timing log, which")
    out("models each replica on machines of its own (every stage's logged compute, the same 100 Mbit/s DP link per")
    out("stage, the boundaries unlimited as in the run, a DiLoCo sync's time spread over its H steps; `tools/bazel")
    out("build //tools/wan_sim` before `report`).")
    if missing:
        out("")
        out("Missing (not run yet): " + ", ".join(missing))
    reading = os.path.join(DOCS, "diloco_experiments", "reading.md")
    if os.path.exists(reading):
        out("")
        with open(reading) as f:
            out(f.read().rstrip())
    out("")
    out("Rerun: `python3 tools/experiments/diloco_sweep.py run`, then `time` (an idle machine), then `report`.")
    path = os.path.join(DOCS, "diloco.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {os.path.relpath(path, ROOT)}")
    plot(runs, rows, pipe_rows)


def plot(runs, rows, pipe_rows):
    """Validation loss against tokens, mean over the seeds each configuration has (PNG via gnuplot)."""
    if shutil.which("gnuplot") is None:
        print("gnuplot not installed: no plot (tools/bazel installs gnuplot-nox)")
        return
    data_dir = os.path.join(WORK, "plot")
    os.makedirs(data_dir, exist_ok=True)
    series = []

    def write(name, curves):
        by_tokens = {}
        for curve in curves:
            for tokens, loss in curve:
                if tokens > 0:  # the step-0 loss (ln 256) would flatten every difference that matters
                    by_tokens.setdefault(tokens, []).append(loss)
        dat = os.path.join(data_dir, name + ".dat")
        with open(dat, "w") as f:
            for tokens in sorted(by_tokens):
                if len(by_tokens[tokens]) == len(curves):
                    f.write(f"{tokens / 1e6} {sum(by_tokens[tokens]) / len(curves)}\n")
        series.append(f"'{dat}' using 1:2 with linespoints title '{name} ({len(curves)} seeds)'")

    for key, name in (("pipe", "one pipeline"), ("pipe_muon", "one pipeline, Muon")):
        pipe = [pipe_rows[(key, s)]["curve"] for s in (1, 2, 3) if (key, s) in pipe_rows]
        if pipe:
            write(name, pipe)
    kinds = []
    for r in runs:
        if r["kind"] not in kinds:
            kinds.append(r["kind"])
    for kind in kinds:
        curves = [rows[r["name"]]["curve"] for r in runs if r["kind"] == kind and rows[r["name"]] is not None]
        if curves:
            write(kind, curves)
    base.gnuplot_png(os.path.join(DOCS, "diloco_experiments", "val_curves.png"),
                     "Validation loss, byte-level tinyshakespeare, C = 256, S = 2 ResBM r = 32, R = 2 replicas",
                     "tokens trained (millions)", series)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--only", default="")
    run.add_argument("--budget-minutes", type=float, default=0)
    tm = sub.add_parser("time")
    tm.add_argument("--only", default="")
    sub.add_parser("report")
    sub.add_parser("list")
    args = parser.parse_args()
    runs = grid()
    if args.cmd == "run":
        base.do_run(args, runs, logs=LOGS, work=WORK, label="diloco_sweep")
    elif args.cmd == "time":
        do_time(args, runs)
    elif args.cmd == "list":
        for r in runs:
            path = os.path.join(LOGS, r["name"] + ".jsonl")
            print(f"{'done' if base.complete(path, r) else 'todo':7} {r['name']}")
    else:
        report(runs)


if __name__ == "__main__":
    main()
