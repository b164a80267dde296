#!/usr/bin/env python3
"""tools/experiments/wan_sim_score.py: the score that counts, time to a target validation loss over slow links.

    tools/bazel build //train //tools/wan_sim && python3 tools/experiments/wan_sim_score.py  # measures what has no compute log yet, writes the tables
    python3 tools/experiments/wan_sim_score.py --report   # the tables from the committed logs only

T = (steps to reach the target validation loss) x (seconds per step), for every configuration of the ResBM sweep at
C = 256, S = 2 whose logs are committed (docs/resbm_experiments/logs/*.jsonl: byte-level tinyshakespeare, 4 blocks,
M = 1; more land as the sweep goes on, and the tables follow them). One row per configuration: its steps to target
are the mean over its seeds (a seed that never reaches the target is counted and named), its compute is measured
on its lowest seed's configuration. Steps come from the run's evaluations (every 125 steps,
linearly interpolated between two evaluations); the target is the validation loss `none` reaches at half the budget
(step 500, the mean over its seeds). Seconds per step come from tools/wan_sim, over links of 10, 100 and 1000 Mbit/s per node
with 50 ms one way, node mode (a home connection: a stage's one downlink carries codes and gradients):

(a) the CPU model: each run's configuration trained again for a few steps (the local executor: the sweep's logs
    predate the per-stage phase times), its log committed under docs/wan_sim/compute_logs/; the bytes per message
    are those the engine counted. The micro-batch count does not change the gradient (the same batch, accumulated),
    so T is also given at the fastest M (dividing B = 8) and schedule wan_sim finds.
(b) an internet shape: 8 stages of one d1024 block each (T = 1024 tokens), 1F1B, a batch of 512 x 1024 tokens in 64
    micro-batches of 8 sequences, 200 Mbit/s and 50 ms per node, bf16 codes (2 bytes per channel; an int8 code keeps
    its 1 byte plus a 4-byte scale per token), the code width C/r of each run's bottleneck. Compute per stage: the
    block's forward FLOPs per token, 24 C^2 (matmuls) + 4 T C (attention), backward twice that, on an H100 (989 dense
    bf16 TFLOP/s) at an assumed 40% MFU; the embedding, head, bottleneck modules and optimizer are left out. Steps
    to target are the CPU model's: an assumption that the kinds' relative convergence carries over to this shape.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SWEEP_LOGS = os.path.join(ROOT, "docs", "resbm_experiments", "logs")
COMPUTE_LOGS = os.path.join(ROOT, "docs", "wan_sim", "compute_logs")
DOC = os.path.join(ROOT, "docs", "wan_sim.md")
WORK = os.path.join(ROOT, "out", "wan_sim_score")
TRAIN = os.path.join(ROOT, "bazel-bin", "train", "train")
WAN_SIM = os.path.join(ROOT, "bazel-bin", "tools", "wan_sim", "wan_sim")

RATES = (10, 100, 1000)  # Mbit/s, (a)
LATENCY_MS = 50
COMPUTE_STEPS = 24       # steps of each compute-measuring run; the first SKIP are warm-up
SKIP = 4

# (b): the internet shape.
C, T_SEQ, STAGES, MICRO, TOKENS = 1024, 1024, 8, 64, 512 * 1024
H100_FLOPS, MFU = 989e12, 0.40
INTERNET_MBPS = 200


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def sweep_runs():
    runs = []
    for path in sorted(glob.glob(os.path.join(SWEEP_LOGS, "*.jsonl"))):
        recs = records(path)
        config = next(r for r in recs if r["type"] == "config")
        evals = [(r["step"], r["val_loss"]) for r in recs if r["type"] == "eval"]
        steps = config["flags"]["steps"]
        if not evals or evals[-1][0] < int(steps):
            continue  # an unfinished run
        runs.append({"name": os.path.basename(path)[:-6], "flags": config["flags"], "evals": evals})
    return runs


def steps_to(evals, target):
    """First step at which the validation loss reaches target, linear between evaluations; None if never."""
    for (s0, l0), (s1, l1) in zip(evals, evals[1:]):
        if l1 <= target:
            return s1 if l0 == l1 else s0 + (s1 - s0) * (l0 - target) / (l0 - l1)
    return None


def measure_compute(run):
    """A short run of the same configuration that logs per-stage phase times; its log is kept for --report."""
    dest = os.path.join(COMPUTE_LOGS, run["name"] + ".jsonl")
    if os.path.exists(dest):
        return dest
    os.makedirs(COMPUTE_LOGS, exist_ok=True)
    out = os.path.join(WORK, run["name"])
    shutil.rmtree(out, ignore_errors=True)
    overrides = {"steps": str(COMPUTE_STEPS), "stop-after": "0", "eval-interval": "0", "checkpoint-interval": "0",
                 "sample-interval": "0", "sample-length": "0", "resume": "false", "out-dir": out,
                 "run-name": "default", "data-dir": "data_cache/tinyshakespeare"}
    flags = dict(run["flags"], **overrides)
    cmd = [TRAIN] + [f"--{k}={v}" for k, v in flags.items()]
    print("measure:", run["name"], flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    shutil.copy(os.path.join(out, "log.jsonl"), dest)
    return dest


def wan_sim(args):
    out = subprocess.run([WAN_SIM] + args + ["--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def fmt_time(seconds):
    if seconds is None:
        return "not reached"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def code_of(flags):
    """(code width K at C = 1024, wire dtype) of a run's bottleneck at the internet shape."""
    kind, ratio = flags["bottleneck"], int(flags.get("ratio", "1"))
    if kind == "none":
        return C, "bf16"
    if kind == "quant":
        return C, "int8"
    # --code-width is a width at the run's C: scaled to the shape's C, so that it keeps its share of the stream.
    width = int(flags.get("code-width", "0"))
    K = width * C // int(flags["channels"]) if width else C // ratio
    return K, "int8" if flags.get("code-dtype") == "int8" else "bf16"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="store_true", help="only the committed logs: no measuring run")
    args = ap.parse_args()
    for binary in (TRAIN, WAN_SIM):
        if not os.path.exists(binary):
            sys.exit(f"error: {binary} is missing: build it first, tools/bazel build //train //tools/wan_sim")
    # The grid's width and depth trends (C = 128, 384; S = 4) have their own `none` and are left out: one target.
    runs = [r for r in sweep_runs() if r["flags"]["channels"] == "256" and r["flags"]["stages"] == "2"]
    # The target: the validation loss `none` (the full stream, uncompressed) reaches at half the budget, the mean over
    # its seeds (as docs/resbm_convergence.md measures tokens to it); a kind that needs more than twice none's steps
    # may not reach it at all.
    nones = [r for r in runs if r["flags"]["bottleneck"] == "none" and r["flags"]["channels"] == "256" and
             r["flags"]["stages"] == "2" and r["flags"].get("optimizer", "adamw") == "adamw"]
    half = int(nones[0]["flags"]["steps"]) // 2
    target = sum(dict(r["evals"])[half] for r in nones) / len(nones)
    for r in runs:
        r["steps"] = steps_to(r["evals"], target)
    # One row per configuration (the run name without its seed), in the order the sweep's logs sort.
    configs = {}
    for r in runs:
        configs.setdefault(re.sub(r"_s[0-9]+$", "", r["name"]), []).append(r)
    rows = []
    for name, seeds in configs.items():
        reached = [r["steps"] for r in seeds if r["steps"] is not None]
        first = min(seeds, key=lambda r: int(r["flags"]["seed"]))
        rows.append({"name": name if len(seeds) == 1 else f"{name} ({len(seeds)} seeds)", "run": first,
                     "flags": first["flags"], "val": sum(r["evals"][-1][1] for r in seeds) / len(seeds),
                     # Steps to target: the mean over the seeds, when every seed reaches it.
                     "steps": sum(reached) / len(reached) if len(reached) == len(seeds) else None,
                     "missed": len(seeds) - len(reached)})

    # (a) the CPU model.
    head = ["| run | final val loss | steps to target |"] + [f" T at {m} Mbit/s |" for m in RATES] + \
        [f" T at {RATES[0]} Mbit/s, fastest M and schedule |"]
    rows_a = ["".join(head), "| --- | ---: | ---: |" + " ---: |" * (len(RATES) + 1)]
    for r in rows:
        log = os.path.join(COMPUTE_LOGS, r["run"]["name"] + ".jsonl")
        if not args.report:
            log = measure_compute(r["run"])
        if not os.path.exists(log):
            rows_a.append(f"| {r['name']} | (no compute log) |")
            continue
        cells, fastest = [], ""
        for mbps in RATES:
            p = wan_sim(["--log", log, "--skip-steps", str(SKIP), "--link-mode", "node", "--up-mbps", str(mbps),
                         "--latency-ms", str(LATENCY_MS), "--sweep", "1,2,4,8"])
            t = None if r["steps"] is None else r["steps"] * p["step_s"]
            cells.append(f"{fmt_time(t)} ({p['step_s']:.3f} s/step)")
            if mbps == RATES[0]:
                f = p["fastest"]
                tf = None if r["steps"] is None else r["steps"] * f["step_s"]
                fastest = f"{fmt_time(tf)} (M={f['micro_batches']} {f['schedule']}, {f['step_s']:.3f} s/step)"
        steps = f"{r['steps']:.0f}" if r["steps"] is not None else (
            "-" if r["missed"] == 0 else f"- ({r['missed']} seed(s) never reach it)")
        rows_a.append(f"| {r['name']} | {r['val']:.4f} | {steps} | " + " | ".join(cells) + f" | {fastest} |")

    # (b) the internet shape.
    fwd_flops = TOKENS * (24 * C * C + 4 * T_SEQ * C)
    fwd_ms = 1e3 * fwd_flops / (H100_FLOPS * MFU)
    rows_b = ["| run | code on the wire | bytes per micro-batch | s/step | T to target |",
              "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        K, dtype = code_of(r["flags"])
        p = wan_sim(["--stages", str(STAGES), "--micro-batches", str(MICRO), "--schedule", "1f1b",
                     "--forward-ms", f"{fwd_ms:.6f}", "--backward-ms", f"{2 * fwd_ms:.6f}", "--rows", str(TOKENS),
                     "--code-width", str(K), "--wire-dtype", dtype, "--link-mode", "node",
                     "--up-mbps", str(INTERNET_MBPS), "--latency-ms", str(LATENCY_MS), "--sweep", "64"])
        per_micro = (TOKENS // MICRO) * (K * (2 if dtype == "bf16" else 1) + (4 if dtype == "int8" else 0))
        t = None if r["steps"] is None else r["steps"] * p["step_s"]
        rows_b.append(f"| {r['name']} | K={K} {dtype} | {per_micro / 2**20:.2f} MiB | {p['step_s']:.2f} | "
                      f"{fmt_time(t)} |")

    note_a = (f"Target validation loss {target:.4f}: `none`'s at step {half} (mean of {len(nones)} seed(s)); "
              f"{len(rows)} configurations from {len(runs)} finished runs. Compute measured on a 2-core machine with a niced background job.\n")
    note_b = (f"Assumed H100 compute per stage and step: forward {fwd_ms:.1f} ms, backward {2 * fwd_ms:.1f} ms "
              f"({fwd_flops / 1e12:.2f} TFLOP forward at {MFU:.0%} of 989 TFLOP/s). Same target and steps as (a).\n")
    text_a = note_a + "\n" + "\n".join(rows_a) + "\n"
    text_b = note_b + "\n" + "\n".join(rows_b) + "\n"
    write_section("score-cpu", text_a)
    write_section("score-internet", text_b)
    print(text_a + "\n" + text_b)


def write_section(marker, body):
    """Replaces what lies between <!-- marker: begin --> and <!-- marker: end --> in docs/wan_sim.md."""
    text = open(DOC).read()
    begin, end = f"<!-- {marker}: begin -->", f"<!-- {marker}: end -->"
    a, b = text.index(begin) + len(begin), text.index(end)
    open(DOC, "w").write(text[:a] + "\n" + body + text[b:])


if __name__ == "__main__":
    sys.exit(main())
