import CMemoryHints

/// The fused kernels of the layer, forward and backward side by side (after llm.c's
/// `encoder_forward` / `encoder_backward` and `layernorm_forward` / `layernorm_backward`).
///
/// Shapes (R = batch * seq tokens, D = embed_dim):
///   ids, positions  [R]          validated rows (TokenBatch)
///   wte             [V, D]       token table;  wpe [maxT, D] learned positions
///   gamma, beta     [D]          layer norm weight and bias
///   out, dout       [R, D]       output and its gradient
///   mean, rstd      [R]          layer norm statistics kept by a training forward
///
/// Determinism: the forward and phase 1 of the backward give each row to exactly one
/// thread; phase 2 of the backward gives each *column* range to exactly one thread and
/// walks the rows in order. So every gradient element is summed in token order whatever
/// the thread count, and results are bit-identical for 1 or N threads. No atomics.

/// Where position rows come from.
enum PositionSource: @unchecked Sendable {
    case none
    case learned(UnsafeMutablePointer<Float>)
    case sinusoidal(SinusoidalPositionalEmbedding)
}

/// Read-only views of the layer's parameters, for the kernels.
struct EmbeddingTables: @unchecked Sendable {
    let dim: Int
    let wte: UnsafeMutablePointer<Float>
    /// `sqrt(D)` or 1.
    let scale: Float
    /// The padding row, or -1.
    let paddingIdx: Int
    let positions: PositionSource
    let gamma: UnsafeMutablePointer<Float>
    let beta: UnsafeMutablePointer<Float>
    let eps: Float

    /// The row of token `id`.
    @inline(__always)
    func tokenRow(_ id: Int32) -> UnsafePointer<Float> { UnsafePointer(wte + Int(id) * dim) }

    /// The row of position `p`, or `nil` when there are no positions. Sinusoidal rows past
    /// the cached table are computed into `spill` (D floats).
    @inline(__always)
    func positionRow(_ p: Int, spill: UnsafeMutablePointer<Float>) -> UnsafePointer<Float>? {
        switch positions {
        case .none: return nil
        case .learned(let wpe): return UnsafePointer(wpe + p * dim)
        case .sinusoidal(let table):
            if let row = table.cachedRow(p) { return row }
            SinusoidalPositionalEmbedding.fill(start: p, count: 1, embedDim: dim, into: spill)
            return UnsafePointer(spill)
        }
    }
}

/// What a training forward keeps for its backward, besides the token batch.
struct SavedStatistics: @unchecked Sendable {
    /// `[R]` each, present when the forward normalised.
    let mean: FloatBuffer?
    let rstd: FloatBuffer?
}

// MARK: - Row pieces

/// `x[c0..<c1] = s * w + p` (or `s * w` without positions); returns the sum of the
/// written values. `c0` is a multiple of 8.
@inline(__always)
private func gather(_ x: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ p: UnsafePointer<Float>?,
                    _ s: Float, _ c0: Int, _ c1: Int, ahead: UnsafePointer<Float>? = nil) -> Float {
    let sv = Vec(repeating: s)
    var a0 = Vec(), a1 = Vec()
    var c = c0
    if let p {
        while c + 16 <= c1 {
            if let ahead { gpte_prefetch(ahead + c) }
            let u = sv * load(w + c) + load(p + c), v = sv * load(w + c + 8) + load(p + c + 8)
            store(u, x + c); store(v, x + c + 8)
            a0 += u; a1 += v
            c += 16
        }
        if c + 8 <= c1 { let u = sv * load(w + c) + load(p + c); store(u, x + c); a0 += u; c += 8 }
        var sum = (a0 + a1).sum()
        while c < c1 { x[c] = s * w[c] + p[c]; sum += x[c]; c += 1 }
        return sum
    }
    while c + 16 <= c1 {
        if let ahead { gpte_prefetch(ahead + c) }
        let u = sv * load(w + c), v = sv * load(w + c + 8)
        store(u, x + c); store(v, x + c + 8)
        a0 += u; a1 += v
        c += 16
    }
    if c + 8 <= c1 { let u = sv * load(w + c); store(u, x + c); a0 += u; c += 8 }
    var sum = (a0 + a1).sum()
    while c < c1 { x[c] = s * w[c]; sum += x[c]; c += 1 }
    return sum
}

