"""A tiny character-level language model, trained with the library's AdamW: the Python twin
of examples/c/train.c (the same model, data, random numbers and steps, so it prints the same
losses up to float rounding).

The model is the embedding layer with an output head tied to its token table:

    h      = dropout(LayerNorm(wte[x] + wpe[t]))      [B, T, D]  the library
    logits = h @ wte.T                                [B, T, V]  numpy, here
    loss   = mean cross-entropy(logits, next char)               numpy, here

and its backward:

    dlogits = (softmax(logits) - onehot(target)) / (B * T)
    dh      = dlogits @ wte     -> layer.backward (adds into the layer's gradients)
    dwte   += dlogits.T @ h     the head's share, added into the zero-copy gradient view

then one AdamW step (the library's fused kernel) updates every parameter. Without attention
the model sees one character (and its position), so the loss falls from about ln(V) = 4.06
to about 2.5, what knowing the previous character is worth.

Run from the repository root (after `make lib`):
    PYTHONPATH=bindings/python python3 examples/python/train.py [path/to/text]
Exits 1 if the validation loss did not fall below 0.8 times its starting value.
"""
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: one BLAS thread is fastest
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402 (after the thread settings, which numpy reads on import)

import gpt_embedding  # noqa: E402
from gpt_embedding import GPTEmbedding  # noqa: E402

# Hyperparameters (as in train.c)
B, T, D = 16, 64, 64  # sequences per batch, characters per sequence, embedding width
STEPS, PRINT_EVERY, SAMPLE_CHARS = 300, 25, 200
DROPOUT, LR, WEIGHT_DECAY = 0.1, 3e-2, 0.01
SEED = 1337
MASK64 = (1 << 64) - 1


# -- random numbers: xorshift64* (train.c draws the same numbers) ----------------------

class Random:
    def __init__(self, seed):
        self.state = seed

    def u64(self):
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & MASK64
        s ^= s >> 27
        self.state = s
        return (s * 0x2545F4914F6CDD1D) & MASK64

    def f32(self):  # uniform in [0, 1)
        return np.float32(self.u64() >> 40) / np.float32(16777216.0)


def get_batch(tokens, rng):
    """B windows of T + 1 characters from tokens: inputs [B, T] and targets [B, T] (the
    next character of each input)."""
    starts = [rng.u64() % (len(tokens) - T - 1) for _ in range(B)]
    windows = np.stack([tokens[s:s + T + 1] for s in starts])
    return windows[:, :-1].copy(), windows[:, 1:].copy()


# -- the head and the loss, forward and backward -----------------------------------------

