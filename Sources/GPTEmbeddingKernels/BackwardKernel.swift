import CKernelDispatch
import CMemoryHints

/// The backward kernels (after llm.c's `encoder_backward` and `layernorm_backward`).
///
/// With the layer norm, y = xhat * gamma + beta and xhat = (x - mean) * rstd, so
///   dx = rstd * (gamma*dy - mean(gamma*dy) - xhat * mean(gamma*dy*xhat)).
/// ``layerNormBackwardRows`` recomputes x from the tables (the forward keeps nothing of
/// size [R, D]) and writes dx; ``scatterRows`` adds dx (or dy, without the layer norm)
/// into the table gradients. The layer runs the first over row ranges and the second over
/// column ranges, walking every row in order, so each gradient element is summed in token
/// order whatever the thread count.

/// `dwte[id] += s * dy` and `dwpe[p] += dy` for columns `[c0, c1)` of token rows
/// `[r0, r1)`, where dy is row `r - firstRow` of `dyRows` (elements of `dyType`: float32,
/// or bf16 / f16 widened as they are read), through the dropout mask when `masked`. Either
/// gradient may be absent (NULL: not wanted, nothing is written for it).
/// It asks for its part of the gradient rows ``prefetchDistance`` tokens ahead.
/// (Measured on this project's machines: column ranges with prefetch beat workers that own
/// whole rows, which must each read most of `dout`.)
func scatterRows(_ a: UnsafePointer<gpte_kernel_args>, _ r0: Int, _ r1: Int, _ dyRows: UnsafeRawPointer, _ dyType: Int32,
                 _ firstRow: Int, _ masked: Bool, _ c0: Int, _ c1: Int) {
    switch dyType {
    case Int32(GPTE_DTYPE_BF16): scatterRows(a, r0, r1, dyRows, BF16Elements.self, firstRow, masked, c0, c1)
    case Int32(GPTE_DTYPE_F16): scatterRows(a, r0, r1, dyRows, F16Elements.self, firstRow, masked, c0, c1)
    default: scatterRows(a, r0, r1, dyRows, F32Elements.self, firstRow, masked, c0, c1)
    }
}

/// ``scatterRows(_:_:_:_:_:_:_:_:_:)`` for dy rows of `G` elements.
@inline(__always)
private func scatterRows<G: RowElement>(_ a: UnsafePointer<gpte_kernel_args>, _ r0: Int, _ r1: Int, _ dyRows: UnsafeRawPointer,
                                        _: G.Type, _ firstRow: Int, _ masked: Bool, _ c0: Int, _ c1: Int) {
    let t = Tables(a), tokens = Tokens(a)
    let mask = masked ? Dropout.of(a) : nil
    let dwte = a.pointee.dwte, dwpe = a.pointee.dwpe
    guard dwte != nil || dwpe != nil else { return }
    let d = t.dim
    let sv = Vec(repeating: t.scale)
    let keepScale = Vec(repeating: mask?.keepScale ?? 1)
    for r in r0..<r1 {
        // The gradient row and dy row `prefetchDistance` tokens ahead, a line per 16
        // columns inside the loops below (a burst would fill the miss buffers).
        let ra = r + prefetchDistance < r1 ? r + prefetchDistance : r
        // A shard's gradient holds its rows only: row id - t.firstRow; other ids add nothing.
        // Without a token gradient, the position gradient row ahead is the one to ask for.
        let idAhead = tokens.ids[ra]
        let wAhead = if let dwte { dwte + (t.holds(idAhead) ? Int(idAhead) - t.firstRow : 0) * d }
                     else { dwpe.unsafelyUnwrapped + tokens.position(ra) * d }
        let gAhead = dyRows + (ra - firstRow) * d * G.bytes
        // With both gradients, the position row ahead too when the rows a sequence walks
        // through are more than the caches keep (1 MB: T = 1024 at D = 768, measured 10 %
        // faster; with every token the same id they are the misses that bound the loop).
        // A short sequence's rows stay cached, and asking for them was measured 50 % slower
        // (64 x 128: 4.2 -> 6.2 ms at 2 threads).
        let pAhead = dwte != nil && tokens.seq &* d >= 1 << 18 ? dwpe.map { $0 + tokens.position(ra) * d } : nil
        let id = Int(tokens.ids[r])
        let dwRow = id == t.paddingIdx || !t.holds(tokens.ids[r]) ? nil : dwte.map { $0 + (id - t.firstRow) * d }
        let dpRow = dwpe.map { $0 + tokens.position(r) * d }
        let key = mask?.rowKey(r) ?? 0
        var stream = mask.map { MaskStream(threshold: $0.threshold, rowKey: key, column: c0) }
        let gr = dyRows + (r - firstRow) * d * G.bytes
        guard dwRow != nil || dpRow != nil else { continue }
        let ahead = RowsAhead(token: wAhead, position: dwRow != nil && dpRow != nil ? pAhead : nil, dy: gAhead)
        addSpan(dwRow, dpRow, gr, G.self, c0, c1, sv, &stream, keepScale, ahead)
        addTail(dwRow, dpRow, gr, G.self, c0 + (c1 - c0) & ~7, c1, t.scale, mask, key)
    }
}