/// `dy` of the next eight columns: `dout` through the dropout mask (`stream` is `nil`
/// without dropout).
@inline(__always)
private func maskedGradient(_ g: UnsafePointer<Float>, _ c: Int, _ stream: inout MaskStream?, _ keepScale: Vec) -> Vec {
    let v = load(g + c)
    guard var s = stream else { return v }
    let keep = s.next()
    stream = s
    return (v * keepScale).replacing(with: 0, where: .!keep)
}

/// The scalar form of ``maskedGradient(_:_:_:_:)`` for tail columns.
@inline(__always)
private func maskedGradient1(_ g: UnsafePointer<Float>, _ c: Int, _ mask: DropoutMask?, _ key: UInt32) -> Float {
    guard let mask else { return g[c] }
    return mask.keep(rowKey: key, column: c) ? g[c] * mask.keepScale : 0
}

// MARK: - Forward

/// Output size from which the forward writes around the caches with streaming stores. An
/// output this large would not stay in cache for its consumer anyway, and a normal store
/// first reads every line it writes (read-for-ownership): streaming saves a third of the
/// forward's memory traffic. Smaller outputs (a decode step, one 1024-token sequence) are
/// written normally and stay in cache for the next layer.
let streamingOutputFloats = 2 << 20

/// How ``embeddingForward`` writes `count` floats of output to `out`: streaming when
/// the output is large and its rows are aligned for it.
func forwardStoreMode(_ out: UnsafeMutablePointer<Float>, count: Int, dim: Int) -> StoreMode {
    count >= streamingOutputFloats ? StoreMode.streaming(out, dim: dim) : .cached
}

/// Floats of per-call scratch a streaming forward needs: one row per worker, where a row
/// is assembled (or a sinusoidal row past the cache computed) before being streamed out.
func forwardScratchCount(dim: Int, pool: WorkerPool) throws(GPTEmbeddingError) -> Int {
    try Checked.multiply(pool.threads, dim, "forward scratch")
}

/// `out[r] = dropout(layerNorm?(s * wte[ids[r]] + P[pos[r]]))` for every token row r.
///
/// Each worker takes a contiguous range of rows and asks for the token row
/// ``prefetchDistance`` tokens ahead of the one it computes. With `rowScratch` (given when
/// ``forwardStoreMode(_:count:dim:)`` streams; `forwardScratchCount` floats) a row is assembled in
/// the worker's scratch row and written with streaming stores; otherwise it is assembled
/// in place in `out`. Plain lookups (no layer norm, no dropout) go straight to the output.
func embeddingForward(
    tables t: EmbeddingTables, tokens: TokenBatch, normalize: Bool, mask: DropoutMask?,
    saveMean: UnsafeMutablePointer<Float>?, saveRstd: UnsafeMutablePointer<Float>?,
    out: UnsafeMutablePointer<Float>, rowScratch: UnsafeMutablePointer<Float>?, pool: WorkerPool
) {
    let d = t.dim
    let o = SendablePointer(out)
    let sm = saveMean.map(SendablePointer.init), sr = saveRstd.map(SendablePointer.init)
    let scratch = rowScratch.map(SendablePointer.init)
    let mode = rowScratch == nil ? StoreMode.cached : StoreMode.streaming(out, dim: d)
    // Plain lookups move a token row in and an output row out; the layer norm and the
    // dropout hash make a row compute-heavy.
    let grain = normalize || mask != nil
        ? WorkerPool.computeGrain(elementsPerItem: d)
        : WorkerPool.memoryGrain(bytesPerItem: 8 * d)
    pool.parallelFor(count: tokens.count, grain: grain) { part, rows in
        // Where a row is assembled: the worker's scratch row, or the output row itself.
        let spill = scratch.map { $0.pointer + part * d }
        let rowsOut = ForwardRows(t: t, tokens: tokens, normalize: normalize, mask: mask, saveMean: sm?.pointer,
                                  saveRstd: sr?.pointer, out: o.pointer, spill: spill)
        switch mode {
        case .cached: rowsOut.run(rows, CachedStore.self)
        case .stream16: rowsOut.run(rows, Stream16Store.self); gpte_stream_fence()
        case .stream32: rowsOut.run(rows, Stream32Store.self); gpte_stream_fence()
        }
    }
}

