"""Threads: ctypes releases the GIL during every call, so Python threads really run the
library at the same time. Results must equal sequential runs."""
import threading

import numpy as np

from gpt_embedding import GPTEmbedding

B, T, V, D = 8, 64, 500, 128


def workload(seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (B, T)).astype(np.int32 if seed % 2 else np.int64)
    grad = rng.standard_normal((B, T, D)).astype(np.float32)
    return ids, grad


def train_steps(layer, ids, grad, steps=15):
    outs = []
    for step in range(steps):
        out = layer(ids, use_layer_norm=step % 2 == 0, start_position=step % 3)
        layer.backward(grad)
        outs.append(out)
    return outs, layer.grads()


def make(seed):
    return GPTEmbedding(V, D, 128, dropout=0.1, seed=seed, num_threads=1)


def run_in_threads(targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        return run
    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_two_layers_in_two_threads_equal_sequential_runs():
    work = [workload(1), workload(2)]
    expected = [train_steps(make(s), *work[s - 1]) for s in (1, 2)]
    results = [None, None]

    def job(i):
        return lambda: results.__setitem__(i, train_steps(make(i + 1), *work[i]))
    for _ in range(3):
        run_in_threads([job(0), job(1)])
        for (outs, grads), (exp_outs, exp_grads) in zip(results, expected):
            for a, b in zip(outs, exp_outs):
                np.testing.assert_array_equal(a, b)
            for k in exp_grads:
                np.testing.assert_array_equal(grads[k], exp_grads[k])


def test_two_thread_layers_backward_at_the_same_time():
    """Two layers of two threads each, trained from two Python threads at once: the
    library's thread team serves one call at a time, so the other call runs its parts one
    after another on its own thread. The layer-norm backward's schedule hands blocks to its
    two workers in turn; it must not wait for a worker that only starts once the first has
    returned (it did, and hung, with the blocks of 64 rows). Sizes give several blocks and
    two workers; each thread's gradients must equal a sequential run's, within a time limit."""
    b, t, v, d = 4, 1024, 3000, 256
    rng = np.random.default_rng(11)
    ids = [rng.integers(0, v, (b, t)) for _ in range(2)]
    grads = [rng.standard_normal((b, t, d)).astype(np.float32) for _ in range(2)]

    def layer(seed):
        return GPTEmbedding(v, d, t, dropout=0.1, seed=seed, num_threads=2)

    def steps(lay, i, n=6):
        for _ in range(n):
            lay(ids[i], use_layer_norm=True)
            lay.backward(grads[i])
        return lay.grads()
    expected = [steps(layer(i), i) for i in range(2)]
    results = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, steps(layer(i), i)), daemon=True)
               for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads), "a backward did not return within 300 s"
    for got, exp in zip(results, expected):
        for k in exp:
            np.testing.assert_array_equal(got[k], exp[k])


def test_eval_forwards_share_one_layer():
    layer = make(3).eval()
    inputs = [workload(s)[0] for s in range(4)]
    expected = [layer(ids, use_layer_norm=True) for ids in inputs]
    got = [[] for _ in inputs]

    def job(i):
        return lambda: [got[i].append(layer(inputs[i], use_layer_norm=True)) for _ in range(10)]
    run_in_threads([job(i) for i in range(4)])
    for i, outs in enumerate(got):
        for out in outs:
            np.testing.assert_array_equal(out, expected[i])


def test_training_calls_on_one_shared_layer_are_serialised():
    # Every thread runs forward + backward with the same batch, dropout 0: whatever the
    # interleaving, each backward adds the same gradient, so the total is exact.
    layer = GPTEmbedding(V, D, 128, dropout=0.0, seed=4)
    ids, grad = workload(5)
    threads, steps = 4, 10

    def job():
        for _ in range(steps):
            layer(ids, use_layer_norm=True)
            layer.backward(grad)
            layer.state_dict()
            layer.eval()(ids)
            layer.train()
    run_in_threads([job] * threads)
    reference = GPTEmbedding(V, D, 128, dropout=0.0, seed=4)
    for _ in range(threads * steps):
        reference(ids, use_layer_norm=True)
        reference.backward(grad)
    got, want = layer.grads(), reference.grads()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_error_messages_are_per_thread():
    layer = make(6).eval()
    ids_ok = workload(7)[0]
    stop = threading.Event()
    messages = []

    def failing():
        for i in range(200):
            try:
                layer([[V + i]])
            except IndexError as e:
                messages.append((i, str(e)))

    def succeeding():
        while not stop.is_set():
            layer(ids_ok)
    helper = threading.Thread(target=succeeding)
    helper.start()
    try:
        run_in_threads([failing])
    finally:
        stop.set()
        helper.join()
    assert len(messages) == 200
    for i, message in messages:
        assert f"token id {V + i} at [0, 0]" in message


def test_a_forked_child_can_use_the_library():
    """fork() keeps only the calling thread: the child must not wait for the parent's worker
    threads. A forward large enough to be split runs in the parent, then in a child."""
    import os

    layer = GPTEmbedding(1000, 512, 1024, dropout=0.0, seed=3, num_threads=2)
    layer.eval()
    ids = np.random.default_rng(0).integers(0, 1000, (8, 1024))
    expected = layer(ids)  # 4M floats: split over the worker team
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        try:
            ok = np.array_equal(layer(ids), expected)
        except BaseException:  # noqa: BLE001
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
