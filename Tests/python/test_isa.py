"""The kernel path from Python (issue 10): gpt_embedding.isa, GPT_EMBEDDING_ISA, and the same
bits on every path (each path runs in its own process: the choice is made once per process)."""
import os
import subprocess
import sys

import numpy as np

import gpt_embedding

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A training step whose every output the subprocesses print as hex bytes.
STEP = """
import numpy as np, gpt_embedding as g
layer = g.GPTEmbedding(vocab_size=300, embed_dim=77, max_seq_len=64, dropout=0.2, use_sinusoidal=True,
                       num_threads=2, seed=3)
rng = np.random.default_rng(0)
ids = rng.integers(0, 300, size=(3, 50))
layer.train()
out = layer(ids, use_layer_norm=True, start_position=30)
layer.backward(rng.standard_normal(out.shape).astype(np.float32))
state, grads = layer.state_dict(), layer.grads()
parts = [out] + [state[k] for k in sorted(state)] + [grads[k] for k in sorted(grads)]
print(g.isa)
print("".join(np.ascontiguousarray(p, dtype=np.float32).tobytes().hex() for p in parts))
"""


def run(code, isa=None):
    env = {k: v for k, v in os.environ.items() if k != "GPT_EMBEDDING_ISA"}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    if isa is not None:
        env["GPT_EMBEDDING_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_isa_is_one_of_the_supported_paths():
    assert gpt_embedding.isa_supported[-1] == "baseline"
    assert set(gpt_embedding.isa_supported) <= {"x86-64-v3", "baseline"}
    if os.environ.get("GPT_EMBEDDING_ISA") in (None, "", "auto"):
        assert gpt_embedding.isa == gpt_embedding.isa_supported[0]
    cpu = open("/proc/cpuinfo").read().split()
    has_v3 = all(flag in cpu for flag in ("avx2", "fma", "bmi2", "f16c", "movbe"))
    assert ("x86-64-v3" in gpt_embedding.isa_supported) == has_v3


def test_every_path_gives_the_same_bits():
    results = {}
    for isa in gpt_embedding.isa_supported:
        r = run(STEP, isa)
        assert r.returncode == 0, r.stderr
        name, data = r.stdout.split("\n")[:2]
        assert name == isa
        results[isa] = data
    default = run(STEP)
    assert default.returncode == 0, default.stderr
    assert default.stdout.split("\n")[0] == gpt_embedding.isa_supported[0]
    for isa, data in results.items():
        assert data == results["baseline"], f"{isa} differs from baseline"
    assert len(results["baseline"]) > 1000


def test_a_bad_value_is_an_error_naming_it_never_a_crash():
    code = """
import gpt_embedding as g
print(",".join(g.isa_supported))
for what in ("isa", "create"):
    try:
        g.isa if what == "isa" else g.GPTEmbedding(10, 4, 4)
    except g.GPTEmbeddingError as e:
        print(what, e.status, e.status_name, e.message)
    else:
        print(what, "accepted")
"""
    r = run(code, "avx-9000")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().split("\n")
    assert lines[0] == ",".join(gpt_embedding.isa_supported)
    for line, what in zip(lines[1:], ("isa", "create")):
        assert line.startswith(f"{what} 13 GPT_EMBEDDING_ERROR_UNSUPPORTED_CPU "), line
        assert "GPT_EMBEDDING_ISA=avx-9000 is not a kernel path" in line
        assert f"this CPU supports {', '.join(gpt_embedding.isa_supported)}" in line