/// One worker's rows of ``embeddingForward``.
private struct ForwardRows {
    let t: EmbeddingTables
    let tokens: TokenBatch
    let normalize: Bool
    let mask: DropoutMask?
    let saveMean: UnsafeMutablePointer<Float>?
    let saveRstd: UnsafeMutablePointer<Float>?
    let out: UnsafeMutablePointer<Float>
    /// The worker's scratch row when streaming, else `nil` (rows are assembled in place).
    let spill: UnsafeMutablePointer<Float>?

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
                if let p = t.positionRow(tokens.position(r), spill: spill ?? x) {
                    while c + 8 <= d {
                        if c & 15 == 0 { gpte_prefetch(ahead + c) }
                        S.put(sv * load(w + c) + load(p + c), x + c)
                        c &+= 8
                    }
                    while c < d { x[c] = t.scale * w[c] + p[c]; c += 1 }
                } else {
                    while c + 8 <= d {
                        if c & 15 == 0 { gpte_prefetch(ahead + c) }
                        S.put(sv * load(w + c), x + c)
                        c &+= 8
                    }
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
            if normalize {
                let mean = sum / Float(d)
                let variance = RowMath.sumSquaredDeviation(x, d, mean: mean) / Float(d)
                let rstd = 1 / (variance + t.eps).squareRoot()
                saveMean?[r] = mean
                saveRstd?[r] = rstd
                let mv = Vec(repeating: mean), rv = Vec(repeating: rstd)
                if let mask {
                    let key = mask.rowKey(r), k = Vec(repeating: mask.keepScale)
                    var stream = MaskStream(mask, rowKey: key, column: 0)
                    while c + 8 <= d {
                        let y = (load(x + c) - mv) * rv * load(t.gamma + c) + load(t.beta + c)
                        S.put((y * k).replacing(with: 0, where: .!stream.next()), dst + c)
                        c += 8
                    }
                    while c < d {
                        let y = (x[c] - mean) * rstd * t.gamma[c] + t.beta[c]
                        dst[c] = mask.keep(rowKey: key, column: c) ? y * mask.keepScale : 0
                        c += 1
                    }
                } else {
                    while c + 8 <= d {
                        S.put((load(x + c) - mv) * rv * load(t.gamma + c) + load(t.beta + c), dst + c)
                        c += 8
                    }
                    while c < d { dst[c] = (x[c] - mean) * rstd * t.gamma[c] + t.beta[c]; c += 1 }
                }
            } else if let mask {
                let key = mask.rowKey(r), k = Vec(repeating: mask.keepScale)
                var stream = MaskStream(mask, rowKey: key, column: 0)
                while c + 8 <= d {
                    S.put((load(x + c) * k).replacing(with: 0, where: .!stream.next()), dst + c)
                    c += 8
                }
                while c < d { dst[c] = mask.keep(rowKey: key, column: c) ? x[c] * mask.keepScale : 0; c += 1 }
            }
        }
    }
}

// MARK: - Backward

/// Gradient buffers the backward adds into.
struct EmbeddingGradients: @unchecked Sendable {
    let dwte: UnsafeMutablePointer<Float>
    /// Present for learned positions.
    let dwpe: UnsafeMutablePointer<Float>?
    /// Present when the forward normalised.
    let dgamma: UnsafeMutablePointer<Float>?
    let dbeta: UnsafeMutablePointer<Float>?
}

/// Rows per block of the layer-norm backward: the block's dx rows stay in cache between
/// phase 1, which writes them, and phase 2, which scatters them.
@inline(__always)
func backwardBlockRows(_ d: Int) -> Int { max(subBlockRows, (1 << 20) / d / subBlockRows * subBlockRows) }

/// Rows whose dgamma / dbeta contributions are summed together before being added in
/// order. Fixed, so the summation order never depends on the thread count.
let subBlockRows = 32

