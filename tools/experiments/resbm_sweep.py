#!/usr/bin/env python3
"""tools/experiments/resbm_sweep.py: the ResBM evidence experiment, resumable, with its table written from the logs.

    python3 tools/experiments/resbm_sweep.py run [--only REGEX] [--budget-minutes N] [--grid cpu|d12-gpu]
    python3 tools/experiments/resbm_sweep.py report [--grid cpu|d12-gpu]
    python3 tools/experiments/resbm_sweep.py list [--grid cpu|d12-gpu]

`run` trains every run of the grid that has no complete log yet, one after the other, through the one trainer
(bazel-bin/train/train, the local executor: its losses are bitwise those of one process per stage). A run writes
checkpoints every CHECKPOINT_INTERVAL steps under out/resbm_sweep/<name>/ (not committed), so a stopped sweep
resumes where it stopped (`--resume`, bitwise); when a run finishes, its JSONL log is copied to
docs/resbm_experiments/logs/<name>.jsonl, which is what gets committed. --budget-minutes stops starting new runs
after that many minutes (a run in progress still finishes, or is resumed next time if killed).

`report` reads the committed logs only (no training) and writes docs/resbm_convergence.md (the table, paired
differences against `none` with standard errors over seeds, bytes per token, step time, tokens to reach none's
half-budget loss) and the plots docs/resbm_experiments/*.png (gnuplot). Runs without a log yet are listed as
missing. Every row names the command that reruns it.

The grid `cpu` (the one this 2-core machine runs): byte-level tinyshakespeare (vocabulary 256, so the compute is in
the blocks), L = 4 blocks, NH = 4, T = 128, B = 8 (1,024 tokens per step), 1,000 steps (1.02M tokens, about one
epoch), AdamW lr 3e-3 with 50 warmup steps and cosine decay to 10%, weight decay 0.1, clip 1.0, shuffled batches,
an untied head (so the codes are all that crosses a boundary), validation on 64 x 1,024 = 65,536 held-out tokens.
The grid `d12-gpu` is the same comparison at GPT-2 124M on GPT-2 BPE tinyshakespeare for a machine with a GPU
(documented, not run here).
"""
import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCS = os.path.join(ROOT, "docs")
LOGS = os.path.join(DOCS, "resbm_experiments", "logs")
WORK = os.path.join(ROOT, "out", "resbm_sweep")
TRAIN = os.path.join(ROOT, "bazel-bin", "train", "train")
CHECKPOINT_INTERVAL = 250

# ---------------------------------------------------------------------------------------------------------------
# The grids. A run is (name, group, seed, flags); `group` names the table section it belongs to.

CPU_STEPS = 1000
CPU_COMMON = [
    "--tokenizer", "bytes", "--num-layers", "4", "--num-heads", "4", "--max-seq-len", "128", "--seq-len", "128",
    "--batch-size", "8", "--micro-batches", "1", "--steps", str(CPU_STEPS), "--warmup-steps", "50", "--lr", "3e-3",
    "--final-lr-frac", "0.1", "--weight-decay", "0.1", "--grad-clip", "1.0", "--data-order", "shuffled",
    "--untie-head", "--eval-interval", "125", "--eval-batches", "64", "--sample-interval", "0",
    "--sample-length", "0", "--log-interval", "100", "--checkpoint-interval", str(CHECKPOINT_INTERVAL),
    "--keep-last", "1",
]