/// The scatter of worker `worker` when every token row has an owner (`owners[r]`: the
/// owning worker in bits 0-6, bit 7 set when the token's id is shared by the tokens of
/// several workers). Walking all token rows in order, the worker adds its own tokens' dy
/// into their position rows and, for an unshared id, their token rows, whole; for a shared
/// id it adds its columns `[c0, c1)` of dy into the token row, whoever owns the token.
///
/// Why: with column ranges alone, both workers write their halves of the same gradient
/// rows, and the cores' prefetchers pull lines of the other half across. Where the two
/// vCPUs sit on different dies (cache-line round trip 350 ns instead of 50, measured on
/// this project's AMD host, changing from second to second) that made the backward 1.6-2.5x
/// slower. Here only the rows of shared ids are split, and every element is still summed
/// in token order, so the bits are those of ``scatterRows(_:_:_:_:_:_:_:_:)``.
func scatterOwnedRows(_ a: UnsafePointer<gpte_kernel_args>, _ owners: UnsafePointer<UInt8>, _ worker: Int,
                      _ dyRows: UnsafeRawPointer, _ dyType: Int32, _ masked: Bool, _ c0: Int, _ c1: Int) {
    switch dyType {
    case Int32(GPTE_DTYPE_BF16): scatterOwnedRows(a, owners, worker, dyRows, BF16Elements.self, masked, c0, c1)
    case Int32(GPTE_DTYPE_F16): scatterOwnedRows(a, owners, worker, dyRows, F16Elements.self, masked, c0, c1)
    default: scatterOwnedRows(a, owners, worker, dyRows, F32Elements.self, masked, c0, c1)
    }
}

/// ``scatterOwnedRows(_:_:_:_:_:_:_:_:)`` for dy rows of `G` elements.
@inline(__always)
private func scatterOwnedRows<G: RowElement>(_ a: UnsafePointer<gpte_kernel_args>, _ owners: UnsafePointer<UInt8>, _ worker: Int,
                                             _ dyRows: UnsafeRawPointer, _: G.Type, _ masked: Bool, _ c0: Int, _ c1: Int) {
    let t = Tables(a), tokens = Tokens(a)
    let mask = masked ? Dropout.of(a) : nil
    let dwte = a.pointee.dwte, dwpe = a.pointee.dwpe
    guard dwte != nil || dwpe != nil else { return }
    let d = t.dim, n = tokens.count
    let sv = Vec(repeating: t.scale)
    let keepScale = Vec(repeating: mask?.keepScale ?? 1)
    let me = UInt8(truncatingIfNeeded: worker)
    let longSequence = tokens.seq &* d >= 1 << 18
    @inline(__always) func tokenRow(_ r: Int) -> UnsafeMutablePointer<Float>? {
        let id = tokens.ids[r]
        return Int(id) == t.paddingIdx || !t.holds(id) ? nil : dwte.map { $0 + (Int(id) - t.firstRow) * d }
    }
    for r in 0..<n {
        let o = owners[r]
        let own = o & 0x7F == me, shared = o & 0x80 != 0
        guard own || shared else { continue }
        // The rows ahead, a line per 16 columns inside the spans below (see scatterRows):
        // only lines this worker will write (asking for another worker's line to write
        // would take it from that core), and the dy row.
        var ra = r + prefetchDistance < n ? r + prefetchDistance : r
        if owners[ra] & 0x7F != me && owners[ra] & 0x80 == 0 { ra = r }
        let aheadOwn = owners[ra] & 0x7F == me, aheadShared = owners[ra] & 0x80 != 0
        let tokenAhead = t.holds(tokens.ids[ra]) ? dwte.map { $0 + (Int(tokens.ids[ra]) - t.firstRow) * d } : nil
        let positionRowAhead = aheadOwn ? dwpe.map { $0 + tokens.position(ra) * d } : nil
        let positionAhead = dwte == nil || longSequence ? positionRowAhead : nil
        let wholeRowAhead = aheadOwn && !aheadShared ? tokenAhead : nil
        let partAhead = aheadShared || aheadOwn ? tokenAhead : nil
        let gAhead = dyRows + ra * d * G.bytes
        let dw = tokenRow(r)
        let dp = own ? dwpe.map { $0 + tokens.position(r) * d } : nil
        let key = mask?.rowKey(r) ?? 0
        let gr = dyRows + r * d * G.bytes
        if own && !shared {
            var stream = mask.map { MaskStream(threshold: $0.threshold, rowKey: key, column: 0) }
            addSpan(dw, dp, gr, G.self, 0, d, sv, &stream, keepScale, RowsAhead(token: wholeRowAhead, position: positionAhead, dy: gAhead))
            addTail(dw, dp, gr, G.self, d & ~7, d, t.scale, mask, key)
        } else if own {
            // Shared id: the whole position row, this worker's columns of the token row.
            var stream = mask.map { MaskStream(threshold: $0.threshold, rowKey: key, column: 0) }
            let outside = RowsAhead(token: wholeRowAhead, position: positionAhead, dy: gAhead)
            addSpan(nil, dp, gr, G.self, 0, c0, sv, &stream, keepScale, outside)
            addSpan(dw, dp, gr, G.self, c0, c1, sv, &stream, keepScale, RowsAhead(token: partAhead, position: positionAhead, dy: gAhead))
            addSpan(nil, dp, gr, G.self, c1, d, sv, &stream, keepScale, outside)
            addTail(c1 == d ? dw : nil, dp, gr, G.self, d & ~7, d, t.scale, mask, key)
        } else {
            var stream = mask.map { MaskStream(threshold: $0.threshold, rowKey: key, column: c0) }
            addSpan(dw, nil, gr, G.self, c0, c1, sv, &stream, keepScale, RowsAhead(token: partAhead, position: nil, dy: gAhead))
            if c1 == d { addTail(dw, nil, gr, G.self, d & ~7, d, t.scale, mask, key) }
        }
    }
}