/// Floats of scratch `embeddingBackward` needs for `rows` tokens of width `d`.
func backwardScratchCount(rows: Int, dim d: Int, pool: WorkerPool) throws(GPTEmbeddingError) -> Int {
    let block = min(rows, backwardBlockRows(d))
    let subBlocks = (block + subBlockRows - 1) / subBlockRows
    // dx of one block, dgamma/dbeta partials per sub-block, two rows per worker.
    let perRow = try Checked.multiply(block + 2 * subBlocks + 2 * pool.threads, d, "backward scratch")
    return perRow
}

/// Adds the gradients of `embeddingForward` for `dout` into `grads`.
///
/// Without the layer norm, dx = dy = dout through the dropout mask, and one pass over
/// column ranges scatters it (each worker owns a column range and walks all rows in order).
///
/// With the layer norm, y = xhat * gamma + beta and xhat = (x - mean) * rstd, so
///   dx = rstd * (gamma*dy - mean(gamma*dy) - xhat * mean(gamma*dy*xhat)).
/// Rows are processed in cache-sized blocks. Phase 1 (sub-blocks of rows in parallel)
/// recomputes x from the tables (nothing of size [R, D] is kept by the forward), writes dx
/// into the block scratch and sums dgamma / dbeta per sub-block. Phase 2 (column ranges in
/// parallel) scatters dx into dwte / dwpe and adds the sub-block sums in order.
func embeddingBackward(
    tables t: EmbeddingTables, tokens: TokenBatch, saved: SavedStatistics, mask: DropoutMask?,
    dout: UnsafePointer<Float>, grads g: EmbeddingGradients, scratch: FloatBuffer, pool: WorkerPool
) {
    let d = t.dim
    let n = tokens.count
    let chunks = (d + 15) / 16
    // Per element the scatter reads dout and reads and writes the token and position
    // gradients: 16 bytes.
    let parts = min(pool.parts(count: n * d, grain: WorkerPool.memoryGrain(bytesPerItem: 16)), chunks)
    let plain = EmbeddingGradients(dwte: g.dwte, dwpe: g.dwpe, dgamma: nil, dbeta: nil)

    guard let meanBuf = saved.mean, let rstdBuf = saved.rstd, let dgamma = g.dgamma, let dbeta = g.dbeta else {
        let go = SendableConstPointer(dout)
        pool.run(parts: parts) { part in
            let (c0, c1) = columnRange(part, parts, chunks, d)
            scatterRows(t, tokens, 0..<n, go.pointer, 0, mask, plain, c0, c1)
        }
        return
    }

    let block = min(n, backwardBlockRows(d))
    let subBlocksPerBlock = (block + subBlockRows - 1) / subBlockRows
    let dxBlock = SendablePointer(scratch.base)
    let partials = SendablePointer(scratch.base + block * d)
    let rowScratch = SendablePointer(scratch.base + (block + 2 * subBlocksPerBlock) * d)
    let stats = LayerNormGradient(t: t, tokens: tokens, mean: meanBuf.base, rstd: rstdBuf.base, mask: mask,
                                  dout: dout, dgamma: dgamma, dbeta: dbeta)
    var b0 = 0
    while b0 < n {
        let rows = b0..<min(n, b0 + block)
        let subBlocks = (rows.count + subBlockRows - 1) / subBlockRows
        // Phase 1: dx rows and per-sub-block dgamma / dbeta sums.
        pool.parallelFor(count: subBlocks, grain: WorkerPool.computeGrain(elementsPerItem: d * subBlockRows)) { part, local in
            let xhat = rowScratch.pointer + part * 2 * d
            for sb in local {
                let lo = rows.lowerBound + sb * subBlockRows
                let hi = min(rows.upperBound, lo + subBlockRows)
                stats.rows(lo..<hi, dx: dxBlock.pointer + (lo - rows.lowerBound) * d,
                           sumDyXhat: partials.pointer + 2 * sb * d, sumDy: partials.pointer + (2 * sb + 1) * d,
                           xhat: xhat, dy: xhat + d)
            }
        }
        // Phase 2: scatter the block's dx by column ranges; add the sums in order.
        pool.run(parts: parts) { part in
            let (c0, c1) = columnRange(part, parts, chunks, d)
            scatterRows(t, tokens, rows, UnsafePointer(dxBlock.pointer), rows.lowerBound, nil, plain, c0, c1)
            for sb in 0..<subBlocks {
                let pg = partials.pointer + 2 * sb * d, pb = pg + d
                var c = c0
                while c + 8 <= c1 {
                    store(load(stats.dgamma + c) + load(pg + c), stats.dgamma + c)
                    store(load(stats.dbeta + c) + load(pb + c), stats.dbeta + c)
                    c += 8
                }
                while c < c1 {
                    stats.dgamma[c] += pg[c]
                    stats.dbeta[c] += pb[c]
                    c += 1
                }
            }
        }
        b0 = rows.upperBound
    }
}

