import CKernelDispatch
import CMemoryHints

/// The forward kernel (after llm.c's `encoder_forward` and `layernorm_forward`):
///
///   out[r] = dropout(layerNorm?(s * wte[ids[r]] + P[pos[r]]))   for r in [r0, r1)
///
/// One worker's contiguous range of rows. It asks for the token row ``prefetchDistance``
/// tokens ahead of the one it computes. With `spill` (the worker's D floats of scratch,
/// given when the output is streamed) a row is assembled there and written with streaming
/// stores; otherwise it is assembled in place in `out`. Plain lookups (no layer norm, no
/// dropout) go straight to the output.
func forwardRows(_ a: UnsafePointer<gpte_kernel_args>, _ r0: Int, _ r1: Int, _ spill: UnsafeMutablePointer<Float>?) {
    let rows = ForwardRows(a, spill: spill)
    switch Int(a.pointee.store_mode) {
    case Int(GPTE_STORE_STREAM32): rows.run(r0..<r1, Stream32Store.self); gpte_stream_fence()
    case Int(GPTE_STORE_STREAM32_SHIFTED): rows.run(r0..<r1, Stream32ShiftedStore.self); gpte_stream_fence()
    case Int(GPTE_STORE_STREAM16): rows.run(r0..<r1, Stream16Store.self); gpte_stream_fence()
    default: rows.run(r0..<r1, CachedStore.self)
    }
}

/// One worker's rows of ``forwardRows(_:_:_:_:)``.
private struct ForwardRows {
    let t: Tables
    let tokens: Tokens
    let normalize: Bool
    let mask: Dropout?
    let saveMean: UnsafeMutablePointer<Float>?
    let saveRstd: UnsafeMutablePointer<Float>?
    let out: UnsafeMutablePointer<Float>
    /// The worker's scratch row when streaming, else `nil` (rows are assembled in place).
    let spill: UnsafeMutablePointer<Float>?

    @inline(__always)
    init(_ a: UnsafePointer<gpte_kernel_args>, spill: UnsafeMutablePointer<Float>?) {
        t = Tables(a)
        tokens = Tokens(a)
        normalize = a.pointee.normalize != 0
        mask = Dropout.of(a)
        saveMean = a.pointee.save_mean
        saveRstd = a.pointee.save_rstd
        out = a.pointee.out
        self.spill = spill
    }

    /// Computes `rows`, writing the output with `S`.
    @inline(__always)
    func run<S: RowStore>(_ rows: Range<Int>, _: S.Type) {
        let d = t.dim
        for r in rows.lowerBound..<min(rows.upperBound, rows.lowerBound + prefetchDistance) {
            prefetchRow(t.tokenRow(tokens.ids[r]), d)
        }
        if !normalize && mask == nil {
            // Plain lookups: one row at a time, straight into the output.
            let sv = Vec(repeating: t.scale)
            for r in rows {
                let ahead = t.tokenRow(tokens.ids[r + prefetchDistance < rows.upperBound ? r + prefetchDistance : r])
                let x = out + r * d, w = t.tokenRow(tokens.ids[r])
                var c = 0
                var st = S()
                if let p = t.positionRow(tokens.position(r), spill: spill ?? x) {
                    while c + 8 <= d {
                        if c & 15 == 0 { gpte_prefetch(ahead + c) }
                        st.put(sv * load(w + c) + load(p + c), x + c)
                        c &+= 8
                    }
                    st.finish()
                    while c < d { x[c] = t.scale * w[c] + p[c]; c += 1 }
                } else {
                    while c + 8 <= d {
                        if c & 15 == 0 { gpte_prefetch(ahead + c) }
                        st.put(sv * load(w + c), x + c)
                        c &+= 8
                    }
                    st.finish()
                    while c < d { x[c] = t.scale * w[c]; c += 1 }
                }
            }
            return
        }
        for r in rows {
            let ahead = t.tokenRow(tokens.ids[r + prefetchDistance < rows.upperBound ? r + prefetchDistance : r])
            let dst = out + r * d
            let x = spill ?? dst
            // A sinusoidal row past the cache is computed into x itself, then added in place.
            let sum = gather(x, t.tokenRow(tokens.ids[r]), t.positionRow(tokens.position(r), spill: x), t.scale, 0, d,
                             ahead: ahead)
            var c = 0
            var st = S()
            defer { st.finish() }
            if normalize, let gamma = t.gamma, let beta = t.beta {
                let mean = sum / Float(d)
                let variance = RowMath.sumSquaredDeviation(x, d, mean: mean) / Float(d)
                let rstd = 1 / (variance + t.eps).squareRoot()
                saveMean?[r] = mean
                saveRstd?[r] = rstd
                let mv = Vec(repeating: mean), rv = Vec(repeating: rstd)
                if let mask {
                    let key = mask.rowKey(r), k = Vec(repeating: mask.keepScale)
                    var stream = MaskStream(threshold: mask.threshold, rowKey: key, column: 0)
                    while c + 8 <= d {
                        let y = (load(x + c) - mv) * rv * load(gamma + c) + load(beta + c)
                        st.put((y * k).replacing(with: 0, where: .!stream.next()), dst + c)
                        c += 8
                    }
                    while c < d {
                        let y = (x[c] - mean) * rstd * gamma[c] + beta[c]
                        dst[c] = mask.keep(rowKey: key, column: c) ? y * mask.keepScale : 0
                        c += 1
                    }
                } else {
                    while c + 8 <= d {
                        st.put((load(x + c) - mv) * rv * load(gamma + c) + load(beta + c), dst + c)
                        c += 8
                    }
                    while c < d { dst[c] = (x[c] - mean) * rstd * gamma[c] + beta[c]; c += 1 }
                }
            } else if let mask {
                let key = mask.rowKey(r), k = Vec(repeating: mask.keepScale)
                var stream = MaskStream(threshold: mask.threshold, rowKey: key, column: 0)
                while c + 8 <= d {
                    st.put((load(x + c) * k).replacing(with: 0, where: .!stream.next()), dst + c)
                    c += 8
                }
                while c < d { dst[c] = mask.keep(rowKey: key, column: c) ? x[c] * mask.keepScale : 0; c += 1 }
            }
        }
    }
}
