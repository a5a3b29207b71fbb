"""gpt_embedding.AdamW against the PyTorch AdamW golden files (Tests/golden/adamw, format
adamw-1; the same files Swift and C replay). Every step of every case runs the layer's own
forward, backward and step, through the Python API only, and compares the gradient norm,
the gradients, the parameters, both moments and the bf16 master weights with the file."""
import math

import numpy as np
import pytest

from gpt_embedding import AdamW, GPTEmbedding

from adamw_golden import files, names, path_of, read, scalar, shapes, step, validate

#: |got - want| <= RTOL * |want| + ATOL, element by element, for the parameters, moments and
#: master weights after each step (the Swift and C replays use the same bound).
RTOL, ATOL = 1e-6, 1e-7
#: The gradients feeding each step are sums (the layer norm's backward, repeated ids) that
#: this library adds in another order than torch: the forward/backward golden tests' bound.
GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-6
#: The moments are (1 - beta1) g and (1 - beta2) g^2 accumulated: they carry those gradient
#: differences (relative 1e-5 for m, twice that for v; absolute (1 - beta1) 1e-6 for m),
#: which the parameters, scaled by lr,
#: hardly see. Measured: exp_avg up to 3.6x the tight bound above (beta1_large_weight,
#: exp_avg.wpe at step 3, 9.5e-7 off where the gradient is 1.4e-6 off).
MOMENT_BOUNDS = {"exp_avg": (1e-5, 1e-6), "exp_avg_sq": (2e-5, 1e-7)}
NAMES = {"wte": "token_embedding.weight", "wpe": "position_embedding.weight", "ln_weight": "layer_norm.weight",
         "ln_bias": "layer_norm.bias"}
BITS = {"wte": 1, "wpe": 2, "ln_weight": 4, "ln_bias": 8}


def test_golden_files_exist():
    assert len(files()) >= 6


def make_layer(case, threads):
    learned = case["position_encoding"] == "learned"
    layer = GPTEmbedding(case["vocab_size"], case["embed_dim"], case["max_seq_len"] if learned else case["seq"],
                         0.0, position_encoding=case["position_encoding"], scale_embeddings=False,
                         layer_norm_eps=case["layer_norm_eps"],
                         padding_idx=None if case["padding_idx"] < 0 else case["padding_idx"],
                         weight_dtype="bfloat16" if case["weight_dtype"] == "bf16" else "float32",
                         num_threads=threads)
    layer.load_state_dict({NAMES[p]: case[p].reshape(shape if p in ("wte", "wpe") else shape[1])
                           for p, shape in shapes(case).items()})
    return layer


def check(got, want, what, worst, rtol=RTOL, atol=ATOL):
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    err = np.abs(got - want)
    limit = rtol * np.abs(want) + atol
    worst["used"] = max(worst["used"], float((err / limit).max()))
    worst["abs"] = max(worst["abs"], float(err.max()))
    bad = err > limit
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} elements beyond {rtol}|b| + {atol}; "
                           f"first at {int(np.argmax(bad))}: {got[bad][0]!r} vs {want[bad][0]!r}")


def dense_names():
    """The cases without a lazy step (see test_the_step_alone_with_torchs_gradients)."""
    return [n for n in names() if not any(scalar(read(path_of(n)), f"lazy.{k}")
                                          for k in range(1, read(path_of(n))["steps"] + 1))]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", names())
def test_case_replays_through_the_python_api(name, threads):
    """End to end: the layer's own gradients feed the step."""
    replay(name, threads, exact=False)


@pytest.mark.parametrize("name", dense_names())
def test_the_step_alone_with_torchs_gradients(name):
    """torch's gradients of each step are written over the backward's (through the zero-copy
    gradient views), so the step alone is compared and the moments too meet the tight bound.
    Lazy cases are left out: once a gradient view exists the library updates every row of
    that table, since writes through it cannot be tracked."""
    replay(name, 1, exact=True)


def replay(name, threads, exact):
    case = read(path_of(name))
    validate(case)
    layer = make_layer(case, threads)
    params = list(shapes(case))
    # One group per parameter, as the generator's torch.optim.AdamW has.
    opt = AdamW(layer, params=[{"params": [NAMES[p]]} for p in params])
    B, T, D = case["batch"], case["seq"], case["embed_dim"]
    worst = {"used": 0.0, "abs": 0.0}
    grad_worst = {"used": 0.0, "abs": 0.0}
    moment_worst = {"used": 0.0, "abs": 0.0}
    views = {p: layer.gradient(NAMES[p]) for p in params} if exact else {}
    mismatches = 0
    for k in range(1, case["steps"] + 1):
        s = step(case, k)
        opt.zero_grad()
        layer(s["ids"].reshape(B, T), use_layer_norm=True)
        layer.backward(s["grad_output"].reshape(B, T, D))
        check([opt.grad_norm_squared()], s["grad_norm_sq"], f"step {k} grad_norm_sq", {"used": 0, "abs": 0})
        assert opt.grad_norm() == pytest.approx(math.sqrt(scalar(s, "grad_norm_sq")), rel=1e-6)
        grads = layer.grads()
        for p in params:
            check(grads[NAMES[p]], s[f"grad.{p}"], f"step {k} grad.{p}", grad_worst, GRAD_RTOL, GRAD_ATOL)
            if exact:
                views[p][...] = s[f"grad.{p}"].reshape(views[p].shape)
        for group, p in zip(opt.param_groups, params):
            group["lr"] = scalar(s, "lr")
            group["betas"] = (scalar(s, "beta1"), scalar(s, "beta2"))
            group["eps"] = scalar(s, "eps")
            group["weight_decay"] = scalar(s, "weight_decay") if scalar(s, "decay_mask") & BITS[p] else 0.0
            group["lazy"] = bool(scalar(s, "lazy"))
        opt.step(grad_scale=scalar(s, "grad_scale"))
        got = layer.state_dict()
        state = opt.state_dict()["state"]
        for p in params:
            n = NAMES[p]
            check(got[n], s[p], f"step {k} {p}", worst)
            for m in ("exp_avg", "exp_avg_sq"):
                bounds = (RTOL, ATOL) if exact else MOMENT_BOUNDS[m]
                check(state[n][m], s[f"{m}.{p}"], f"step {k} {m}.{p}", moment_worst, *bounds)
                mismatches += int(np.sum(state[n][m].ravel().view(np.uint32) != s[f"{m}.{p}"].view(np.uint32)))
            mismatches += int(np.sum(np.asarray(got[n], dtype=np.float32).ravel() != s[p]))
            assert state[n]["step"] == k
            if f"master.{p}" in s:
                check(state[n]["master"], s[f"master.{p}"], f"step {k} master.{p}", worst)
            else:
                assert "master" not in state[n]
    print(f"\n{name} ({threads} thread(s), {'torch' if exact else 'own'} gradients): parameters, masters: "
          f"largest error {worst['abs']:.3g} (absolute), {worst['used']:.3f} of 1e-6|b| + 1e-7; moments: "
          f"{moment_worst['abs']:.3g}, {moment_worst['used']:.3f} of their bound; gradients: "
          f"{grad_worst['abs']:.3g}, {grad_worst['used']:.3f} of 1e-5|b| + 1e-6; {mismatches} parameter/moment "
          f"values not bit-identical")
    del views
