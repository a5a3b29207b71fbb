import CKernelDispatch
import CMemoryHints

/// The forward kernel (after llm.c's `encoder_forward` and `layernorm_forward`):
///
///   out[r] = dropout(layerNorm?(s * wte[ids[r]] + P[pos[r]]))   for r in [r0, r1)
///
/// One worker's contiguous range of rows. Table rows are widened to float32 as they are
/// read (bf16, f16) and the result is rounded once to the output dtype as it is stored. It
/// asks for the token row ``prefetchDistance`` tokens ahead of the one it computes. With
/// `spill` (the worker's D floats of scratch) a row is assembled there and then stored;
/// otherwise (float32 output, normal stores) it is assembled in place in `out`. Plain
/// lookups (no layer norm, no dropout) go straight to the output.
func forwardRows(_ a: UnsafePointer<gpte_kernel_args>, _ r0: Int, _ r1: Int, _ spill: UnsafeMutablePointer<Float>?) {
    if a.pointee.wte_dtype >= Int32(GPTE_DTYPE_GGML) {
        // Rows of a block format are decoded into the second half of the spill and read
        // from there as float32 (a block type this path does not decode writes nothing).
        guard let spill, ggmlRowBytes(a.pointee.wte_dtype - Int32(GPTE_DTYPE_GGML), Int(a.pointee.dim)) > 0 else { return }
        switch a.pointee.position_kind == Int32(GPTE_POSITIONS_TABLE) ? a.pointee.wpe_dtype : Int32(GPTE_DTYPE_F32) {
        case Int32(GPTE_DTYPE_BF16): forwardRows(a, r0, r1, spill, F32Elements.self, BF16Elements.self)
        case Int32(GPTE_DTYPE_F16): forwardRows(a, r0, r1, spill, F32Elements.self, F16Elements.self)
        default: forwardRows(a, r0, r1, spill, F32Elements.self, F32Elements.self)
        }
        return
    }
    switch (a.pointee.wte_dtype, a.pointee.position_kind == Int32(GPTE_POSITIONS_TABLE) ? a.pointee.wpe_dtype : Int32(GPTE_DTYPE_F32)) {
    case (Int32(GPTE_DTYPE_BF16), Int32(GPTE_DTYPE_BF16)): forwardRows(a, r0, r1, spill, BF16Elements.self, BF16Elements.self)
    case (Int32(GPTE_DTYPE_BF16), _): forwardRows(a, r0, r1, spill, BF16Elements.self, F32Elements.self)
    // f16 tables: the faster widening where this thread's MXCSR allows it (``daz()``).
    case (Int32(GPTE_DTYPE_F16), Int32(GPTE_DTYPE_F16)):
        daz() ? forwardRows(a, r0, r1, spill, F16Elements.self, F16Elements.self)
              : forwardRows(a, r0, r1, spill, F16ElementsWithoutDAZ.self, F16ElementsWithoutDAZ.self)
    case (Int32(GPTE_DTYPE_F16), _):
        daz() ? forwardRows(a, r0, r1, spill, F16Elements.self, F32Elements.self)
              : forwardRows(a, r0, r1, spill, F16ElementsWithoutDAZ.self, F32Elements.self)
    // Float32 token rows with 16-bit position rows: phase two of a two-phase forward reads
    // the summed float32 token part next to a 16-bit learned position table.
    case (_, Int32(GPTE_DTYPE_BF16)): forwardRows(a, r0, r1, spill, F32Elements.self, BF16Elements.self)
    case (_, Int32(GPTE_DTYPE_F16)): forwardRows(a, r0, r1, spill, F32Elements.self, F16Elements.self)
    default: forwardRows(a, r0, r1, spill, F32Elements.self, F32Elements.self)
    }
}

/// ``forwardRows(_:_:_:_:)`` for token rows of `W` and position rows of `P`: picks the store.
@inline(__always)
private func forwardRows<W: RowElement, P: RowElement>(_ a: UnsafePointer<gpte_kernel_args>, _ r0: Int, _ r1: Int,
                                                        _ spill: UnsafeMutablePointer<Float>?, _ w: W.Type, _ p: P.Type) {
    let rows = ForwardRows(a, spill: spill), range = r0..<r1
    let streams = a.pointee.store_mode != Int32(GPTE_STORE_CACHED)
    switch a.pointee.out_dtype {
    case Int32(GPTE_DTYPE_BF16):
        switch Int(a.pointee.store_mode) {
        case Int(GPTE_STORE_STREAM32): rows.run(range, w, p, Pair16StreamStore<BF16Format>.self)
        case Int(GPTE_STORE_CACHED): rows.run(range, w, p, BF16Store.self)
        default: rows.run(range, w, p, BF16StreamStore.self)
        }
    case Int32(GPTE_DTYPE_F16):
        switch Int(a.pointee.store_mode) {
        case Int(GPTE_STORE_STREAM32):
            ftz() ? rows.run(range, w, p, Pair16StreamStore<F16Format>.self)
                  : rows.run(range, w, p, Pair16StreamStore<F16FormatWithoutFTZ>.self)
        case Int(GPTE_STORE_CACHED): rows.run(range, w, p, F16Store.self)
        default: rows.run(range, w, p, F16StreamStore.self)
        }
    default:
        switch Int(a.pointee.store_mode) {
        case Int(GPTE_STORE_STREAM32): rows.run(range, w, p, Stream32Store.self)
        case Int(GPTE_STORE_STREAM32_SHIFTED): rows.run(range, w, p, Stream32ShiftedStore.self)
        case Int(GPTE_STORE_STREAM16): rows.run(range, w, p, Stream16Store.self)
        default: rows.run(range, w, p, CachedStore.self)
        }
    }
    if streams { gpte_stream_fence() }
}

