#!/usr/bin/env python3
"""AdamW golden vectors for gpt-embedding (issue 13), produced by PyTorch.

Each case builds the layer's parameters (token table wte, learned position table wpe or
none, LayerNorm weight/bias), then for every step: zero the gradients, forward
(F.embedding with padding_idx, + wpe[0..T-1], F.layer_norm; no scaling, dropout 0),
backward with a given grad_output, multiply every gradient by grad_scale, and step:

* dense: torch.optim.AdamW(foreach=False, amsgrad=False, maximize=False), one param group
  per parameter so that the step's decay_mask selects who gets weight_decay;
* lazy: the same single-tensor AdamW arithmetic written out with torch float32 ops on the
  touched rows only (wte: the batch's unique ids minus padding_idx; wpe: positions
  0..T-1); LayerNorm parameters dense. Checked against torch.optim.AdamW on a case where
  every row is touched (bit for bit);
* bf16 master weights: float32 masters for wte/wpe, forward through master -> bf16 -> f32,
  AdamW on the masters, table = RNE(master) after each step.

Every float32 result is also re-derived in numpy (one rounding per operation, no fused
multiply-add, torch's own sqrt values) and must agree bit for bit: the README's "Arithmetic"
section is what that check proves.

Writes Tests/golden/adamw/<case>.txt (format adamw-1, README.md next to this file).

    /path/to/venv-with-torch/bin/python Tests/golden/adamw/generate_adamw.py   (or: make golden)
    ... generate_adamw.py --out DIR       write somewhere else (to compare)

Deterministic: fixed seeds, torch's portable CPU kernels (ATEN_CPU_CAPABILITY=default: no
FMA in lerp/addcmul) and one thread, so re-running gives byte-identical files.
"""
import argparse
import math
import os

os.environ["ATEN_CPU_CAPABILITY"] = "default"
import numpy as np  # noqa: E402
import torch  # noqa: E402  (after ATEN_CPU_CAPABILITY)
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

HERE = os.path.dirname(os.path.abspath(__file__))
PARAMS = ["wte", "wpe", "ln_weight", "ln_bias"]  # C bit masks 1<<0 .. 1<<3
f32 = np.float32


def schedule(k, steps, peak, warmup=3, floor=0.1):
    """Linear warm-up over `warmup` steps, then cosine down to floor*peak at the last step."""
    if k <= warmup:
        return peak * k / warmup
    t = (k - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def hyper(k, steps, **kw):
    h = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decay_mask=15, lazy=0, grad_scale=1.0)
    h.update(kw)
    return h


# Every case: name, V, D, T_max, positions, padding_idx, weight_dtype, B, T, steps, seed,
# hyper(k) -> hyperparameters of step k (1-based), ids(k, g) -> ids of step k.
def random_ids(V, B, T, pad=-1, pad_slots=()):
    def f(k, g):
        ids = torch.randint(0, V, (B, T), generator=g)
        ids[0, 1] = ids[1, 3]  # at least one repeat
        for b, t in pad_slots:
            ids[b, t] = pad
        return ids
    return f


def lazy_ids(V, B, T, pad):
    """Each step draws its B*T ids from a small pool (4 ids, sometimes the padding id), so ids
    repeat, most rows are untouched, and rows touched earlier drop out later."""
    def f(k, g):
        pool = torch.randperm(V, generator=g)[:4]
        if k % 3 == 1:
            pool[0] = pad
        if k == 2:
            pool[:] = torch.tensor([5, 5, 6, pad])  # 2 rows only
        return pool[torch.randint(0, 4, (B, T), generator=g)]
    return f


