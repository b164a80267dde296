#!/usr/bin/python3
"""tools/reference/gpt2_oracle.py: a PyTorch GPT-2 built from an llm.c-format checkpoint, writing reference tensors.

Run with Debian's python3 (it has python3-torch):

    /usr/bin/python3 tools/reference/gpt2_oracle.py all --outdir tests/resbm/testdata
    # = write-checkpoint (a random small model) + fixture (reference tensors for it)

    /usr/bin/python3 tools/reference/gpt2_oracle.py write-checkpoint --out ckpt.bin --seed 1 \\
        --layers 2 --heads 4 --channels 64 --max-seq-len 64 --vocab 500 --padded-vocab 512
    /usr/bin/python3 tools/reference/gpt2_oracle.py fixture --checkpoint ckpt.bin --out fixture.bin --B 4 --T 32

The model is written here from the GPT-2 definition (pre-LN blocks, tanh GELU, tied head, vocabulary padded to Vp
with the loss over the first V columns), independently of the C++ engine, and evaluated in float64 so that the
reference is exact to far below fp32 rounding: a C++ fp32 result is then compared with the truth, not with another
fp32 computation's rounding.

Fixture layout (little-endian), see also tests/resbm/gpt2_fixture.h:
    int32   header[256]   [0] magic 20261126, [1] version 1, [2] B, [3] T, [4] steps, [5] maxT, [6] V, [7] L,
                          [8] NH, [9] C, [10] Vp, [11] number of parameters (floats per gradient block)
    float32 hyper[16]     [0] lr, [1] beta1, [2] beta2, [3] eps, [4] weight_decay (2-D tensors only), rest 0
    int32   inputs[B*T]
    int32   targets[B*T]
    float32 logits[B*T*Vp]
    float32 loss
    float32 grads[P]      every parameter gradient at the checkpoint's weights, in llm.c's checkpoint order
    float32 losses[steps] the loss before each of `steps` AdamW steps on the same batch (losses[0] == loss)
"""

import argparse
import math
import os
import struct
import sys

import torch

MODEL_MAGIC, MODEL_VERSION = 20240326, 3
FIXTURE_MAGIC, FIXTURE_VERSION = 20261126, 1
HEADER_INTS = 256

# llm.c's tensor order: (name, shape in terms of (L, C, V, Vp, maxT), decays under AdamW).
def layout(L, C, maxT, Vp):
    return [
        ("wte", (Vp, C), True), ("wpe", (maxT, C), True),
        ("ln1w", (L, C), False), ("ln1b", (L, C), False),
        ("qkvw", (L, 3 * C, C), True), ("qkvb", (L, 3 * C), False),
        ("attprojw", (L, C, C), True), ("attprojb", (L, C), False),
        ("ln2w", (L, C), False), ("ln2b", (L, C), False),
        ("fcw", (L, 4 * C, C), True), ("fcb", (L, 4 * C), False),
        ("fcprojw", (L, C, 4 * C), True), ("fcprojb", (L, C), False),
        ("lnfw", (C,), False), ("lnfb", (C,), False),
    ]


def read_checkpoint(path):
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack("<256i", data[: 4 * HEADER_INTS])
    if header[0] != MODEL_MAGIC or header[1] != MODEL_VERSION:
        sys.exit(f"{path}: not an fp32 llm.c model file (magic {header[0]}, version {header[1]})")
    maxT, V, L, NH, C, Vp = header[2:8]
    cfg = dict(maxT=maxT, V=V, L=L, NH=NH, C=C, Vp=Vp)
    flat = torch.frombuffer(bytearray(data[4 * HEADER_INTS:]), dtype=torch.float32)
    params, offset = {}, 0
    for name, shape, _ in layout(L, C, maxT, Vp):
        n = math.prod(shape)
        params[name] = flat[offset: offset + n].view(shape).double().clone()
        offset += n
    if offset != flat.numel():
        sys.exit(f"{path}: {flat.numel()} floats after the header, expected {offset}")
    return cfg, params


