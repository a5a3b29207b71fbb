"""The fast forward path of the numpy API (issue 18, item 8): the same results as the general
path, the same errors, the thread contract of the per-layer lock, and a (generous) bound on
the call overhead."""
import ctypes
import threading
import time

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingIndexError, GPTEmbeddingStateError, _lib
from gpt_embedding._arrays import ALIGNED_MIN_BYTES, address
from gpt_embedding.layer import _Access

D = 16


def make(**kw):
    return GPTEmbedding(60, D, 32, dropout=0.1, seed=11, **kw)


def test_address_reads_the_data_pointer():
    base = np.arange(120, dtype=np.float32).reshape(10, 12)
    for a in (base, base[2:], base[:, 3:], base.T, base[::2, ::3], np.empty(0), np.array(5),
              np.frombuffer(bytearray(64), np.int32), np.zeros((3, 4), np.int64)[1]):
        assert address(a) == a.ctypes.data == a.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("layer_norm", [None, True, False])
def test_fast_path_equals_the_general_path(dtype, training, layer_norm):
    fast, general = make(), make()  # same seed: same tables and dropout stream
    fast.train(training)
    general.train(training)
    ids = np.array([[3, 7, 59, 0], [1, 1, 2, 40]], dtype=dtype)
    for start in (0, 5):
        want = general(ids.tolist(), use_layer_norm=layer_norm, start_position=np.int64(start))  # general path
        got = fast(ids, use_layer_norm=layer_norm, start_position=start)
        np.testing.assert_array_equal(got, want)
        assert got.shape == (2, 4, D) and got.dtype == np.float32 and got.flags.c_contiguous
    if training:
        g = np.ones((2, 4, D), np.float32)
        fast.backward(g)
        general.backward(g)
        for name, grad in general.grads().items():
            np.testing.assert_array_equal(fast.grads()[name], grad, err_msg=name)


def test_out_one_dimensional_ids_and_large_outputs():
    layer = make().eval()
    ids = np.array([4, 5, 6], np.int64)
    out = np.full((1, 3, D), np.nan, np.float32)
    assert layer(ids, out=out) is out
    np.testing.assert_array_equal(out, layer([[4, 5, 6]]))
    big = GPTEmbedding(60, 1024, 32, dropout=0.0, seed=1).eval()
    ids = np.arange(32, dtype=np.int32).reshape(2, 16)
    y = big(ids)
    assert y.nbytes >= ALIGNED_MIN_BYTES and address(y) % 64 == 0  # large outputs are 64-byte aligned
    np.testing.assert_array_equal(y, big(ids.tolist()))