CASES = [
    dict(name="dense_decay", V=19, D=20, maxT=7, positions="learned", pad=-1, dtype="f32", B=2, T=5, steps=10,
         seed=1301, ids=random_ids(19, 2, 5),
         hyper=lambda k, K: hyper(k, K, lr=schedule(k, K, 1e-2), weight_decay=0.1, decay_mask=15)),
    dict(name="dense_groups", V=29, D=12, maxT=6, positions="learned", pad=3, dtype="f32", B=2, T=5, steps=10,
         seed=1302, ids=random_ids(29, 2, 5, pad=3, pad_slots=[(0, 0), (1, 2)]),
         hyper=lambda k, K: hyper(k, K, lr=schedule(k, K, 5e-3, warmup=2), beta1=0.8, beta2=0.95, eps=1e-6,
                                  weight_decay=0.05, decay_mask=3, grad_scale=0.5 if k % 3 != 0 else 1.0)),
    dict(name="dense_no_decay", V=13, D=16, maxT=0, positions="none", pad=-1, dtype="f32", B=2, T=5, steps=10,
         seed=1303, ids=random_ids(13, 2, 5),
         hyper=lambda k, K: hyper(k, K, lr=schedule(k, K, 2e-2), weight_decay=0.0, decay_mask=0)),
    dict(name="lazy", V=31, D=12, maxT=8, positions="learned", pad=2, dtype="f32", B=2, T=5, steps=10,
         seed=1304, ids=lazy_ids(31, 2, 5, 2),
         hyper=lambda k, K: hyper(k, K, lr=schedule(k, K, 1e-2), weight_decay=0.1, decay_mask=15, lazy=1)),
    dict(name="bf16_master", V=23, D=20, maxT=7, positions="learned", pad=-1, dtype="bf16", B=2, T=5, steps=10,
         seed=1305, ids=random_ids(23, 2, 5),
         hyper=lambda k, K: hyper(k, K, lr=schedule(k, K, 2e-2), beta2=0.95, weight_decay=0.01, decay_mask=15)),
    # lerp weight 1-beta1 = 0.7 >= 0.5 takes torch's other branch (end - (end-self)*(1-w));
    # step 4 has beta1 = 0 (weight 1: exp_avg becomes the gradient).
    dict(name="beta1_large_weight", V=17, D=12, maxT=6, positions="learned", pad=-1, dtype="f32", B=2, T=5, steps=5,
         seed=1306, ids=random_ids(17, 2, 5),
         hyper=lambda k, K: hyper(k, K, lr=[3e-3, 6e-3, 1e-2, 8e-3, 5e-3][k - 1], beta1=0.0 if k == 4 else 0.3,
                                  beta2=0.9, eps=1e-8, weight_decay=0.1, decay_mask=15)),
]


def forward(wte, wpe, lnw, lnb, ids, pad, eps):
    x = F.embedding(ids, wte, padding_idx=pad if pad >= 0 else None)
    if wpe is not None:
        x = x + wpe[torch.arange(ids.shape[1])]  # the same rows for every sequence
    return F.layer_norm(x, (x.shape[-1],), lnw, lnb, eps)