/// The lines a span asks for, `prefetchDistance` tokens ahead: the token-gradient row and
/// the position-gradient row to be written (`nil`: not asked for) and the dy row.
struct RowsAhead {
    let token: UnsafeMutablePointer<Float>?
    let position: UnsafeMutablePointer<Float>?
    /// The dy row (of the span's element type).
    let dy: UnsafeRawPointer
}

/// `dw[c] += s * dy[c]` and `dp[c] += dy[c]` for the whole groups of eight columns in
/// `[lo, hi)` (`lo` a multiple of 16; `stream` is at column `lo`), dy a row of `G`
/// elements, asking for the lines of the rows `ahead` at every 16th column, into L2: eight
/// tokens ahead of three rows are 72 KiB, more than the L1 holds, and asked into L1
/// (`prefetchw`) the scatter waited on the L1's few miss buffers. Into L2 the 8 x 1024
/// backwards take 0.83-0.87x as long at 2 threads, 0.78-0.90x at 1 (alternating builds).
@inline(__always)
private func addSpan<G: RowElement>(_ dw: UnsafeMutablePointer<Float>?, _ dp: UnsafeMutablePointer<Float>?, _ gr: UnsafeRawPointer,
                                    _: G.Type, _ lo: Int, _ hi: Int, _ sv: Vec, _ stream: inout MaskStream?, _ keepScale: Vec,
                                    _ ahead: RowsAhead) {
    @inline(__always) func ask(_ c: Int) {
        if let w = ahead.token { gpte_prefetch_l2(w + c) }
        if let p = ahead.position { gpte_prefetch_l2(p + c) }
        // A line holds 32 columns of a 16-bit row: ask for it once.
        if G.bytes == 4 || c & 31 == 0 { gpte_prefetch_l2(ahead.dy + c &* G.bytes) }
    }
    var c = lo
    switch (dw, dp) {
    case let (dw?, dp?):
        while c &+ 8 <= hi {
            if c & 15 == 0 { ask(c) }
            let dy = maskedGradient(gr, c, G.self, &stream, keepScale)
            store(load(dw + c) + sv * dy, dw + c)
            store(load(dp + c) + dy, dp + c)
            c &+= 8
        }
    case let (dw?, nil):
        while c &+ 8 <= hi {
            if c & 15 == 0 { ask(c) }
            store(load(dw + c) + sv * maskedGradient(gr, c, G.self, &stream, keepScale), dw + c)
            c &+= 8
        }
    case let (nil, dp?):
        while c &+ 8 <= hi {
            if c & 15 == 0 { ask(c) }
            store(load(dp + c) + maskedGradient(gr, c, G.self, &stream, keepScale), dp + c)
            c &+= 8
        }
    case (nil, nil):
        // Nothing to add, but the mask stream still moves on with the columns.
        while c &+ 8 <= hi { _ = maskedGradient(gr, c, G.self, &stream, keepScale); c &+= 8 }
    }
}