/// The layer norm part of the backward, for phase 1.
private struct LayerNormGradient: @unchecked Sendable {
    let t: EmbeddingTables
    let tokens: TokenBatch
    let mean: UnsafeMutablePointer<Float>
    let rstd: UnsafeMutablePointer<Float>
    let mask: DropoutMask?
    let dout: UnsafePointer<Float>
    let dgamma: UnsafeMutablePointer<Float>
    let dbeta: UnsafeMutablePointer<Float>

    /// For each row r of `rows`: dx[r - rows.lowerBound] and the sums over the rows of
    /// dy * xhat and dy. `xhat` and `dy` are D floats of scratch each.
    @inline(__always)
    func rows(_ rows: Range<Int>, dx: UnsafeMutablePointer<Float>, sumDyXhat: UnsafeMutablePointer<Float>,
              sumDy: UnsafeMutablePointer<Float>, xhat: UnsafeMutablePointer<Float>, dy: UnsafeMutablePointer<Float>) {
        let d = t.dim
        let keepScale = Vec(repeating: mask?.keepScale ?? 1)
        sumDyXhat.update(repeating: 0, count: d)
        sumDy.update(repeating: 0, count: d)
        for r in rows {
            // The rows `prefetchDistance` tokens ahead (past this sub-block they are most
            // likely this worker's next sub-block) are asked for a line per 16 columns
            // inside the loop below, spread out rather than in a burst that fills the
            // miss buffers.
            let ahead = r + prefetchDistance < tokens.count ? r + prefetchDistance : r
            let wAhead = t.tokenRow(tokens.ids[ahead]), gAhead = UnsafePointer(dout + ahead * d)
            let w = t.tokenRow(tokens.ids[r])
            // xhat first holds x; a sinusoidal row past the cache spills into dy.
            _ = gather(xhat, w, t.positionRow(tokens.position(r), spill: dy), t.scale, 0, d)
            let m = mean[r], rs = rstd[r]
            let key = mask?.rowKey(r) ?? 0
            let gr = dout + r * d
            let mv = Vec(repeating: m), rv = Vec(repeating: rs)
            var stream = mask.map { MaskStream($0, rowKey: key, column: 0) }
            var a1 = Vec(), a2 = Vec()
            var c = 0
            while c + 8 <= d {
                if c & 15 == 0 { gpte_prefetch(wAhead + c); gpte_prefetch(gAhead + c) }
                let xh = (load(xhat + c) - mv) * rv
                let dyv = maskedGradient(gr, c, &stream, keepScale)
                let gdy = load(t.gamma + c) * dyv
                a1 += gdy
                a2 += gdy * xh
                store(xh, xhat + c)
                store(dyv, dy + c)
                c += 8
            }
            var s1 = a1.sum(), s2 = a2.sum()
            while c < d {
                xhat[c] = (xhat[c] - m) * rs
                dy[c] = maskedGradient1(gr, c, mask, key)
                let gdy = t.gamma[c] * dy[c]
                s1 += gdy
                s2 += gdy * xhat[c]
                c += 1
            }
            let k1 = s1 / Float(d), k2 = s2 / Float(d)
            let k1v = Vec(repeating: k1), k2v = Vec(repeating: k2)
            let out = dx + (r - rows.lowerBound) * d
            c = 0
            while c + 8 <= d {
                let xh = load(xhat + c), dyv = load(dy + c)
                store((load(t.gamma + c) * dyv - k1v - xh * k2v) * rv, out + c)
                store(load(sumDyXhat + c) + dyv * xh, sumDyXhat + c)
                store(load(sumDy + c) + dyv, sumDy + c)
                c += 8
            }
            while c < d {
                out[c] = (t.gamma[c] * dy[c] - k1 - xhat[c] * k2) * rs
                sumDyXhat[c] += dy[c] * xhat[c]
                sumDy[c] += dy[c]
                c += 1
            }
        }
    }
}