/// One worker's rows.
private struct ForwardRows {
    let t: Tables
    let tokens: Tokens
    let normalize: Bool
    let mask: Dropout?
    let saveMean: UnsafeMutablePointer<Float>?
    let saveRstd: UnsafeMutablePointer<Float>?
    let out: UnsafeMutableRawPointer
    /// The worker's scratch row, or `nil` (float32 rows are then assembled in place).
    let spill: UnsafeMutablePointer<Float>?
    /// Where a row of a block-format table is decoded (D floats past the spill), or `nil`.
    let decoded: UnsafeMutablePointer<Float>?

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
        decoded = t.blockType >= 0 ? spill.map { $0 + Int(a.pointee.dim) } : nil
    }

    /// Computes `rows` from token rows of `W` and position rows of `P`, storing with `S`.
    @inline(__always)
    func run<W: RowElement, P: RowElement, S: RowStore>(_ rows: Range<Int>, _: W.Type, _: P.Type, _: S.Type) {
        let d = t.dim
        let outRowBytes = d * S.elementBytes
        for r in rows.lowerBound..<min(rows.upperBound, rows.lowerBound + prefetchDistance) {
            prefetchRow(t.tokenRowForPrefetch(tokens.ids[r]), t.wteRowBytes)
        }
        // A line (64 bytes) of the row ahead per 16 columns of float32, 32 of 16-bit elements.
        let aheadStep = W.bytes == 4 ? 15 : 31, rowBytes = t.prefetchBytes
        if !normalize && mask == nil {
            // Plain lookups: one row at a time, straight into the output.
            let sv = Vec(repeating: t.scale)
            var st = S(row: out + rows.lowerBound * outRowBytes)
            // A shard's rows of tokens it does not hold are -0.0 (see gpte_kernel_args).
            let negativeZero = Vec(repeating: -0.0)
            for r in rows {
                let ahead = t.rowAhead(tokens.ids[r + prefetchDistance < rows.upperBound ? r + prefetchDistance : r], decoded: decoded)
                let row = out + r * outRowBytes
                if r != rows.lowerBound { st.next(row: row) }
                var c = 0
                guard t.holds(tokens.ids[r]) else {
                    while c + 8 <= d { st.put(negativeZero, column: c); c &+= 8 }
                    while c < d { st.put1(-0.0, column: c); c += 1 }
                    st.endRow()
                    continue
                }
                let w = t.tokenRow(tokens.ids[r], decoded: decoded)
                // A sinusoidal row past the cache goes to the scratch row, or (float32
                // output in place) to the output row itself, which is then rewritten.
                if let p = t.positionRow(tokens.position(r), spill: spill ?? row.assumingMemoryBound(to: Float.self)) {
                    while c + 8 <= d {
                        if c & aheadStep == 0 && c &* W.bytes < rowBytes { gpte_prefetch_l2(ahead + c * W.bytes) }
                        st.put(sv * W.load8(w, c) + P.load8(p, c), column: c)
                        c &+= 8
                    }
                    while c < d { st.put1(t.scale * W.load1(w, c) + P.load1(p, c), column: c); c += 1 }
                } else {
                    while c + 8 <= d {
                        if c & aheadStep == 0 && c &* W.bytes < rowBytes { gpte_prefetch_l2(ahead + c * W.bytes) }
                        st.put(sv * W.load8(w, c), column: c)
                        c &+= 8
                    }
                    while c < d { st.put1(t.scale * W.load1(w, c), column: c); c += 1 }
                }
                st.endRow()
            }
            st.finish()
            return
        }
        var st = S(row: out + rows.lowerBound * outRowBytes)
        for r in rows {
            let ahead = t.rowAhead(tokens.ids[r + prefetchDistance < rows.upperBound ? r + prefetchDistance : r], decoded: decoded)
            let row = out + r * outRowBytes
            let x = spill ?? row.assumingMemoryBound(to: Float.self)
            // A sinusoidal row past the cache is computed into x itself, then added in place.
            let sum = gather(x, t.tokenRow(tokens.ids[r], decoded: decoded), t.positionRow(tokens.position(r), spill: x), t.scale, d,
                             W.self, P.self, ahead: ahead, aheadBytes: t.prefetchBytes)
            if r != rows.lowerBound { st.next(row: row) }
            var c = 0
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
                        st.put((y * k).replacing(with: 0, where: .!stream.next()), column: c)
                        c += 8
                    }
                    while c < d {
                        let y = (x[c] - mean) * rstd * gamma[c] + beta[c]
                        st.put1(mask.keep(rowKey: key, column: c) ? y * mask.keepScale : 0, column: c)
                        c += 1
                    }
                } else {
                    while c + 8 <= d {
                        st.put((load(x + c) - mv) * rv * load(gamma + c) + load(beta + c), column: c)
                        c += 8
                    }
                    while c < d { st.put1((x[c] - mean) * rstd * gamma[c] + beta[c], column: c); c += 1 }
                }
            } else if let mask {
                let key = mask.rowKey(r), k = Vec(repeating: mask.keepScale)
                var stream = MaskStream(threshold: mask.threshold, rowKey: key, column: 0)
                while c + 8 <= d {
                    st.put((load(x + c) * k).replacing(with: 0, where: .!stream.next()), column: c)
                    c += 8
                }
                while c < d { st.put1(mask.keep(rowKey: key, column: c) ? x[c] * mask.keepScale : 0, column: c); c += 1 }
            } else {
                // Neither: a row assembled in scratch (streamed or 16-bit output) is stored.
                while c + 8 <= d { st.put(load(x + c), column: c); c += 8 }
                while c < d { st.put1(x[c], column: c); c += 1 }
            }
            st.endRow()
        }
        st.finish()
    }
}