def cpu_grid():
    runs = []

    def add(name, group, seeds, flags, C=256, S=2):
        for seed in seeds:
            runs.append({
                "name": f"{name}_C{C}_S{S}_s{seed}",
                "kind": name,
                "group": group,
                "seed": seed,
                "C": C,
                "S": S,
                "flags": CPU_COMMON + ["--channels", str(C), "--stages", str(S), "--seed", str(seed)] + flags,
            })

    three = [1, 2, 3]
    # Every kind at C = 256 (r = 128 is a K = 2 code there), S = 2, AdamW.
    g = "kinds"
    add("none", g, three, ["--bottleneck", "none"])
    add("quant", g, [1], ["--bottleneck", "quant"])
    for r in (8, 32, 128):
        add(f"linear_r{r}", g, three if r == 32 else [1], ["--bottleneck", "linear", "--ratio", str(r)])
        add(f"ae_r{r}", g, [1], ["--bottleneck", "ae", "--ratio", str(r)])
        add(f"resbm_r{r}", g, [1] if r == 8 else three, ["--bottleneck", "resbm", "--ratio", str(r)])
    for r in (32, 128):
        add(f"resbm_orth_r{r}", g, [1], ["--bottleneck", "resbm", "--ratio", str(r), "--bottleneck-identity",
                                        "orthogonal"])
        add(f"resbm_fused_r{r}", g, [1], ["--bottleneck", "resbm", "--ratio", str(r), "--resbm-layout", "fused"])
        add(f"resbm_reinject_r{r}", g, [1], ["--bottleneck", "resbm", "--ratio", str(r), "--reinject-tokens", "copy"])
    # 128x counted in bytes: fp32 at C = 256 is 1,024 bytes per token; int8 K = 4 plus its 4-byte scale is 8.
    add("resbm_int8_K4", g, [1], ["--bottleneck", "resbm", "--code-width", "4", "--code-dtype", "int8"])
    # Muon (the paper's best results use it).
    g = "muon"
    for name, flags in (("none", ["--bottleneck", "none"]), ("resbm_r32", ["--bottleneck", "resbm", "--ratio", "32"]),
                        ("resbm_r128", ["--bottleneck", "resbm", "--ratio", "128"])):
        add(name + "_muon", g, [1], flags + ["--optimizer", "muon"])
    # Subspace Networks (the peer method, --bottleneck ssn) at the bytes per token of resbm r = 32 and r = 128: the
    # same K on the same fp32 wire. Without and with the parameter match (--ssn-match-params widens its MLPs back to
    # `none`'s parameter count); Muon once per r, in the Muon table.
    for r in (32, 128):
        add(f"ssn_r{r}", "ssn", three, ["--bottleneck", "ssn", "--ratio", str(r)])
        add(f"ssn_match_r{r}", "ssn", [1], ["--bottleneck", "ssn", "--ratio", str(r), "--ssn-match-params"])
        add(f"ssn_r{r}_muon", "muon", [1], ["--bottleneck", "ssn", "--ratio", str(r), "--optimizer", "muon"])
    # S = 4 (one block per stage): three boundaries; re-injection tables on the middle stages start at zeros or wte.
    g = "stages4"
    add("none", g, [1], ["--bottleneck", "none"], S=4)
    add("resbm_r32", g, [1], ["--bottleneck", "resbm", "--ratio", "32"], S=4)
    add("resbm_r128", g, [1], ["--bottleneck", "resbm", "--ratio", "128"], S=4)
    add("resbm_reinject_zeros_r128", g, [1], ["--bottleneck", "resbm", "--ratio", "128", "--reinject-tokens",
                                             "zeros"], S=4)
    add("resbm_reinject_copy_r128", g, [1], ["--bottleneck", "resbm", "--ratio", "128", "--reinject-tokens",
                                            "copy"], S=4)
    # Width trend at fixed r: C = 128 and 384 beside the C = 256 runs above (r = 128 needs C >= 256 for K >= 2).
    g = "width"
    add("none", g, three, ["--bottleneck", "none"], C=128)
    add("resbm_r32", g, three, ["--bottleneck", "resbm", "--ratio", "32"], C=128)
    # C = 384 costs 2.3x a C = 256 run: two seeds each (a standard error, if a wide one).
    add("none", g, [1, 2], ["--bottleneck", "none"], C=384)
    add("resbm_r32", g, [1, 2], ["--bottleneck", "resbm", "--ratio", "32"], C=384)
    add("resbm_r128", g, [1, 2], ["--bottleneck", "resbm", "--ratio", "128"], C=384)
    return runs