def lazy_adamw_rows(p, g, m, v, step, rows, h, wd):
    """torch's _single_tensor_adam (decoupled weight decay) on p[rows] only, float32 torch ops."""
    pr, gr, mr, vr = p[rows], g[rows], m[rows], v[rows]
    lr, beta1, beta2, eps = h["lr"], h["beta1"], h["beta2"], h["eps"]
    if wd != 0:
        pr.mul_(1 - lr * wd)
    mr.lerp_(gr, 1 - beta1)
    vr.mul_(beta2).addcmul_(gr, gr, value=1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    denom = (vr.sqrt() / bias_correction2 ** 0.5).add_(eps)
    pr.addcdiv_(mr, denom, value=-step_size)
    p[rows], m[rows], v[rows] = pr, mr, vr


def emulate(p, g, m, v, step, h, wd):
    """The same step in numpy float32, one rounding per operation, no FMA (torch's sqrt)."""
    lr, beta1, beta2, eps = h["lr"], h["beta1"], h["beta2"], h["eps"]
    if wd != 0:
        p = p * f32(1 - lr * wd)
    w = f32(1 - beta1)
    m = m + w * (g - m) if abs(w) < 0.5 else g - (g - m) * (f32(1) - w)
    v = v * f32(beta2) + (f32(1 - beta2) * g) * g
    root = torch.from_numpy(v.copy()).sqrt().numpy()
    denom = root / f32((1 - beta2 ** step) ** 0.5) + f32(eps)
    p = p + (f32(-(lr / (1 - beta1 ** step))) * m) / denom
    return p, m, v


def same_bits(a, b):
    a, b = np.asarray(a, dtype=f32), np.asarray(b, dtype=f32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def run_case(c, force_dense_check=False):
    """Returns (scalars, entries); entries are (kind, key, values)."""
    g = torch.Generator().manual_seed(c["seed"])
    V, D, maxT, B, T, K, pad = c["V"], c["D"], c["maxT"], c["B"], c["T"], c["steps"], c["pad"]
    eps_ln = 1e-5
    bf16 = c["dtype"] == "bf16"
    init = {"wte": torch.randn(V, D, generator=g) * 0.5}
    if c["positions"] == "learned":
        init["wpe"] = torch.randn(maxT, D, generator=g) * 0.5
    init["ln_weight"] = 1 + 0.1 * torch.randn(D, generator=g)
    init["ln_bias"] = 0.1 * torch.randn(D, generator=g)
    if bf16:  # tables representable in bf16
        for n in ("wte", "wpe"):
            if n in init:
                init[n] = init[n].to(torch.bfloat16).to(torch.float32)
    names = [n for n in PARAMS if n in init]
    # The optimized tensors (the masters in the bf16 case).
    P = {n: torch.nn.Parameter(init[n].clone()) for n in names}
    h1 = c["hyper"](1, K)
    opt = torch.optim.AdamW([{"params": [P[n]], "weight_decay": 0.0} for n in names], lr=h1["lr"],
                            betas=(h1["beta1"], h1["beta2"]), eps=h1["eps"], foreach=False, amsgrad=False,
                            maximize=False)
    lazy_state = {n: (torch.zeros_like(P[n]), torch.zeros_like(P[n])) for n in names}
    emu_state = {n: (np.zeros(P[n].shape, f32), np.zeros(P[n].shape, f32)) for n in names}

    scalars = [("format", "adamw-1"), ("name", c["name"]), ("vocab_size", V), ("embed_dim", D),
               ("max_seq_len", maxT), ("position_encoding", c["positions"]), ("padding_idx", pad),
               ("layer_norm", 1), ("layer_norm_eps", "%.9g" % eps_ln), ("weight_dtype", c["dtype"]),
               ("batch", B), ("seq", T), ("steps", K)]
    entries = [("float", n, init[n]) for n in names]
    for k in range(1, K + 1):
        h = c["hyper"](k, K)
        ids = c["ids"](k, g)
        grad_output = torch.randn(B, T, D, generator=g)
        # (Every tensor recorded below is a copy: parameters and moments change in place.)
        # Tables the forward reads: the parameters, or RNE(master) widened (a leaf of its own).
        if bf16:
            leaf = {n: (P[n].detach().to(torch.bfloat16).to(torch.float32).requires_grad_()
                        if n in ("wte", "wpe") else P[n]) for n in names}
        else:
            leaf = P
        for n in names:
            P[n].grad = None
            leaf[n].grad = None
        out = forward(leaf["wte"], leaf.get("wpe"), leaf["ln_weight"], leaf["ln_bias"], ids, pad, eps_ln)
        out.backward(grad_output)
        grads = {n: leaf[n].grad.detach().clone() for n in names}
        for n in names:
            P[n].grad = grads[n].clone()
        norm_sq = sum(float(grads[n].double().pow(2).sum()) for n in names)
        scale = torch.tensor(h["grad_scale"], dtype=torch.float32)
        for n in names:
            P[n].grad.mul_(scale)
        wd = {n: h["weight_decay"] if h["decay_mask"] >> PARAMS.index(n) & 1 else 0.0 for n in names}
        before = {n: P[n].detach().numpy().copy() for n in names}
        scaled = {n: P[n].grad.numpy().copy() for n in names}

        touched = {}
        if h["lazy"]:
            flat = ids.reshape(-1)
            touched["wte"] = torch.unique(flat[flat != pad]) if pad >= 0 else torch.unique(flat)
            if "wpe" in names:
                touched["wpe"] = torch.arange(T)
            with torch.no_grad():
                for n in names:
                    rows = touched.get(n, torch.arange(P[n].shape[0]))
                    m, v = lazy_state[n]
                    lazy_adamw_rows(P[n].data, P[n].grad, m, v, k, rows, h, wd[n])
            state = {n: lazy_state[n] for n in names}
        else:
            for group, n in zip(opt.param_groups, names):
                group.update(lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], weight_decay=wd[n])
            opt.step()
            state = {n: (opt.state[P[n]]["exp_avg"], opt.state[P[n]]["exp_avg_sq"]) for n in names}
            for n in names:
                assert int(opt.state[P[n]]["step"].item()) == k

        # numpy re-derivation, bit for bit
        for n in names:
            m0, v0 = emu_state[n]
            p1, m1, v1 = emulate(before[n], scaled[n], m0, v0, k, h, wd[n])
            if n in touched:
                r = touched[n].numpy()
                p1, m1, v1 = ([np.where(np.isin(np.arange(x_old.shape[0]), r)[:, None], x_new, x_old)
                               for x_new, x_old in ((p1, before[n]), (m1, m0), (v1, v0))])
            assert same_bits(p1, P[n].detach()), (c["name"], k, n, "param")
            assert same_bits(m1, state[n][0]) and same_bits(v1, state[n][1]), (c["name"], k, n, "moments")
            emu_state[n] = (m1, v1)

        entries += [("double", f"lr.{k}", [h["lr"]]), ("double", f"beta1.{k}", [h["beta1"]]),
                    ("double", f"beta2.{k}", [h["beta2"]]), ("double", f"eps.{k}", [h["eps"]]),
                    ("double", f"weight_decay.{k}", [h["weight_decay"]]),
                    ("int", f"decay_mask.{k}", [h["decay_mask"]]), ("int", f"lazy.{k}", [h["lazy"]]),
                    ("double", f"grad_scale.{k}", [h["grad_scale"]]),
                    ("int", f"ids.{k}", ids), ("float", f"grad_output.{k}", grad_output),
                    ("double", f"grad_norm_sq.{k}", [norm_sq])]
        for n in touched:
            entries.append(("int", f"touched.{n}.{k}", touched[n]))
        entries += [("float", f"grad.{n}.{k}", grads[n]) for n in names]
        for n in names:
            value = P[n].detach()
            if bf16 and n in ("wte", "wpe"):
                value = value.to(torch.bfloat16).to(torch.float32)
            entries.append(("float", f"{n}.{k}", value.clone()))
        for n in names:
            entries += [("float", f"exp_avg.{n}.{k}", state[n][0].clone()),
                        ("float", f"exp_avg_sq.{n}.{k}", state[n][1].clone())]
        if bf16:
            entries += [("float", f"master.{n}.{k}", P[n].detach().clone()) for n in ("wte", "wpe") if n in names]
    return scalars, entries


def check_lazy_against_torch():
    """The hand-written lazy step with every row touched == torch.optim.AdamW, bit for bit,
    over 6 steps of changing hyperparameters (both lerp branches, beta1 = 0, wd on/off)."""
    g = torch.Generator().manual_seed(7)
    shapes = [(19, 20), (7, 12), (20,)]
    hs = [dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8), dict(lr=7e-3, beta1=0.3, beta2=0.9, eps=1e-6),
          dict(lr=3e-2, beta1=0.0, beta2=0.95, eps=1e-8), dict(lr=1e-3, beta1=0.8, beta2=0.999, eps=1e-8),
          dict(lr=2e-2, beta1=0.5, beta2=0.99, eps=1e-7), dict(lr=5e-3, beta1=0.9, beta2=0.999, eps=1e-8)]
    wds = [0.1, 0.0, 0.05, 0.1, 0.0, 0.2]
    ref = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    mine = [r.detach().clone() for r in ref]
    st = [(torch.zeros_like(x), torch.zeros_like(x)) for x in mine]
    opt = torch.optim.AdamW(ref, foreach=False)
    for k, (h, wd) in enumerate(zip(hs, wds), 1):
        grads = [torch.randn(*s, generator=g) for s in shapes]
        for r, gr in zip(ref, grads):
            r.grad = gr.clone()
        opt.param_groups[0].update(lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], weight_decay=wd)
        opt.step()
        for i, (x, gr) in enumerate(zip(mine, grads)):
            lazy_adamw_rows(x, gr, st[i][0], st[i][1], k, torch.arange(x.shape[0]), h, wd)
            s = opt.state[ref[i]]
            assert same_bits(x, ref[i].detach()), ("lazy vs torch param", k, i)
            assert same_bits(st[i][0], s["exp_avg"]) and same_bits(st[i][1], s["exp_avg_sq"]), ("moments", k, i)
    return "lazy reference == torch.optim.AdamW bit for bit (all rows touched, 6 steps)"


