"""End to end: this layer + a linear output head + softmax cross-entropy, trained with
plain SGD in numpy on a toy next-token task. The loss must fall clearly: the gradient-flow
check a user would believe."""
import numpy as np
import pytest

from gpt_embedding import GPTEmbedding

V, D, T, B = 16, 32, 12, 16


def batches(rng):
    """Sequences of the permutation x -> (5x + 3) mod 16 from random starts: the next
    token is a function of the current one."""
    while True:
        x = np.empty((B, T + 1), dtype=np.int64)
        x[:, 0] = rng.integers(0, V, B)
        for t in range(T):
            x[:, t + 1] = (5 * x[:, t] + 3) % V
        yield x[:, :-1], x[:, 1:]


def cross_entropy(logits, targets):
    """Mean loss and its gradient with respect to the logits (float64)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    n = targets.size
    loss = -np.log(p.reshape(n, V)[np.arange(n), targets.reshape(n)]).mean()
    grad = p
    grad.reshape(n, V)[np.arange(n), targets.reshape(n)] -= 1
    return loss, grad / n


@pytest.mark.parametrize("via", ["views", "state_dict"])
def test_loss_falls_below_half(via):
    rng = np.random.default_rng(0)
    layer = GPTEmbedding(vocab_size=V, embed_dim=D, max_seq_len=T, dropout=0.1, scale_embeddings=False,
                         init_std=0.1, seed=1)
    W = rng.standard_normal((D, V)) * 0.1
    b = np.zeros(V)
    lr = 0.5
    data = batches(rng)

    def eval_loss():
        layer.eval()
        ids, targets = next(batches(np.random.default_rng(123)))
        emb = layer(ids, use_layer_norm=True).astype(np.float64)
        layer.train()
        return cross_entropy(emb @ W + b, targets)[0]

    start = eval_loss()
    assert abs(start - np.log(V)) < 0.5
    params = layer.named_parameters() if via == "views" else None
    for step in range(150):
        ids, targets = next(data)
        emb = layer(ids, use_layer_norm=True).astype(np.float64)  # training forward: dropout on
        loss, dlogits = cross_entropy(emb @ W + b, targets)
        demb = dlogits @ W.T
        W -= lr * emb.reshape(-1, D).T @ dlogits.reshape(-1, V)
        b -= lr * dlogits.reshape(-1, V).sum(axis=0)
        layer.zero_grad()
        layer.backward(demb.astype(np.float32))
        if step == 0:
            grads = layer.grads()
            assert all(np.abs(g).sum() > 0 for g in grads.values()), "every parameter gets a gradient"
        if via == "views":
            for _, p, g in params:
                p -= np.float32(lr) * g  # in place, through zero-copy views
        else:
            grads = layer.grads()
            layer.load_state_dict({k: v - np.float32(lr) * grads[k] for k, v in layer.state_dict().items()})
    end = eval_loss()
    assert end < start / 2, (start, end)
    del params