def softmax(logits):
    """Softmax over the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(probs, targets):
    """The mean of -log probs[n, targets[n]]; probs [N, V], targets [N]."""
    return float(-np.log(probs[np.arange(len(targets)), targets].astype(np.float64)).mean())


class Model:
    def __init__(self, vocab_size):
        self.layer = GPTEmbedding(vocab_size=vocab_size, embed_dim=D, max_seq_len=T, dropout=DROPOUT,
                                  scale_embeddings=False,  # GPT-2: token rows not multiplied by sqrt(D)
                                  layer_norm=True,         # every forward normalises
                                  seed=SEED, num_threads=1)
        # Zero-copy views of the layer's memory: the head reads the token table and adds
        # its gradient into the table's gradient.
        self.wte = self.layer.parameter("token_embedding.weight")  # [V, D]
        self.dwte = self.layer.gradient("token_embedding.weight")  # [V, D]

    def forward(self, inputs, targets):
        """The loss over one batch; keeps what backward needs."""
        self.h = self.layer(inputs).reshape(-1, D)  # [N, D], N = B * T
        self.probs = softmax(self.h @ self.wte.T)   # [N, V]
        self.targets = targets.reshape(-1)          # [N]
        return cross_entropy(self.probs, self.targets)

    def backward(self):
        """Every gradient of the model, for the latest training forward."""
        n = len(self.targets)
        dlogits = self.probs.copy()                 # [N, V]
        dlogits[np.arange(n), self.targets] -= 1.0
        dlogits /= np.float32(n)
        dh = dlogits @ self.wte                     # [N, D]
        self.dwte += dlogits.T @ self.h             # [V, D], the tied head's share
        self.layer.backward(dh.reshape(B, T, D))

    def evaluate(self, tokens):
        """The mean loss over consecutive windows of T + 1 characters of tokens, in whole
        batches of B, without dropout (train.c's windows)."""
        self.layer.eval()
        windows = (len(tokens) - 1) // T
        losses = []
        for w in range(0, windows - B + 1, B):
            rows = np.stack([tokens[(w + b) * T:(w + b) * T + T + 1] for b in range(B)])
            losses.append(self.forward(rows[:, :-1], rows[:, 1:]))
        self.layer.train()
        return sum(losses) / len(losses)

    def sample(self, chars, first, n, rng):
        """n characters after `first`: each step embeds the latest character at its
        position, applies the head and samples the softmax."""
        self.layer.eval()
        out, token = [chars[first]], first
        for i in range(n):
            h = self.layer(np.array([[token]], dtype=np.int32), start_position=(i + 1) % T)
            probs = softmax(h.reshape(1, D) @ self.wte.T)[0]
            cdf = np.cumsum(probs)
            token = int(min(np.searchsorted(cdf, rng.f32(), side="right"), len(chars) - 1))
            out.append(chars[token])
        self.layer.train()
        return "".join(out)


# -- the optimizer -----------------------------------------------------------------------

def make_optimizer(layer):
    """The library's AdamW (torch.optim.AdamW's defaults but lr, decay on every parameter)."""
    return gpt_embedding.AdamW(layer, lr=LR, weight_decay=WEIGHT_DECAY)


# ----------------------------------------------------------------------------------------

def main():
    default = Path(__file__).resolve().parents[1] / "data" / "shakespeare.txt"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    shown = sys.argv[1] if len(sys.argv) > 1 else os.path.relpath(default)  # as train.c prints it
    text = path.read_bytes()
    chars = sorted(set(text))                       # the vocabulary: the bytes in the text
    index = {c: i for i, c in enumerate(chars)}
    tokens = np.array([index[c] for c in text], dtype=np.int32)
    n_train = len(tokens) - len(tokens) // 10       # the last 10% is the validation split
    train, val = tokens[:n_train], tokens[n_train:]
    V = len(chars)
    print(f"{shown}: {len(tokens)} characters, vocabulary {V}, train {len(train)}, val {len(val)}")
    if len(val) < B * T + 1:
        print(f"{shown}: too short (at least {10 * (B * T + 1)} characters)", file=sys.stderr)
        return 1

    model = Model(V)
    print(f"model: D {D}, T {T}, B {B}, {model.layer.num_parameters()} parameters (the head is the token table)")
    opt = make_optimizer(model.layer)

    val_start = model.evaluate(val)
    print(f"val loss {val_start:.4f} (ln V = {math.log(V):.4f})")
    rng = Random(SEED)
    t0 = time.perf_counter()
    for step in range(1, STEPS + 1):
        inputs, targets = get_batch(train, rng)
        opt.zero_grad()
        loss = model.forward(inputs, targets)
        model.backward()
        norm = opt.grad_norm()
        opt.step()
        if step == 1 or step % PRINT_EVERY == 0:
            print(f"step {step:4d}/{STEPS} | loss {loss:.4f} | grad norm {norm:.4f}")
    elapsed = time.perf_counter() - t0
    val_end = model.evaluate(val)
    print(f"val loss {val_end:.4f} (was {val_start:.4f}) after {STEPS} steps, {elapsed:.2f} s")

    print("sample:")
    print(model.sample([chr(c) for c in chars], index.get(ord("\n"), 0), SAMPLE_CHARS, rng))
    if not val_end < 0.8 * val_start:
        print(f"FAIL: the validation loss did not fall below 0.8 x {val_start:.4f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