def write_checkpoint(path, cfg, params):
    header = [0] * HEADER_INTS
    header[:8] = [MODEL_MAGIC, MODEL_VERSION, cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"], cfg["C"], cfg["Vp"]]
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        for name, _, _ in layout(cfg["L"], cfg["C"], cfg["maxT"], cfg["Vp"]):
            f.write(params[name].float().contiguous().numpy().tobytes())


def random_params(cfg, seed):
    """Random weights that exercise every term: unlike GPT-2's init, biases and layernorm shifts are nonzero, the
    gains are not 1, the attention is far from uniform, and wte's padding rows are nonzero (their logits exist but
    the loss must ignore them)."""
    g = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape, _ in layout(cfg["L"], cfg["C"], cfg["maxT"], cfg["Vp"]):
        if name in ("ln1w", "ln2w", "lnfw"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("b"):
            t = 0.05 * torch.randn(shape, generator=g)
        elif name == "qkvw":
            t = 0.15 * torch.randn(shape, generator=g)  # large enough that softmax(q.k) is peaked
        elif name == "wte":
            t = 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.05 * torch.randn(shape, generator=g)
        params[name] = t.double()
    return params


def layernorm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased variance, eps 1e-5 (GPT-2)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(cfg, p, tokens, targets):
    """tokens, targets (B, T) int64 -> logits (B, T, Vp), mean loss over the first V columns."""
    B, T = tokens.shape
    C, NH, V = cfg["C"], cfg["NH"], cfg["V"]
    hs = C // NH
    x = p["wte"][tokens] + p["wpe"][:T]  # (B, T, C)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(cfg["L"]):
        h = layernorm(x, p["ln1w"][l], p["ln1b"][l])
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]  # (B, T, 3C)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=-1))  # (B, NH, T, hs)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hs)  # (B, NH, T, T)
        att = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h = layernorm(x, p["ln2w"][l], p["ln2b"][l])
        f = gelu_tanh(h @ p["fcw"][l].T + p["fcb"][l])  # (B, T, 4C)
        x = x + f @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = layernorm(x, p["lnfw"], p["lnfb"])
    logits = x @ p["wte"].T  # (B, T, Vp): the tied head, padded columns included
    loss = torch.nn.functional.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))
    return logits, loss


def adamw_losses(cfg, params, tokens, targets, steps, lr, beta1, beta2, eps, wd):
    """Losses before each of `steps` AdamW steps on one batch. The update is written out (llm.c's rule:
    p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p), wd only on 2-D tensors) and checked against torch's AdamW."""
    decays = {name: d for name, _, d in layout(cfg["L"], cfg["C"], cfg["maxT"], cfg["Vp"])}
    mine = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    ref = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.AdamW([{"params": [ref[k] for k in ref if decays[k]], "weight_decay": wd},
                             {"params": [ref[k] for k in ref if not decays[k]], "weight_decay": 0.0}],
                            lr=lr, betas=(beta1, beta2), eps=eps)
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v2 = {k: torch.zeros_like(v) for k, v in params.items()}
    losses = []
    for t in range(1, steps + 1):
        _, loss = forward(cfg, mine, tokens, targets)
        losses.append(loss.item())
        grads = torch.autograd.grad(loss, list(mine.values()))
        with torch.no_grad():
            for (k, w), g in zip(mine.items(), grads):
                m[k].mul_(beta1).add_((1 - beta1) * g)
                v2[k].mul_(beta2).add_((1 - beta2) * g * g)
                mhat = m[k] / (1 - beta1 ** t)
                vhat = v2[k] / (1 - beta2 ** t)
                w.sub_(lr * (mhat / (torch.sqrt(vhat) + eps) + (wd if decays[k] else 0.0) * w))
        opt.zero_grad()
        _, ref_loss = forward(cfg, ref, tokens, targets)
        ref_loss.backward()
        opt.step()
        # float64 on both sides: the two must agree far below the fixture's 1e-4 tolerance.
        assert abs(ref_loss.item() - losses[-1]) < 1e-9, (t, ref_loss.item(), losses[-1])
    return losses


