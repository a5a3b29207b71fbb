import CKernelDispatch
import CMemoryHints

/// AdamW, element by element, as `torch.optim.AdamW`'s single-tensor path computes it in
/// float32 (shapes: a `[rows, cols]` parameter; p, grad, m, v, master all `[rows, cols]`):
///
///     g  = grad * grad_scale
///     p  = p * decay                                   decay = 1 - lr * weight_decay
///     m  = m + w1 * (g - m)          (w1 < 0.5)        torch.lerp's two forms
///        = g - (g - m) * (1 - w1)    (otherwise)
///     v  = v * beta2 + ((1 - beta2) * g) * g           addcmul
///     p  = p + (-step_size * m) / (sqrt(v) / sqrt(bc2) + eps)   addcdiv
///
/// Each operation rounds to float32 once, in this order, with no fused multiply-add: so
/// every CPU path gives the same bits, and the result is PyTorch's to float rounding
/// (PyTorch's vectorised lerp fuses its multiply-add on AVX2 machines; nothing else
/// differs). The update of one element never reads another, so the split into rows and
/// workers cannot change a bit.
///
/// Not inlined into the kernel table's C-convention closure: inlined there, the C hints
/// (`gpte_sqrt8`, the prefetches) stayed calls, one per vector of the float32 step.
@inline(never)
func adamwRows(_ a: UnsafePointer<gpte_adamw_args>, _ i0: Int, _ i1: Int) {
    let args = a.pointee
    guard let master = args.master else {
        adamw(args, args.param.assumingMemoryBound(to: Float.self), CachedStore.self, i0, i1)
        return
    }
    // A dense step over a large 16-bit table writes its values around the caches: they are
    // only written, and a normal store would first read each line (2 of the 32 bytes per
    // element the step moves, and the reads compete with p, m, v and g's).
    let mode = args.store_mode, streams = mode != Int32(GPTE_STORE_CACHED)
    switch (args.param_dtype, mode) {
    case (Int32(GPTE_DTYPE_BF16), Int32(GPTE_STORE_CACHED)): adamw(args, master, BF16Store.self, i0, i1)
    case (Int32(GPTE_DTYPE_BF16), Int32(GPTE_STORE_STREAM32)): adamw(args, master, Pair16StreamStore<BF16Format>.self, i0, i1)
    case (Int32(GPTE_DTYPE_BF16), _): adamw(args, master, BF16StreamStore.self, i0, i1)
    case (Int32(GPTE_DTYPE_F16), Int32(GPTE_STORE_CACHED)): adamw(args, master, F16Store.self, i0, i1)
    case (Int32(GPTE_DTYPE_F16), Int32(GPTE_STORE_STREAM32)):
        // The faster rounding where this thread's MXCSR allows it (``ftz()``).
        ftz() ? adamw(args, master, Pair16StreamStore<F16Format>.self, i0, i1)
              : adamw(args, master, Pair16StreamStore<F16FormatWithoutFTZ>.self, i0, i1)
    case (Int32(GPTE_DTYPE_F16), _): adamw(args, master, F16StreamStore.self, i0, i1)
    default: adamw(args, master, CachedStore.self, i0, i1)
    }
    if streams { gpte_stream_fence() }
}