def d12_gpu_grid():
    """GPT-2 124M (d12) on GPT-2 BPE tinyshakespeare, bf16 on one GPU: the same comparison at the width the paper's
    claim is about. C = 768: r = 32 is K = 24, r = 128 is K = 6; int8 K = 20 + a 4-byte scale is exactly 128x of
    fp32's 3,072 bytes per token. 2,000 steps of 16 x 1,024 tokens (33M tokens)."""
    common = ["--preset", "d12", "--device", "cuda", "--dtype", "bf16", "--batch-size", "16", "--seq-len", "1024",
              "--steps", "2000", "--warmup-steps", "100", "--lr", "6e-4", "--final-lr-frac", "0.1",
              "--weight-decay", "0.1", "--data-order", "shuffled", "--untie-head", "--eval-interval", "250",
              "--eval-batches", "8", "--sample-length", "0", "--checkpoint-interval", "500", "--keep-last", "1",
              "--stages", "2"]
    runs = []
    for seed in (1, 2, 3):
        for name, flags in (("none", ["--bottleneck", "none"]),
                            ("resbm_r32", ["--bottleneck", "resbm", "--ratio", "32"]),
                            ("resbm_r128", ["--bottleneck", "resbm", "--ratio", "128"]),
                            ("resbm_int8_K20", ["--bottleneck", "resbm", "--code-width", "20", "--code-dtype",
                                                "int8"])):
            runs.append({"name": f"d12_{name}_s{seed}", "kind": name, "group": "d12", "seed": seed, "C": 768,
                         "S": 2, "flags": common + ["--seed", str(seed)] + flags})
    return runs


GRIDS = {"cpu": cpu_grid, "d12-gpu": d12_gpu_grid}
SETUP = {
    "cpu": "Setup (grid `cpu`, 2 CPU cores): byte-level tinyshakespeare (vocabulary 256: the compute is in the blocks,\n"
           "where the bottleneck sits), L = 4 blocks, NH = 4, T = 128, B = 8 (1,024 tokens per step), 1,000 steps\n"
           "(1.02M tokens, about one epoch), AdamW lr 3e-3, 50 warmup steps, cosine decay to 10%, weight decay 0.1,\n"
           "clip 1.0, shuffled batches, an untied head (the codes are all that crosses a boundary), the local executor\n"
           "(bitwise the losses of one process per stage), validation on 64 x 1,024 = 65,536 held-out tokens.",
    "d12-gpu": "Setup (grid `d12-gpu`, one GPU): GPT-2 124M on GPT-2 BPE tinyshakespeare, bf16, 2,000 steps of\n"
               "16 x 1,024 tokens, AdamW lr 6e-4, 100 warmup steps, cosine to 10%, an untied head, S = 2.",
}

# ---------------------------------------------------------------------------------------------------------------
# Logs