/// The tail columns `[lo, hi)` of a row (fewer than eight), one at a time.
@inline(__always)
private func addTail<G: RowElement>(_ dw: UnsafeMutablePointer<Float>?, _ dp: UnsafeMutablePointer<Float>?, _ gr: UnsafeRawPointer,
                                    _: G.Type, _ lo: Int, _ hi: Int, _ s: Float, _ mask: Dropout?, _ key: UInt32) {
    var c = lo
    while c < hi {
        let dy = maskedGradient1(gr, c, G.self, mask, key)
        dw?[c] += s * dy
        dp?[c] += dy
        c += 1
    }
}

/// For each token row r of `[r0, r1)`: dx row `r - r0` and the sums over the rows of
/// dy * xhat and dy (overwritten). `xhat` and `dy` are D floats of scratch each.
func layerNormBackwardRows(_ a: UnsafePointer<gpte_kernel_args>, _ r0: Int, _ r1: Int, _ dx: UnsafeMutablePointer<Float>,
                           _ sumDyXhat: UnsafeMutablePointer<Float>, _ sumDy: UnsafeMutablePointer<Float>,
                           _ xhat: UnsafeMutablePointer<Float>, _ dy: UnsafeMutablePointer<Float>) {
    let t = Tables(a)
    if t.blockType >= 0 {
        // Rows of a block format are decoded into dy's second D floats.
        guard ggmlRowBytes(t.blockType, t.dim) > 0 else { return }
        switch t.wpeDType {
        case Int32(GPTE_DTYPE_BF16):
            layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F32Elements.self, BF16Elements.self)
        case Int32(GPTE_DTYPE_F16):
            layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F32Elements.self, F16Elements.self)
        default:
            layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F32Elements.self, F32Elements.self)
        }
        return
    }
    switch (t.wteDType, t.wpeDType) {
    case (Int32(GPTE_DTYPE_BF16), Int32(GPTE_DTYPE_BF16)):
        layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, BF16Elements.self, BF16Elements.self)
    case (Int32(GPTE_DTYPE_BF16), _):
        layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, BF16Elements.self, F32Elements.self)
    // f16 tables: the faster widening where this thread's MXCSR allows it (``daz()``).
    case (Int32(GPTE_DTYPE_F16), Int32(GPTE_DTYPE_F16)):
        if daz() {
            layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F16Elements.self, F16Elements.self)
        } else {
            layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F16ElementsWithoutDAZ.self, F16ElementsWithoutDAZ.self)
        }
    case (Int32(GPTE_DTYPE_F16), _):
        if daz() {
            layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F16Elements.self, F32Elements.self)
        } else {
            layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F16ElementsWithoutDAZ.self, F32Elements.self)
        }
    // Float32 token rows with 16-bit position rows: the summed token part of a two-phase
    // forward next to a 16-bit learned position table.
    case (_, Int32(GPTE_DTYPE_BF16)):
        layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F32Elements.self, BF16Elements.self)
    case (_, Int32(GPTE_DTYPE_F16)):
        layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F32Elements.self, F16Elements.self)
    default:
        layerNormBackwardRows(a, r0, r1, dx, sumDyXhat, sumDy, xhat, dy, F32Elements.self, F32Elements.self)
    }
}

