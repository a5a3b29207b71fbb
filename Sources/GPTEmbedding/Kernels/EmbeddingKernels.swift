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

    /// `x[0..<D] = s * wte[id] + P[p]`.
    @inline(__always)
    func gatherRow(id: Int, position p: Int, into x: UnsafeMutablePointer<Float>) {
        let d = dim
        let w = wte + id * d
        let s = scale
        switch positions {
        case .none:
            for c in 0..<d { x[c] = s * w[c] }
        case .learned(let wpe):
            let pr = wpe + p * d
            for c in 0..<d { x[c] = s * w[c] + pr[c] }
        case .sinusoidal(let table):
            if let pr = table.cachedRow(p) {
                for c in 0..<d { x[c] = s * w[c] + pr[c] }
            } else {
                SinusoidalPositionalEmbedding.fill(start: p, count: 1, embedDim: d, into: x)
                for c in 0..<d { x[c] = s * w[c] + x[c] }
            }
        }
    }
}

/// What a training forward keeps for its backward, besides the token batch.
struct SavedStatistics: @unchecked Sendable {
    /// `[R]` each, present when the forward normalised.
    let mean: FloatBuffer?
    let rstd: FloatBuffer?
}

// MARK: - Forward

/// `out[r] = dropout(layerNorm?(s * wte[ids[r]] + P[pos[r]]))` for every token row r.
func embeddingForward(
    tables t: EmbeddingTables, tokens: TokenBatch, normalize: Bool, mask: DropoutMask?,
    saveMean: UnsafeMutablePointer<Float>?, saveRstd: UnsafeMutablePointer<Float>?,
    out: UnsafeMutablePointer<Float>, pool: WorkerPool
) {
    let d = t.dim
    let o = SendablePointer(out)
    let sm = saveMean.map(SendablePointer.init), sr = saveRstd.map(SendablePointer.init)
    pool.parallelFor(count: tokens.count, grain: max(1, 32768 / d)) { _, rows in
        for r in rows {
            let x = o.pointer + r * d
            t.gatherRow(id: Int(tokens.ids.base[r]), position: tokens.position(r), into: x)
            if normalize {
                let mean = RowMath.sum(x, d) / Float(d)
                let variance = RowMath.sumSquaredDeviation(x, d, mean: mean) / Float(d)
                let rstd = 1 / (variance + t.eps).squareRoot()
                for c in 0..<d { x[c] = (x[c] - mean) * rstd * t.gamma[c] + t.beta[c] }
                sm?.pointer[r] = mean
                sr?.pointer[r] = rstd
            }
            if let mask {
                let key = mask.rowKey(r)
                let k = mask.keepScale
                for c in 0..<d { x[c] = mask.keep(rowKey: key, column: c) ? x[c] * k : 0 }
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

/// Adds the gradients of `embeddingForward` for `dout` into `grads`.
///
/// With the layer norm, y = xhat * gamma + beta and xhat = (x - mean) * rstd, so
///   dx = rstd * (gamma*dy - mean(gamma*dy) - xhat * mean(gamma*dy*xhat)),
/// where dy is dout through the dropout mask. Phase 1 computes the two row means; phase 2
/// recomputes x from the tables (nothing of size [R, D] is stored) and scatters.
/// `scratch` holds `2 * R` floats for phase 1 plus `2 * D` floats per worker.
func embeddingBackward(
    tables t: EmbeddingTables, tokens: TokenBatch, saved: SavedStatistics, mask: DropoutMask?,
    dout: UnsafePointer<Float>, grads g: EmbeddingGradients, scratch: FloatBuffer, pool: WorkerPool
) {
    let d = t.dim
    let n = tokens.count
    let normalize = saved.mean != nil && g.dgamma != nil

    let upstream = MaskedGradient(dout: dout, dim: d, mask: mask)
    @Sendable @inline(__always)
    func dy(_ r: Int, _ c: Int, _ key: UInt32) -> Float { upstream.value(r, c, key) }

    // Phase 1 (layer norm only): per row, c1 = mean(gamma*dy), c2 = mean(gamma*dy*xhat).
    let coef = SendablePointer(scratch.base)
    if normalize, let meanBuf = saved.mean, let rstdBuf = saved.rstd {
        let rowScratch = SendablePointer(scratch.base + 2 * n)
        pool.parallelFor(count: n, grain: backwardRowGrain(d)) { part, rows in
            // Each part owns 2 * D floats of scratch.
            let x = rowScratch.pointer + part * 2 * d
            let gdy = x + d
            for r in rows {
                t.gatherRow(id: Int(tokens.ids.base[r]), position: tokens.position(r), into: x)
                let mean = meanBuf.base[r], rstd = rstdBuf.base[r]
                let key = mask?.rowKey(r) ?? 0
                for c in 0..<d {
                    gdy[c] = t.gamma[c] * dy(r, c, key)
                    x[c] = (x[c] - mean) * rstd  // xhat
                }
                coef.pointer[2 * r] = RowMath.sum(gdy, d) / Float(d)
                coef.pointer[2 * r + 1] = RowMath.dot(gdy, x, d) / Float(d)
            }
        }
    }

    // Phase 2: each worker owns a range of 16-column chunks and walks all rows in order.
    let chunks = (d + 15) / 16
    let parts = min(pool.parts(count: n * d, grain: 65536), chunks)
    pool.run(parts: parts) { part in
        do {
            let cr = WorkerPool.range(part: part, of: parts, count: chunks)
            let c0 = cr.lowerBound * 16, c1 = min(cr.upperBound * 16, d)
            if c0 >= c1 { return }
            for r in 0..<n {
                let id = Int(tokens.ids.base[r])
                let p = tokens.position(r)
                let key = mask?.rowKey(r) ?? 0
                let toToken = id != t.paddingIdx
                let wrow = g.dwte + id * d
                let prow = g.dwpe.map { $0 + p * d }
                if normalize, let dgamma = g.dgamma, let dbeta = g.dbeta,
                   let meanBuf = saved.mean, let rstdBuf = saved.rstd {
                    let mean = meanBuf.base[r], rstd = rstdBuf.base[r]
                    let k1 = coef.pointer[2 * r], k2 = coef.pointer[2 * r + 1]
                    let w = t.wte + id * d
                    for c in c0..<c1 {
                        let x = t.scale * w[c] + positionValue(t, p, c)
                        let xhat = (x - mean) * rstd
                        let dyc = dy(r, c, key)
                        dgamma[c] += dyc * xhat
                        dbeta[c] += dyc
                        let dx = (t.gamma[c] * dyc - k1 - xhat * k2) * rstd
                        if toToken { wrow[c] += t.scale * dx }
                        prow?[c] += dx
                    }
                } else {
                    for c in c0..<c1 {
                        let dx = dy(r, c, key)
                        if toToken { wrow[c] += t.scale * dx }
                        prow?[c] += dx
                    }
                }
            }
        }
    }
}

/// dy = dout through the dropout mask.
private struct MaskedGradient: @unchecked Sendable {
    let dout: UnsafePointer<Float>
    let dim: Int
    let mask: DropoutMask?

    @inline(__always)
    func value(_ r: Int, _ c: Int, _ key: UInt32) -> Float {
        let v = dout[r * dim + c]
        guard let mask else { return v }
        return mask.keep(rowKey: key, column: c) ? v * mask.keepScale : 0
    }
}

/// Rows per worker below which phase 1 of the backward stays on one thread.
@inline(__always)
func backwardRowGrain(_ d: Int) -> Int { max(1, 16384 / d) }

/// Floats of scratch `embeddingBackward` needs for `rows` tokens of width `d`.
func backwardScratchCount(rows: Int, dim d: Int, pool: WorkerPool) throws(GPTEmbeddingError) -> Int {
    let workers = pool.parts(count: rows, grain: backwardRowGrain(d))
    let perWorker = try Checked.multiply(2 * workers, d, "backward scratch")
    let (total, overflow) = (2 * rows).addingReportingOverflow(perWorker)
    if overflow { throw GPTEmbeddingError(.sizeOverflow, "backward scratch overflows") }
    return total
}

/// `P[p, c]`, for recomputing x column by column.
@inline(__always)
private func positionValue(_ t: EmbeddingTables, _ p: Int, _ c: Int) -> Float {
    switch t.positions {
    case .none: return 0
    case .learned(let wpe): return wpe[p * t.dim + c]
    case .sinusoidal(let table):
        if let row = table.cachedRow(p) { return row[c] }
        return SinusoidalPositionalEmbedding.value(position: p, channel: c, embedDim: t.dim)
    }
}
