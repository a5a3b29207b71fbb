"""Nothing a Python user can pass crashes the interpreter: a few thousand calls with
random and hostile arguments, in a child process so that a crash fails the test instead of
killing the test runner. Every call must return normally or raise an ordinary exception."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent(r"""
    import random, numpy as np
    from gpt_embedding import GPTEmbedding, GPTEmbeddingConfig, TokenEmbedding, PositionalEmbedding, \
        SinusoidalPositionalEmbedding

    rnd = random.Random(1234)
    ints = [0, 1, -1, 2, 3, 7, 2**31 - 1, 2**31, -2**31, 2**32 + 1, 2**62, 2**63 - 1, 2**63, -2**63, 2**64, 10**30]
    def some_int():
        return rnd.choice(ints) if rnd.random() < 0.5 else rnd.randint(-3, 12)
    def some_value():
        return rnd.choice([some_int(), 0.5, float("nan"), float("inf"), -1e30, None, "x", True, [], [[]],
                           [[1, 2], [3]], np.zeros((2, 3)), np.ones((1, 2), np.int32) * some_int(),
                           np.arange(6).reshape(2, 3)[:, ::2], np.array([[2**63]], np.uint64),
                           np.empty((0, 3), np.int64), np.ones((2, 2, 2), np.int64), object()])
    def ids_like():
        shape = (rnd.randint(0, 3), rnd.randint(0, 4))
        dtype = rnd.choice([np.int32, np.int64, np.uint8, np.int16, np.uint64, np.float32, bool])
        a = np.array([[some_int() for _ in range(shape[1])] for _ in range(shape[0])], dtype=object)
        try:
            return a.astype(dtype)
        except (OverflowError, ValueError, TypeError):
            return a
    layers = [GPTEmbedding(12, 5, 6, 0.3, seed=1), GPTEmbedding(12, 5, 6, 0.0, use_sinusoidal=True),
              GPTEmbedding(12, 5, 6, 0.0, position_encoding="none", padding_idx=0)]
    components = [TokenEmbedding(12, 5), PositionalEmbedding(6, 5), SinusoidalPositionalEmbedding(6, 5)]
    outcomes = {}
    for i in range(3000):
        layer = rnd.choice(layers)
        op = rnd.randrange(12)
        try:
            if op == 0:
                layer(ids_like(), use_layer_norm=rnd.random() < 0.5, start_position=some_int())
            elif op == 1:
                layer(rnd.choice([ids_like(), some_value()]), position_ids=rnd.choice([ids_like(), some_value()]))
            elif op == 2:
                shape = tuple(rnd.randint(0, 4) for _ in range(rnd.randint(0, 4)))
                layer.backward(rnd.choice([np.ones(shape, np.float32), some_value()]))
            elif op == 3:
                layer.train(rnd.random() < 0.5); layer.zero_grad()
            elif op == 4:
                state = layer.state_dict()
                key = rnd.choice(list(state) + ["bogus"])
                state[key] = rnd.choice([some_value(), np.ones((rnd.randint(0, 13), 5)), np.full(5, np.nan)])
                layer.load_state_dict(state, strict=rnd.random() < 0.5)
            elif op == 5:
                kwargs = {k: some_value() if rnd.random() < 0.3 else some_int() for k in
                          rnd.sample(["vocab_size", "embed_dim", "max_seq_len", "padding_idx", "seed", "num_threads"], 3)}
                if rnd.random() < 0.5:
                    kwargs["dropout"] = rnd.choice([0.5, -0.1, 1.0, 2.0, float("nan"), "x"])
                cfg = GPTEmbeddingConfig(**kwargs)
                if cfg.vocab_size * cfg.embed_dim < 10**6 and cfg.max_seq_len * cfg.embed_dim < 10**6:
                    GPTEmbedding(config=cfg)
            elif op == 6:
                comp = rnd.choice(components)
                length = rnd.choice([some_int(), ids_like()])
                if isinstance(length, int) and length > 10**5:
                    length = 10**5  # a genuinely huge table is a resource request, not a crash
                comp(length, start_position=some_int()) if not isinstance(comp, TokenEmbedding) else comp(ids_like())
            elif op == 7:
                comp = rnd.choice(components[:2])
                comp.backward(rnd.choice([np.ones((rnd.randint(0, 3), rnd.randint(0, 6), 5), np.float32), some_value()]))
            elif op == 8:
                name = rnd.choice(layer.parameter_names() + ["nope"])
                v = layer.parameter(name) if rnd.random() < 0.5 else layer.gradient(name)
                v[...] = rnd.choice([0.0, np.nan, 1e30])
                del v
            elif op == 9:
                layer.touched_rows(); layer.memory_bytes(); layer.num_parameters(); layer.grads()
            elif op == 10:
                out = rnd.choice([np.empty((1, 2, 5), np.float32), np.empty((1, 2, 5)), np.empty((2, 5), np.float32), some_value()])
                layer([[1, 2]], out=out)
            else:
                GPTEmbeddingConfig.from_preset(rnd.choice(["gpt2", "gpt2-xl", "", "gpt2\x00x", "GPT2", some_value()]))
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except Exception as e:  # noqa: BLE001 - every ordinary exception is fine
            outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1
    print(sorted(outcomes.items()))
""")


def test_hostile_arguments_never_crash():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    r = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    assert "('ok'," in r.stdout, r.stdout