/// The update with the float32 values at `p` (the parameter itself or its master copy),
/// the stored values written back through `S` (a no-op copy when `p` is the parameter).
@inline(__always)
private func adamw<S: RowStore>(_ a: gpte_adamw_args, _ p: UnsafeMutablePointer<Float>, _: S.Type, _ i0: Int, _ i1: Int) {
    let cols = Int(a.cols)
    let separate = a.master != nil
    guard let grad = a.grad, let ms = a.exp_avg, let vs = a.exp_avg_sq, let param = a.param else { return }
    let gs = Vec(repeating: a.grad_scale), decay = Vec(repeating: a.decay)
    let w = Vec(repeating: a.lerp_weight), b2 = Vec(repeating: a.beta2), omb2 = Vec(repeating: a.one_minus_beta2)
    let bc2 = Vec(repeating: a.bias_correction2_sqrt), eps = Vec(repeating: a.eps), nss = Vec(repeating: a.neg_step_size)
    let small = a.lerp_small != 0
    for i in i0..<i1 {
        let row = rowOf(a.rows, i)
        let o = row * cols
        let pr = p + o, gr = grad + o, mr = ms + o, vr = vs + o
        var st = S(row: param + o * S.elementBytes)
        // A row backward did not touch has a zero gradient: the same arithmetic on +0
        // without reading it.
        var hasGradient = true
        if let flags = a.grad_rows { hasGradient = flags[row] != 0 }
        // A row list (the lazy step) jumps between rows no prefetcher can guess: ask for the
        // row `adamwPrefetchDistance` items ahead, a line of each array per 16 columns, into
        // L2: four rows ahead of four arrays are 48 KiB, more than the L1 holds, and the L1's
        // few miss buffers stalled the loop on the prefetches (asked into L1, the lazy step
        // took 1.25x as long, 1 x 1024, 2 threads, alternating builds).
        let ahead = a.rows != nil && i + adamwPrefetchDistance < i1 ? rowOf(a.rows, i + adamwPrefetchDistance) * cols : -1
        var c = 0
        while c + 8 <= cols {
            if ahead >= 0 && c & 15 == 0 {
                gpte_prefetch_l2(p + ahead + c)
                gpte_prefetch_l2(ms + ahead + c)
                gpte_prefetch_l2(vs + ahead + c)
                gpte_prefetch_l2(grad + ahead + c)
            }
            let g = hasGradient ? load(gr + c) * gs : Vec()
            var x = load(pr + c) * decay
            var m = load(mr + c)
            m = small ? m + w * (g - m) : g - (g - m) * w
            let v = load(vr + c) * b2 + (omb2 * g) * g
            x = x + (nss * m) / (squareRoots(v) / bc2 + eps)
            store(m, mr + c)
            store(v, vr + c)
            if separate { store(x, pr + c) }
            st.put(x, column: c)
            c += 8
        }
        while c < cols {
            let g = hasGradient ? gr[c] * a.grad_scale : 0
            var x = pr[c] * a.decay
            var m = mr[c]
            m = small ? m + a.lerp_weight * (g - m) : g - (g - m) * a.lerp_weight
            let v = vr[c] * a.beta2 + (a.one_minus_beta2 * g) * g
            x = x + (a.neg_step_size * m) / (gpte_sqrt1(v) / a.bias_correction2_sqrt + a.eps)
            mr[c] = m
            vr[c] = v
            if separate { pr[c] = x }
            st.put1(x, column: c)
            c += 1
        }
        st.endRow()
    }
}

/// Rows between the one the lazy step updates and the one it asks for (into L2). Four arrays
/// of each row are asked for, so fewer rows ahead than the forward's: 8 was no faster
/// (1 x 1024, 2 threads; into L1 it was 3-5 % slower than 4).
let adamwPrefetchDistance = 4

/// The square root of each lane, correctly rounded, in one instruction (the standard
/// library's vector `squareRoot()` is a lane loop, and `Float.squareRoot()` keeps C's
/// errno branch and libm call per lane).
@inline(__always)
private func squareRoots(_ v: Vec) -> Vec { gpte_sqrt8(v) }

/// `out[i - i0] = sum(x[row]^2)` for items `[i0, i1)`: two eight-lane accumulators, lanes
/// added in ``hsum(_:)``'s order, the tail in column order; widened to double per row.
@inline(__always)
func sumSquaresRows(_ x: UnsafePointer<Float>, _ cols: Int, _ rows: UnsafePointer<Int32>?, _ i0: Int, _ i1: Int,
                    _ out: UnsafeMutablePointer<Double>) {
    for i in i0..<i1 {
        let row = rowOf(rows, i)
        let r = x + row * cols
        var a0 = Vec(), a1 = Vec()
        var c = 0
        while c + 16 <= cols {
            let u = load(r + c), w = load(r + c + 8)
            a0 += u * u
            a1 += w * w
            c += 16
        }
        var s = hsum(a0 + a1)
        while c < cols { s += r[c] * r[c]; c += 1 }
        out[i - i0] = Double(s)
    }
}

/// Row `rows[i]`, or `i` without a list.
@inline(__always)
private func rowOf(_ rows: UnsafePointer<Int32>?, _ i: Int) -> Int {
    if let rows { return Int(rows[i]) }
    return i
}