def write_fixture(checkpoint, out, B, T, steps, seed, lr, beta1, beta2, eps, wd):
    cfg, params = read_checkpoint(checkpoint)
    if T > cfg["maxT"]:
        sys.exit(f"T={T} exceeds the checkpoint's maxT={cfg['maxT']}")
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg["V"], (B, T), generator=g)
    targets = torch.randint(0, cfg["V"], (B, T), generator=g)

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    logits, loss = forward(cfg, leaves, tokens, targets)
    loss.backward()
    losses = adamw_losses(cfg, params, tokens, targets, steps, lr, beta1, beta2, eps, wd)
    assert abs(losses[0] - loss.item()) < 1e-12

    names = [name for name, _, _ in layout(cfg["L"], cfg["C"], cfg["maxT"], cfg["Vp"])]
    num_params = sum(params[n].numel() for n in names)
    header = [0] * HEADER_INTS
    header[:12] = [FIXTURE_MAGIC, FIXTURE_VERSION, B, T, steps, cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"],
                   cfg["C"], cfg["Vp"], num_params]
    hyper = [lr, beta1, beta2, eps, wd] + [0.0] * 11
    f32 = lambda t: t.detach().float().contiguous().numpy().tobytes()
    with open(out, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack("<16f", *hyper))
        f.write(tokens.int().numpy().tobytes())
        f.write(targets.int().numpy().tobytes())
        f.write(f32(logits))
        f.write(struct.pack("<f", loss.item()))
        for n in names:
            f.write(f32(leaves[n].grad))
        f.write(struct.pack(f"<{steps}f", *losses))
    print(f"{out}: B={B} T={T} loss={loss.item():.6f} after {steps} AdamW steps {losses[-1]:.6f} "
          f"({os.path.getsize(out)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write-checkpoint", help="write a random small llm.c-format checkpoint")
    fx = sub.add_parser("fixture", help="write reference tensors for a checkpoint")
    al = sub.add_parser("all", help="write-checkpoint + fixture into --outdir (the committed test data)")
    for p in (w, al):
        p.add_argument("--seed", type=int, default=1337)
        p.add_argument("--layers", type=int, default=2)
        p.add_argument("--heads", type=int, default=4)
        p.add_argument("--channels", type=int, default=64)
        p.add_argument("--max-seq-len", type=int, default=64)
        p.add_argument("--vocab", type=int, default=500)
        p.add_argument("--padded-vocab", type=int, default=512)
    w.add_argument("--out", required=True)
    fx.add_argument("--checkpoint", required=True)
    fx.add_argument("--out", required=True)
    al.add_argument("--outdir", required=True)
    for p in (fx, al):
        p.add_argument("--B", type=int, default=4)
        p.add_argument("--T", type=int, default=32)
        p.add_argument("--steps", type=int, default=10)
        p.add_argument("--data-seed", type=int, default=42)
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--beta1", type=float, default=0.9)
        p.add_argument("--beta2", type=float, default=0.999)
        p.add_argument("--eps", type=float, default=1e-8)
        p.add_argument("--weight-decay", type=float, default=0.1)
    a = ap.parse_args()
    if a.cmd == "all":
        os.makedirs(a.outdir, exist_ok=True)

    if a.cmd in ("write-checkpoint", "all"):
        cfg = dict(maxT=a.max_seq_len, V=a.vocab, L=a.layers, NH=a.heads, C=a.channels, Vp=a.padded_vocab)
        ckpt = a.out if a.cmd == "write-checkpoint" else os.path.join(a.outdir, "gpt2_small_ckpt.bin")
        write_checkpoint(ckpt, cfg, random_params(cfg, a.seed))
        print(f"{ckpt}: {os.path.getsize(ckpt)} bytes")
    if a.cmd in ("fixture", "all"):
        ckpt = a.checkpoint if a.cmd == "fixture" else os.path.join(a.outdir, "gpt2_small_ckpt.bin")
        out = a.out if a.cmd == "fixture" else os.path.join(a.outdir, "gpt2_small_fixture.bin")
        write_fixture(ckpt, out, a.B, a.T, a.steps, a.data_seed, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
