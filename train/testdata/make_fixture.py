#!/usr/bin/python3
"""train/testdata/make_fixture.py: the fixture of the trainer's oracle test (tests/train/llmc_oracle_test.cc).

Run with Debian's python3 (it has python3-torch), from the workspace root:

    /usr/bin/python3 train/testdata/make_fixture.py --outdir train/testdata

Writes, all small and deterministic (seeded):
  oracle_model.bin    a random GPT-2 (L=2, NH=2, C=32, maxT=64, V=500, Vp=512) in llm.c's fp32 model format
  oracle_train.bin    an llm.c token shard (magic 20240520), 12 batches of B=4 x T=64 read sequentially
  oracle_val.bin      another shard, 6 batches
  oracle_expected.txt line 1: the mean loss of the first 5 validation batches at the initial weights; lines 2-11:
                      the training loss of each of the first 10 steps (before that step's update), with AdamW
                      (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0, no clipping, constant lr), batches read
                      in order as llm.c's loader does (batch j, row b = tokens[(j*B+b)*T : (j*B+b)*T + T + 1]).

The model here is written from the GPT-2 definition with PyTorch's own layers and optimizer (torch.optim.AdamW),
independently of the C++ engine and of tools/reference/gpt2_oracle.py, and runs in float64, so the expected values
are the exact answer for the fp32 weights in the file, not another fp32 computation's rounding.
"""

import argparse
import math
import os
import struct

import torch
import torch.nn.functional as F

L, NH, C, MAXT, V, VP = 2, 2, 32, 64, 500, 512
B, T = 4, 64
TRAIN_BATCHES, VAL_BATCHES = 12, 6
STEPS, EVAL_BATCHES = 10, 5


def layout():
    """llm.c's tensor order and shapes."""
    return [
        ("wte", (VP, C)), ("wpe", (MAXT, C)),
        ("ln1w", (L, C)), ("ln1b", (L, C)), ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
        ("attprojw", (L, C, C)), ("attprojb", (L, C)), ("ln2w", (L, C)), ("ln2b", (L, C)),
        ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)), ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
        ("lnfw", (C,)), ("lnfb", (C,)),
    ]


def random_model(gen):
    """fp32 weights: GPT-2-like scales, with gains and biases perturbed so every tensor matters."""
    p = {}
    for name, shape in layout():
        if name.endswith("w") and name.startswith("ln"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name in ("wte", "wpe") or name.endswith("w"):
            t = 0.08 * torch.randn(shape, generator=gen)
        else:
            t = 0.02 * torch.randn(shape, generator=gen)
        p[name] = t.float()
    p["wte"][V:] = 0.0  # llm.c keeps the padding rows at zero
    return p


def write_model(path, p):
    header = [0] * 256
    header[:8] = [20240326, 3, MAXT, V, L, NH, C, VP]
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        for name, _ in layout():
            f.write(p[name].contiguous().numpy().astype("<f4").tobytes())


def write_shard(path, tokens):
    header = [0] * 256
    header[:3] = [20240520, 1, len(tokens)]
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack("<%dH" % len(tokens), *tokens))


def token_stream(gen, n):
    """A first-order Markov stream over V ids: each id prefers a few successors, so the model has something to learn."""
    succ = torch.randint(0, V, (V, 4), generator=gen)
    out = [int(torch.randint(0, V, (1,), generator=gen))]
    for _ in range(n - 1):
        if float(torch.rand(1, generator=gen)) < 0.8:
            out.append(int(succ[out[-1], int(torch.randint(0, 4, (1,), generator=gen))]))
        else:
            out.append(int(torch.randint(0, V, (1,), generator=gen)))
    return out


def forward_loss(p, idx, tgt):
    """GPT-2: pre-LN blocks, causal attention, tanh GELU, tied head over Vp columns, loss over the first V."""
    Bn, Tn = idx.shape
    HS = C // NH
    x = p["wte"][idx] + p["wpe"][:Tn]
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        q, k, v = [t.view(Bn, Tn, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=-1)]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        h = F.gelu(h @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
        x = x + h @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    logits = x @ p["wte"].T
    return F.cross_entropy(logits[..., :V].reshape(-1, V), tgt.reshape(-1))


def batch(tokens, j):
    """Sequential batch j as llm.c reads it: B rows of T+1 tokens, consecutive, non-overlapping but for one."""
    rows = [tokens[(j * B + b) * T:(j * B + b) * T + T + 1] for b in range(B)]
    t = torch.tensor(rows, dtype=torch.long)
    return t[:, :-1], t[:, 1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outdir", default="train/testdata")
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(20261126)
    p32 = random_model(gen)
    train = token_stream(gen, TRAIN_BATCHES * B * T + 1)
    val = token_stream(gen, VAL_BATCHES * B * T + 1)
    os.makedirs(args.outdir, exist_ok=True)
    write_model(os.path.join(args.outdir, "oracle_model.bin"), p32)
    write_shard(os.path.join(args.outdir, "oracle_train.bin"), train)
    write_shard(os.path.join(args.outdir, "oracle_val.bin"), val)

    p = {k: v.double().requires_grad_(True) for k, v in p32.items()}
    with torch.no_grad():
        val_loss = sum(float(forward_loss(p, *batch(val, j))) for j in range(EVAL_BATCHES)) / EVAL_BATCHES
    opt = torch.optim.AdamW([p[name] for name, _ in layout()], lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        loss = forward_loss(p, *batch(train, step))
        loss.backward()
        opt.step()
        losses.append(float(loss))
    with open(os.path.join(args.outdir, "oracle_expected.txt"), "w") as f:
        f.write("%.12f\n" % val_loss)
        for l in losses:
            f.write("%.12f\n" % l)
    print("val loss %.6f, train losses %s" % (val_loss, " ".join("%.6f" % l for l in losses)))


if __name__ == "__main__":
    main()