def test_fast_path_errors_are_the_general_paths():
    layer = make().eval()
    ids = np.array([[1, 2]], np.int64)
    with pytest.raises(GPTEmbeddingIndexError, match="60"):
        layer(np.array([[1, 60]], np.int64))
    with pytest.raises(ValueError, match="start_position"):
        layer(ids, start_position=-1)
    with pytest.raises(ValueError, match="64-bit range"):
        layer(ids, start_position=1 << 64)  # ctypes would wrap it to 0
    with pytest.raises(ValueError, match="out must have shape"):
        layer(ids, out=np.empty((1, 3, D), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        layer(ids, out=np.empty((1, 2, 2 * D), np.float32)[:, :, ::2])
    with pytest.raises(ValueError, match="C-contiguous|writeable"):
        ro = np.empty((1, 2, D), np.float32)
        ro.flags.writeable = False
        layer(ids, out=ro)
    with pytest.raises(ValueError, match="float32"):
        layer(ids, out=np.empty((1, 2, D), np.float64))
    strided = np.arange(8, dtype=np.int64).reshape(2, 4)[:, ::2]  # copied by the general path
    np.testing.assert_array_equal(layer(strided), layer(np.ascontiguousarray(strided)))
    big_endian = np.array([[1, 2]], ">i8")
    np.testing.assert_array_equal(layer(big_endian), layer(ids))
    layer.close()
    with pytest.raises(GPTEmbeddingStateError, match="closed"):
        layer(ids)
    with pytest.raises(GPTEmbeddingStateError, match="closed"):
        layer.train()(ids)


# -- the per-layer readers-writer lock ---------------------------------------------------------

def test_readers_overlap():
    access = _Access()
    inside, release = threading.Barrier(3), threading.Event()

    def reader():
        access.enter_read()
        try:
            inside.wait(timeout=10)  # all three readers inside at once, or this times out
            release.wait(timeout=10)
        finally:
            access.exit_read()
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait(timeout=10)
    release.set()
    for t in threads:
        t.join(10)
    assert access._readers == 0 and not access._writer


def test_a_writer_waits_for_readers_and_blocks_new_ones():
    access = _Access()
    log = []
    access.enter_read()
    writer_in = threading.Event()

    def writer():
        access.enter_write()
        log.append("writer")
        writer_in.set()
        time.sleep(0.05)
        log.append("writer done")
        access.exit_write()

    def late_reader():
        access.enter_read()
        log.append("late reader")
        access.exit_read()
    w = threading.Thread(target=writer)
    w.start()
    deadline = time.time() + 10
    while not access._writer and time.time() < deadline:  # the writer registered and waits
        time.sleep(0.001)
    r = threading.Thread(target=late_reader)
    r.start()
    time.sleep(0.05)
    assert log == []  # the writer waits for the first reader; the late reader waits for the writer
    access.exit_read()
    w.join(10)
    r.join(10)
    assert log == ["writer", "writer done", "late reader"]


def test_writers_exclude_each_other():
    access = _Access()
    active, worst = [0], [0]

    def body():
        active[0] += 1
        worst[0] = max(worst[0], active[0])
        time.sleep(0)  # let another thread try to get in
        active[0] -= 1

    def writer():
        for _ in range(200):
            access.write(body)
    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert worst[0] == 1


def test_eval_forwards_while_training_on_the_same_layer():
    """Eval forwards (readers, the fast path) overlap each other and never a training forward
    or backward (writers) on the same C layer: the eval results stay exact while another
    thread trains (no optimizer runs, so the tables do not change)."""
    layer = make()
    ids = np.random.default_rng(1).integers(0, 60, (4, 8)).astype(np.int64)
    want = layer.eval()(ids)
    layer.train()
    # A second Python object over the same C layer and lock, in eval mode (the mode is a
    # Python attribute; the lock is what the threads share).
    reader = GPTEmbedding.__new__(GPTEmbedding)
    reader.__dict__.update(layer.__dict__)
    reader.training = False
    assert reader._access is layer._access
    errors = []
    stop = threading.Event()

    def evaluate():
        out = np.empty_like(want)
        try:
            while not stop.is_set():
                if not np.array_equal(reader.forward(ids, out=out), want):
                    errors.append("eval forward changed")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    def train():
        g = np.ones((*ids.shape, D), np.float32)
        try:
            for _ in range(200):
                layer.forward(ids, use_layer_norm=True)
                layer.backward(g)
                layer.zero_grad()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        finally:
            stop.set()
    threads = [threading.Thread(target=evaluate) for _ in range(2)] + [threading.Thread(target=train)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert layer._access._readers == 0 and not layer._access._writer


def test_two_layers_in_threads_use_the_fast_path_in_parallel():
    layers = [make().eval() for _ in range(2)]
    ids = np.arange(16, dtype=np.int32).reshape(2, 8)
    want = layers[0](ids)
    results = []

    def run(layer):
        out = np.empty_like(want)
        for _ in range(300):
            layer(ids, out=out)
        results.append(out.copy())
    threads = [threading.Thread(target=run, args=(layer,)) for layer in layers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2 and all(np.array_equal(r, want) for r in results)


# -- the overhead (generous: the benchmark measures it properly) --------------------------------

def test_decode_step_overhead_is_small():
    layer = GPTEmbedding(1000, 768, 64, dropout=0.0).eval()
    ids = np.array([[7]], np.int64)
    out = np.empty((1, 1, 768), np.float32)
    fn = _lib.lib.gpt_embedding_forward_i64
    h, ia, oa = layer._hv, address(ids), address(out)

    def best(f, n=2000, rounds=7):
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            times.append((time.perf_counter() - t0) / n)
        return min(times) * 1e6
    bare = best(lambda: fn(h, ia, 1, 1, None, 5, 0, oa, 768))
    api = best(lambda: layer.forward(ids, out=out, start_position=5))
    # ~2-3 µs above the bare call on a quiet machine; 25 µs leaves room for a loaded CI box
    # and catches a return of the old per-call costs (~35 µs).
    assert api - bare < 25, (api, bare)
    assert ctypes.sizeof(ctypes.c_void_p) == 8