def read_log(path):
    """The JSONL records of a run log: (config, steps, evals) with steps/evals as lists of dicts."""
    config, steps, evals = None, [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            kind = rec.get("type")
            if kind == "config":
                config = rec
            elif kind == "step":
                steps.append(rec)
            elif kind == "eval":
                evals.append(rec)
    return config, steps, evals


def steps_of(run):
    flags = run["flags"]
    return int(flags[flags.index("--steps") + 1])


def complete(path, run):
    """A log is complete when it has the last step and the validation loss at it."""
    if not os.path.exists(path):
        return False
    _, steps, evals = read_log(path)
    last = steps_of(run)
    return any(s["step"] == last for s in steps) and any(e["step"] == last for e in evals)


def command(run, label="resbm_sweep"):
    return ["bazel-bin/train/train"] + run["flags"] + ["--out-dir", f"out/{label}/{run['name']}"]


# ---------------------------------------------------------------------------------------------------------------
# run


def do_run(args, runs, logs=LOGS, work=WORK, label="resbm_sweep"):
    """Trains every run without a complete log in `logs` (work: checkpoints and the private binary)."""
    if not os.path.exists(TRAIN):
        sys.exit(f"error: {TRAIN} is missing: build it first with `tools/bazel build //train`")
    os.makedirs(logs, exist_ok=True)
    # A private copy of the binary, so that a rebuild during a long sweep cannot mix two engines within one run;
    # each log gets a sidecar naming the commit it was trained with.
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    binary = os.path.join(work, "bin", "train-" + commit)
    os.makedirs(os.path.dirname(binary), exist_ok=True)
    if not os.path.exists(binary):
        shutil.copyfile(TRAIN, binary + ".tmp")
        os.chmod(binary + ".tmp", 0o755)
        os.replace(binary + ".tmp", binary)
    pattern = re.compile(args.only) if args.only else None
    start = time.time()
    # Seed 1 of every cell first, then the other seeds: a sweep stopped half way still covers every row. The widest
    # model (C = 384, about 2.3x the compute of C = 256) goes last within each seed.
    todo = sorted((r for r in runs if (pattern is None or pattern.search(r["name"]))),
                  key=lambda r: (r["seed"], r["C"] > 256))
    for run in todo:
        log = os.path.join(logs, run["name"] + ".jsonl")
        if complete(log, run):
            continue
        if args.budget_minutes and time.time() - start > 60 * args.budget_minutes:
            print(f"budget of {args.budget_minutes} minutes spent; run again to continue", file=sys.stderr)
            return
        out = os.path.join(work, run["name"])
        cmd = [binary] + run["flags"] + ["--out-dir", out]
        if os.path.isdir(os.path.join(out, "checkpoints")) and os.listdir(os.path.join(out, "checkpoints")):
            cmd.append("--resume")
        print(f"== {run['name']}: {' '.join(command(run, label)[1:])}", file=sys.stderr, flush=True)
        t0 = time.time()
        rc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
        if rc != 0:
            sys.exit(f"error: {run['name']} exited with {rc}; its output directory is {out}")
        produced = os.path.join(out, "log.jsonl")
        if not complete(produced, run):
            sys.exit(f"error: {run['name']} finished without its last step and validation loss in {produced}")
        with open(log + ".meta.tmp", "w") as f:
            json.dump({"commit": commit, "seconds": round(time.time() - t0), "host_cpus": os.cpu_count(),
                       "resumed": "--resume" in cmd}, f)
            f.write("\n")
        os.replace(log + ".meta.tmp", log[:-len(".jsonl")] + ".meta.json")
        shutil.copyfile(produced, log + ".tmp")
        os.replace(log + ".tmp", log)
        print(f"   done in {time.time() - t0:.0f} s -> {os.path.relpath(log, ROOT)}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# report


def summarise(run):
    """The row of one completed run, or None when its log is missing or incomplete."""
    path = os.path.join(LOGS, run["name"] + ".jsonl")
    if not complete(path, run):
        return None
    config, steps, evals = read_log(path)
    last = steps_of(run)
    tail = [s["loss"] for s in steps if s["step"] > last - 50]
    tokens_per_step = 1024 if run["group"] != "d12" else 16 * 1024
    ms = sorted(s["ms"] for s in steps if s["step"] > 10)
    fwd = steps[-1].get("bytes_fwd", steps[-1].get("fwd_bytes", 0))
    bwd = steps[-1].get("bytes_bwd", steps[-1].get("bwd_bytes", 0))
    other = steps[-1].get("tied_bytes", 0)
    return {
        "train": sum(tail) / len(tail),
        "val": next(e["val_loss"] for e in evals if e["step"] == last),
        "curve": sorted((e["step"], e["val_loss"]) for e in evals),
        "bytes_codes": (fwd + bwd) / tokens_per_step,
        "bytes_other": other / tokens_per_step,
        "ratio": steps[-1].get("compression", steps[-1].get("ratio_fwd", 1.0)),
        "ms": ms[len(ms) // 2] if ms else float("nan"),
        "tokens_per_step": tokens_per_step,
    }


def steps_to_reach(curve, target):
    """The first step at which the validation curve reaches `target`, linearly interpolated between evaluations."""
    prev = None
    for step, loss in curve:
        if loss <= target:
            if prev is None or prev[1] == loss:
                return step
            s0, l0 = prev
            return s0 + (step - s0) * (l0 - target) / (l0 - loss)
        prev = (step, loss)
    return None


def mean_se(values):
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return values[0], float("nan")
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def fmt(x, digits=4):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


# Sections whose runs share the `none` runs of the "kinds" section as their baseline (same C, S, seed, AdamW).
SHARED_BASELINE = ("kinds", "width", "ssn")


def do_report(args, runs):
    rows = {r["name"]: summarise(r) for r in runs}
    missing = [r["name"] for r in runs if rows[r["name"]] is None]
    # Cells: (group, kind, C, S) -> runs over seeds.
    cells = {}
    for r in runs:
        cells.setdefault((r["group"], r["kind"], r["C"], r["S"]), []).append(r)

    def baseline(group, C, S, seed):
        for r in runs:
            if r["kind"] in ("none", "none_muon") and r["C"] == C and r["S"] == S and r["seed"] == seed and \
                    (r["group"] == group or (group in SHARED_BASELINE and r["group"] in SHARED_BASELINE)) and \
                    (("muon" in r["kind"]) == (group == "muon")):
                return rows[r["name"]]
        return None

    lines = []
    out = lines.append
    out("# ResBM against its baselines, from the committed logs")
    out("")
    out("Written by `python3 tools/experiments/resbm_sweep.py report` from `docs/resbm_experiments/logs/*.jsonl`")
    out("(each log's first line holds the run's full configuration). Rerun a row: its command below, or")
    out("`python3 tools/experiments/resbm_sweep.py run --only '<name>'` (resumable; `list` prints every name).")
    out("")
    out(SETUP[args.grid])
    out("")
    reading = os.path.join(DOCS, "resbm_experiments", f"reading_{args.grid}.md")
    if os.path.exists(reading):  # the plain statements of what the table shows, written by hand from it
        with open(reading) as f:
            out(f.read().rstrip("\n"))
        out("")
    out("Columns: train loss = mean of the last 50 steps; val = validation loss at the last step (65,536 tokens);")
    out("gap = val minus `none`'s val on the same seed (same initialisation of shared weights, same batches), mean ±")
    out("standard error over the seeds (— with one seed); codes B/tok = bytes of codes and code gradients on the")
    out("links per training token (both directions, all boundaries); other B/tok = everything else on the links (0:")
    out("the head is untied, nothing else crosses); ratio = measured forward compression against the fp32 stream;")
    out("ms/step = median on this 2-core machine (shared with builds: read it as a rough cost); tokens to half =")
    out("tokens the run needed to reach the validation loss `none` had after half the budget.")
    out("")
    titles = {"kinds": "Every kind (C = 256, S = 2, AdamW)", "muon": "Muon (C = 256, S = 2)",
              "stages4": "S = 4 (C = 256, one block per stage)", "width": "Width trend at fixed r (S = 2, AdamW)",
              "ssn": "Subspace Networks against ResBM at equal bytes per token (C = 256, S = 2, AdamW)",
              "d12": "d12 on a GPU (bf16, GPT-2 BPE)"}
    for group in ("kinds", "ssn", "muon", "stages4", "width", "d12"):
        keys = [k for k in cells if k[0] == group]
        if group == "ssn":  # beside the resbm rows at the same bytes, and none
            keys = [k for k in cells if k[0] == "kinds" and k[1] in ("none", "resbm_r32", "resbm_r128")] + keys
        if group == "width":
            keys += [k for k in cells if k[0] == "kinds" and k[1] in ("none", "resbm_r32", "resbm_r128")]
            keys.sort(key=lambda k: (k[2], k[1] != "none", k[1]))
        if not keys:
            continue
        out(f"## {titles[group]}")
        out("")
        out("| run | C | S | seeds | train loss | val loss | gap to none | codes B/tok | other B/tok | ratio | "
            "ms/step | tokens to half |")
        out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in keys:
            _, kind, C, S = key
            done = [(r, rows[r["name"]]) for r in cells[key] if rows[r["name"]] is not None]
            if not done:
                out(f"| {kind} | {C} | {S} | 0 of {len(cells[key])} | (not run yet) | | | | | | | |")
                continue
            tr, _ = mean_se([s["train"] for _, s in done])
            va, va_se = mean_se([s["val"] for _, s in done])
            gaps, reach = [], []
            for r, s in done:
                base = baseline(key[0], C, S, r["seed"])
                if base is not None and kind not in ("none", "none_muon"):
                    gaps.append(s["val"] - base["val"])
                if base is not None:
                    half = dict(base["curve"]).get(steps_of(r) // 2)
                    if half is None:  # no evaluation exactly at half: interpolate the baseline's curve
                        c = base["curve"]
                        half = next((l0 + (l1 - l0) * (steps_of(r) // 2 - s0) / (s1 - s0)
                                     for (s0, l0), (s1, l1) in zip(c, c[1:]) if s0 <= steps_of(r) // 2 <= s1), None)
                    st = steps_to_reach(s["curve"], half) if half is not None else None
                    reach.append(st * s["tokens_per_step"] if st is not None else None)
            gap, gap_se = mean_se(gaps)
            gap_cell = "—" if not gaps else (f"{gap:+.4f}" + ("" if math.isnan(gap_se) else f" ± {gap_se:.4f}"))
            s0 = done[0][1]
            reach_ok = [x for x in reach if x is not None]
            reach_cell = "not reached" if reach and not reach_ok else (
                f"{statistics.mean(reach_ok) / 1e3:.0f}k" if reach_ok else "—")
            if reach_ok and len(reach_ok) < len(reach):
                reach_cell += f" ({len(reach) - len(reach_ok)} not reached)"
            va_cell = fmt(va) + ("" if math.isnan(va_se) else f" ± {va_se:.4f}")
            out(f"| {kind} | {C} | {S} | {len(done)} | {fmt(tr)} | {va_cell} | {gap_cell} | "
                f"{s0['bytes_codes']:.1f} | {s0['bytes_other']:.1f} | {s0['ratio']:.1f} | {s0['ms']:.0f} | "
                f"{reach_cell} |")
        out("")
    decoder_fix_section(out)
    if missing:
        out(f"Not run yet ({len(missing)}): " + ", ".join(missing) + ".")
        out("")
    out("Commands (one per run; `--out-dir` holds its checkpoints, the log is then copied to the logs folder):")
    out("")
    out("```")
    for r in runs:
        out(" ".join(command(r)))
    out("```")
    path = os.path.join(DOCS, "resbm_convergence.md") if args.grid == "cpu" else \
        os.path.join(DOCS, "resbm_experiments", f"{args.grid}.md")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(runs) - len(missing)} of {len(runs)} runs)")
    plot(runs, rows)


DECODER_FIX = os.path.join(DOCS, "resbm_experiments", "decoder_fix")


def decoder_fix_section(out):
    """The decoder fix measured against the old form: the same run (the earlier convergence configuration: tiny
    preset with GPT-2 BPE, C = 128, S = 2, 300 steps of 512 tokens, AdamW lr 1e-3 constant, seed 1337) built from the
    commit before the fix (d0fe578) and after it. Logs in docs/resbm_experiments/decoder_fix/ (that trainer's format:
    {"step", "val_loss"} lines)."""
    pairs = []
    for kind in ("ae", "resbm"):
        vals = {}
        for form in ("old", "fixed"):
            path = os.path.join(DECODER_FIX, f"{kind}_r128_{form}.jsonl")
            if os.path.exists(path):
                with open(path) as f:
                    evals = [json.loads(line) for line in f if '"val_loss"' in line]
                if evals:
                    vals[form] = evals[-1]["val_loss"]
        if len(vals) == 2:
            pairs.append((kind, vals["old"], vals["fixed"]))
    if not pairs:
        return
    out("## The decoder fix against the old form")
    out("")
    out("The old decoder normalised the code (a LayerNorm over its K channels; at K = 1 its branch was a constant).")
    out("One pair per kind, the earlier convergence configuration (tiny preset, GPT-2 BPE, C = 128, S = 2, K = 1,")
    out("300 steps of 512 tokens, AdamW lr 1e-3 constant, seed 1337), built at d0fe578 (old) and after the fix;")
    out("one seed each, so differences below ~0.05 are within noise at this size.")
    out("")
    out("| kind, r = 128 (K = 1) | val loss, old decoder | val loss, fixed decoder | change |")
    out("|---|---:|---:|---:|")
    for kind, old, new in pairs:
        out(f"| {kind} | {old:.4f} | {new:.4f} | {new - old:+.4f} |")
    out("")


def plot(runs, rows):
    """Validation curves of seed 1 of each kind at C = 256, S = 2 (PNG via gnuplot, when installed)."""
    if shutil.which("gnuplot") is None:
        print("gnuplot not installed: no plot (tools/bazel installs gnuplot-nox)")
        return
    chosen = [r for r in runs if r["group"] == "kinds" and r["seed"] == 1 and rows[r["name"]] is not None]
    if not chosen:
        return
    data_dir = os.path.join(WORK, "plot")
    os.makedirs(data_dir, exist_ok=True)
    series = []
    for r in chosen:
        dat = os.path.join(data_dir, r["kind"] + ".dat")
        with open(dat, "w") as f:
            for step, loss in rows[r["name"]]["curve"]:
                if step > 0:  # the step-0 loss (ln 256 = 5.5) would flatten every difference that matters
                    f.write(f"{step} {loss}\n")
        series.append(f"'{dat}' using 1:2 with linespoints title '{r['kind']}'")
    gnuplot_png(os.path.join(DOCS, "resbm_experiments", "val_curves_C256_S2.png"),
                "Validation loss, byte-level tinyshakespeare, C = 256, S = 2, seed 1", "step (1,024 tokens each)",
                series)


def gnuplot_png(png, title, xlabel, series):
    """Validation-loss curves (gnuplot `plot` clauses) into a PNG."""
    script = "\n".join([
        "set terminal pngcairo size 1100,700 noenhanced font 'Sans,11'",  # names keep their underscores
        f"set output '{png}'",
        f"set title '{title}'",
        f"set xlabel '{xlabel}'", "set ylabel 'validation loss (nats per byte)'",
        "set key outside right", "set grid",
        "plot " + ", ".join(series),
    ])
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"wrote {os.path.relpath(png, ROOT)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "report", "list"])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="cpu")
    parser.add_argument("--only", help="regular expression: only the runs whose name matches")
    parser.add_argument("--budget-minutes", type=float, default=0, help="start no new run after this long")
    args = parser.parse_args()
    runs = GRIDS[args.grid]()
    if args.action == "list":
        for r in runs:
            path = os.path.join(LOGS, r["name"] + ".jsonl")
            print(("done    " if complete(path, r) else "pending ") + r["name"])
    elif args.action == "run":
        do_run(args, runs)
    else:
        do_report(args, runs)


if __name__ == "__main__":
    main()