def fmt_value(kind, v):
    if kind == "int":
        return str(int(v))
    return ("%.9g" if kind == "float" else "%.17g") % v


def write(path, name, scalars, entries):
    lines = ["# gpt-embedding AdamW golden vectors (format adamw-1, Tests/golden/adamw/README.md). Generated by",
             f"# Tests/golden/adamw/generate_adamw.py with torch {torch.__version__} "
             f"(CPU kernels: {torch.backends.cpu.get_cpu_capability()}, 1 thread). Do not edit."]
    lines += [f"{k} {v}" for k, v in scalars]
    for kind, key, values in entries:
        if isinstance(values, torch.Tensor):
            values = values.detach().reshape(-1).tolist()
        lines.append(f"{kind} {key} {len(values)}")
        for i in range(0, len(values), 16):
            lines.append(" ".join(fmt_value(kind, v) for v in values[i:i + 16]))
    lines.append("end")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read(path):
    """A complete reader (the README's): key -> value (str) or numpy array."""
    tokens = [t for line in open(path) if not line.startswith("#") for t in line.split()]
    out, i = {}, 0
    types = {"int": np.int64, "float": np.float32, "double": np.float64}
    while tokens[i] != "end":
        if tokens[i] in types:
            key, n = tokens[i + 1], int(tokens[i + 2])
            out[key] = np.array(tokens[i + 3:i + 3 + n], dtype=types[tokens[i]])
            i += 3 + n
        else:
            out[tokens[i]] = tokens[i + 1]
            i += 2
    assert i == len(tokens) - 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE, help="output directory (default: next to this script)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print(check_lazy_against_torch())
    for c in CASES:
        scalars, entries = run_case(c)
        path = os.path.join(args.out, c["name"] + ".txt")
        write(path, c["name"], scalars, entries)
        r = read(path)
        assert r["name"] == c["name"] and len(r["wte.%d" % c["steps"]]) == c["V"] * c["D"]
        print(f"{c['name']:20s} {os.path.getsize(path):7d} bytes  {len(r)} keys")


if __name__ == "__main__":
    main()