/// Columns `[c0, c1)` of part `part` of `parts`, in whole 16-column chunks.
@inline(__always)
private func columnRange(_ part: Int, _ parts: Int, _ chunks: Int, _ d: Int) -> (Int, Int) {
    let cr = WorkerPool.range(part: part, of: parts, count: chunks)
    return (cr.lowerBound * 16, min(cr.upperBound * 16, d))
}

/// `dwte[id] += s * dy` and `dwpe[p] += dy` for columns `[c0, c1)`, where dy is row
/// `r - firstRow` of `dout` through the dropout mask. Each worker owns a column range and
/// walks the rows in order, so every gradient element receives its contributions in token
/// order; it asks for its part of the token gradient row ``prefetchDistance`` tokens ahead.
/// (Measured on this project's machines: column ranges with prefetch beat workers that own
/// whole rows, which must each read most of `dout`.)
@inline(__always)
private func scatterRows(_ t: EmbeddingTables, _ tokens: TokenBatch, _ rows: Range<Int>, _ dout: UnsafePointer<Float>,
                         _ firstRow: Int, _ mask: DropoutMask?, _ g: EmbeddingGradients, _ c0: Int, _ c1: Int) {
    let d = t.dim
    let sv = Vec(repeating: t.scale)
    let keepScale = Vec(repeating: mask?.keepScale ?? 1)
    for r in rows {
        // The gradient row and dout row `prefetchDistance` tokens ahead, a line per 16
        // columns inside the loops below (a burst would fill the miss buffers).
        let ra = r + prefetchDistance < rows.upperBound ? r + prefetchDistance : r
        let wAhead = g.dwte + Int(tokens.ids[ra]) * d, gAhead = dout + (ra - firstRow) * d
        let id = Int(tokens.ids[r])
        let dwRow = id == t.paddingIdx ? nil : g.dwte + id * d
        let dpRow = g.dwpe.map { $0 + tokens.position(r) * d }
        let key = mask?.rowKey(r) ?? 0
        var stream = mask.map { MaskStream($0, rowKey: key, column: c0) }
        let gr = dout + (r - firstRow) * d
        var c = c0
        switch (dwRow, dpRow) {
        case let (dw?, dp?):
            while c + 8 <= c1 {
                if c & 15 == 0 { gpte_prefetch_for_write(wAhead + c); gpte_prefetch(gAhead + c) }
                let dy = maskedGradient(gr, c, &stream, keepScale)
                store(load(dw + c) + sv * dy, dw + c)
                store(load(dp + c) + dy, dp + c)
                c += 8
            }
        case let (dw?, nil):
            while c + 8 <= c1 {
                if c & 15 == 0 { gpte_prefetch_for_write(wAhead + c); gpte_prefetch(gAhead + c) }
                store(load(dw + c) + sv * maskedGradient(gr, c, &stream, keepScale), dw + c)
                c += 8
            }
        case let (nil, dp?):
            while c + 8 <= c1 {
                if c & 15 == 0 { gpte_prefetch_for_write(wAhead + c); gpte_prefetch(gAhead + c) }
                store(load(dp + c) + maskedGradient(gr, c, &stream, keepScale), dp + c)
                c += 8
            }
        case (nil, nil):
            c = c1
        }
        while c < c1 {
            let dy = maskedGradient1(gr, c, mask, key)
            dwRow?[c] += t.scale * dy
            dpRow?[c] += dy
            c += 1
        }
    }
}