/// ``layerNormBackwardRows(_:_:_:_:_:_:_:_:)`` for token rows of `W` and position rows of `P`.
@inline(__always)
private func layerNormBackwardRows<W: RowElement, P: RowElement>(
    _ a: UnsafePointer<gpte_kernel_args>, _ r0: Int, _ r1: Int, _ dx: UnsafeMutablePointer<Float>,
    _ sumDyXhat: UnsafeMutablePointer<Float>, _ sumDy: UnsafeMutablePointer<Float>,
    _ xhat: UnsafeMutablePointer<Float>, _ dy: UnsafeMutablePointer<Float>, _: W.Type, _: P.Type
) {
    let t = Tables(a), tokens = Tokens(a), mask = Dropout.of(a)
    let mean = a.pointee.mean!, rstd = a.pointee.rstd!, dout = a.pointee.dout!
    // BF16 and F16 rows are 2 bytes an element; anything else is read as float32, as the
    // scatters and `convert` read it.
    let doutType = a.pointee.dout_dtype
    let doutBytes = doutType == Int32(GPTE_DTYPE_BF16) || doutType == Int32(GPTE_DTYPE_F16) ? 2 : 4
    let gamma = t.gamma!
    let d = t.dim
    let decoded = t.blockType >= 0 ? dy + d : nil
    let keepScale = Vec(repeating: mask?.keepScale ?? 1)
    sumDyXhat.update(repeating: 0, count: d)
    sumDy.update(repeating: 0, count: d)
    let sv = Vec(repeating: t.scale)
    for r in r0..<r1 {
        // The rows `prefetchDistance` tokens ahead (past this range they are most likely
        // this worker's next range) are asked for a line per 16 columns inside the loop
        // below, spread out rather than in a burst that fills the miss buffers.
        let ahead = r + prefetchDistance < tokens.count ? r + prefetchDistance : r
        let wAhead = t.rowAhead(tokens.ids[ahead], decoded: decoded), gAhead = dout + ahead * d * doutBytes
        let w = t.tokenRow(tokens.ids[r], decoded: decoded)
        // A sinusoidal row past the cache is computed into dy, which the loop overwrites
        // column by column after reading it.
        let p = t.positionRow(tokens.position(r), spill: dy)
        let m = mean[r], rs = rstd[r]
        let key = mask?.rowKey(r) ?? 0
        let out = dx + (r - r0) * d
        // A 16-bit dout row is widened (exactly) into this row's dx, which is written only
        // after the last read of dy below: no float32 copy of dout is ever made.
        let gr: UnsafePointer<Float>
        if doutBytes == 4 {
            gr = (dout + r * d * 4).assumingMemoryBound(to: Float.self)
        } else {
            convert(UnsafeMutableRawPointer(out), Int32(GPTE_DTYPE_F32), dout + r * d * doutBytes, doutType, d)
            gr = UnsafePointer(out)
        }
        let mv = Vec(repeating: m), rv = Vec(repeating: rs)
        var stream = mask.map { MaskStream(threshold: $0.threshold, rowKey: key, column: 0) }
        var a1 = Vec(), a2 = Vec()
        // x is recomputed as the forward computed it (s * w + p, the same operations, so
        // the same bits) inside the loop: no pass of its own over the row.
        @inline(__always) func column(_ c: Int, _ x: Vec) {
            if c & 15 == 0 {
                if c &* W.bytes < t.prefetchBytes { gpte_prefetch_l2(wAhead + c &* W.bytes) }
                if doutBytes == 4 || c & 31 == 0 { gpte_prefetch_l2(gAhead + c &* doutBytes) }
            }
            let xh = (x - mv) * rv
            let dyv = maskedGradient(gr, c, &stream, keepScale)
            let gdy = load(gamma + c) * dyv
            a1 += gdy
            a2 += gdy * xh
            store(xh, xhat + c)
            store(dyv, dy + c)
        }
        var c = 0
        if let p {
            while c &+ 8 <= d { column(c, sv * W.load8(w, c) + P.load8(p, c)); c &+= 8 }
        } else {
            while c &+ 8 <= d { column(c, sv * W.load8(w, c)); c &+= 8 }
        }
        var s1 = hsum(a1), s2 = hsum(a2)
        while c < d {
            let x = p.map { t.scale * W.load1(w, c) + P.load1($0, c) } ?? t.scale * W.load1(w, c)
            xhat[c] = (x - m) * rs
            dy[c] = maskedGradient1(gr, c, mask, key)
            let gdy = gamma[c] * dy[c]
            s1 += gdy
            s2 += gdy * xhat[c]
            c += 1
        }
        let k1 = s1 / Float(d), k2 = s2 / Float(d)
        let k1v = Vec(repeating: k1), k2v = Vec(repeating: k2)
        c = 0
        while c &+ 8 <= d {
            let xh = load(xhat + c), dyv = load(dy + c)
            store((load(gamma + c) * dyv - k1v - xh * k2v) * rv, out + c)
            store(load(sumDyXhat + c) + dyv * xh, sumDyXhat + c)
            store(load(sumDy + c) + dyv, sumDy + c)
            c &+= 8
        }
        while c < d {
            out[c] = (gamma[c] * dy[c] - k1 - xhat[c] * k2) * rs
            sumDyXhat[c] += dy[c] * xhat[c]
            sumDy[c] += dy[c]
            c += 1
        }
    }
}

/// `dst[c] += src[c]` for `c` in `[c0, c1)` (the layer adds the dgamma / dbeta sums of
/// each row block this way, in block order).
func addColumns(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ c0: Int, _ c1: Int) {
    var c = c0
    while c + 8 <= c1 {
        store(load(dst + c) + load(src + c), dst + c)
        c += 8
    }
    while c < c1 { dst[c] += src[c]; c += 1 }
}
