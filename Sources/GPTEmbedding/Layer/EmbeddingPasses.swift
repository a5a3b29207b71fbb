import CKernelDispatch

/// The layer's forward and backward passes: they split a call into parts for the worker
/// team and run the chosen kernels (``Kernels``) on each part. The maths is in the kernels
/// (`Sources/GPTEmbeddingKernels`); this file decides who does which rows or columns.
///
/// Determinism: the forward and phase 1 of the backward give each row to exactly one
/// worker; phase 2 of the backward gives each *column* range to exactly one worker, which
/// walks the rows in order. So every gradient element is summed in token order whatever
/// the thread count, and results are bit-identical for 1 or N threads (and on every CPU
/// path: the kernels of each path do the same operations in the same order). No atomics.

/// Where position rows come from.
enum PositionSource: @unchecked Sendable {
    case none
    case learned(TableStorage)
    case sinusoidal(SinusoidalPositionalEmbedding)
}

/// The layer's parameters, for the kernels.
struct EmbeddingTables: @unchecked Sendable {
    let dim: Int
    let wte: TableStorage
    /// `sqrt(D)` or 1.
    let scale: Float
    /// The padding row, or -1.
    let paddingIdx: Int
    let positions: PositionSource
    let gamma: UnsafeMutablePointer<Float>
    let beta: UnsafeMutablePointer<Float>
    let eps: Float
    /// The vocabulary rows `wte` holds when it is a shard of the table, else `nil`.
    let shard: Range<Int>?

    /// Whether the kernels decode token rows (a table in a block format) into the workers'
    /// scratch: the forward then always needs its row scratch, twice as large.
    var decodesRows: Bool { wte.blockType != nil }

    /// The kernel arguments of a call on `tokens`, with `mask` (`nil`: no dropout).
    func arguments(_ tokens: TokenBatch, mask: DropoutMask?) -> gpte_kernel_args {
        var a = gpte_kernel_args()
        a.dim = Int64(dim)
        a.wte = UnsafeRawPointer(wte.base)
        a.wte_dtype = wte.kernelDType
        a.scale = scale
        a.padding_idx = Int64(paddingIdx)
        if let shard {
            a.wte_first_row = Int64(shard.lowerBound)
            a.wte_rows = Int64(shard.count)
        }
        switch positions {
        case .none:
            a.position_kind = Int32(GPTE_POSITIONS_NONE)
        case .learned(let wpe):
            a.position_kind = Int32(GPTE_POSITIONS_TABLE)
            a.wpe = UnsafeRawPointer(wpe.base)
            a.wpe_dtype = wpe.dtype.rawValue
        case .sinusoidal(let table):
            a.position_kind = Int32(GPTE_POSITIONS_SINUSOIDAL)
            a.wpe = UnsafeRawPointer(table.table.base)
            a.wpe_dtype = Int32(GPTE_DTYPE_F32)
            a.wpe_rows = Int64(table.maxSeqLen)
        }
        a.gamma = UnsafePointer(gamma)
        a.beta = UnsafePointer(beta)
        a.eps = eps
        a.ids = tokens.ids
        a.positions = tokens.positions
        a.start = Int64(tokens.start)
        a.seq = Int64(tokens.seq)
        a.count = Int64(tokens.count)
        if let mask, !mask.dropAll {
            a.dropout = 1
            a.threshold = mask.threshold
            a.keep_scale = mask.keepScale
            a.step_key = mask.stepKey
        }
        return a
    }
}

/// What a training forward keeps for its backward, besides the token batch.
struct SavedStatistics: @unchecked Sendable {
    /// `[R]` each, present when the forward normalised.
    let mean: FloatBuffer?
    let rstd: FloatBuffer?

    /// Both, as the backward takes them; `nil` when the forward did not normalise.
    var pointers: (mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>)? {
        guard let mean, let rstd else { return nil }
        return (UnsafePointer(mean.base), UnsafePointer(rstd.base))
    }
}

// MARK: - Forward

/// Output size from which the forward writes around the caches with streaming stores. An
/// output this large would not stay in cache for its consumer anyway, and a normal store
/// first reads every line it writes (read-for-ownership): streaming saves a third of the
/// forward's memory traffic. Smaller outputs (a decode step, one 1024-token sequence) are
/// written normally and stay in cache for the next layer.
let streamingOutputFloats = 2 << 20

/// How the forward writes `count` elements of `dtype` to `out` (`GPTE_STORE_*`): streaming
/// when the output is large (in bytes) and its rows are aligned for it.
func forwardStoreMode(_ out: UnsafeMutableRawPointer, count: Int, dim: Int, dtype: TensorDType = .float32) -> Int32 {
    guard count * dtype.byteCount >= streamingOutputFloats * 4 else { return Int32(GPTE_STORE_CACHED) }
    let address = Int(bitPattern: out)
    if dtype != .float32 {
        // Eight 16-bit values make one 16-byte streaming store.
        return address % 16 == 0 && dim % 8 == 0 ? Int32(GPTE_STORE_STREAM16) : Int32(GPTE_STORE_CACHED)
    }
    if address % 32 == 0 && dim % 8 == 0 { return Int32(GPTE_STORE_STREAM32) }
    if address % 16 == 0 && dim % 8 == 0 { return Int32(GPTE_STORE_STREAM32_SHIFTED) }
    if address % 16 == 0 && dim % 4 == 0 { return Int32(GPTE_STORE_STREAM16) }
    return Int32(GPTE_STORE_CACHED)
}

/// Floats of per-call scratch a streaming forward needs: one row per worker, where a row
/// is assembled (or a sinusoidal row past the cache computed) before being streamed out,
/// and one more per worker when token rows are decoded from a block format.
func forwardScratchCount(dim: Int, pool: WorkerPool, decodesRows: Bool = false) throws(GPTEmbeddingError) -> Int {
    try Checked.multiply(pool.threads, dim, decodesRows ? 2 : 1, "forward scratch")
}

/// `out[r] = dropout(layerNorm?(s * wte[ids[r]] + P[pos[r]]))` for every token row r, each
/// worker a contiguous range of rows, stored as `dtype` with `storeMode`
/// (``forwardStoreMode(_:count:dim:dtype:)``). `rowScratch` (``forwardScratchCount(dim:pool:)``
/// floats) is required when the output streams or is not float32.
func embeddingForward(
    kernels: Kernels, tables t: EmbeddingTables, tokens: TokenBatch, normalize: Bool, mask: DropoutMask?,
    saveMean: UnsafeMutablePointer<Float>?, saveRstd: UnsafeMutablePointer<Float>?,
    out: UnsafeMutableRawPointer, dtype: TensorDType, storeMode: Int32, rowScratch: UnsafeMutablePointer<Float>?,
    pool: WorkerPool
) {
    let d = t.dim
    var a = t.arguments(tokens, mask: mask)
    a.normalize = normalize ? 1 : 0
    a.save_mean = saveMean
    a.save_rstd = saveRstd
    a.out = out
    a.out_dtype = dtype.rawValue
    a.store_mode = rowScratch == nil ? Int32(GPTE_STORE_CACHED) : storeMode
    let scratch = rowScratch.map(SendablePointer.init), rowFloats = t.decodesRows ? 2 * d : d
    // Plain lookups move a token row in and an output row out; the layer norm and the
    // dropout hash make a row compute-heavy.
    let grain = normalize || a.dropout != 0
        ? WorkerPool.computeGrain(elementsPerItem: d)
        : WorkerPool.memoryGrain(bytesPerItem: 8 * d)
    let forwardRows = kernels.forwardRows
    withUnsafePointer(to: a) { args in
        let p = SendableConstPointer(args)
        pool.parallelFor(count: tokens.count, grain: grain) { part, rows in
            forwardRows(p.pointer, Int64(rows.lowerBound), Int64(rows.upperBound), scratch.map { $0.pointer + part * rowFloats })
        }
    }
}

// MARK: - Backward

/// Gradient buffers the backward adds into. Each is optional: `nil` means not wanted, and
/// the work only it needs is skipped.
struct EmbeddingGradients: @unchecked Sendable {
    /// The token table's gradient (a shard's rows).
    let dwte: UnsafeMutablePointer<Float>?
    /// Learned positions only.
    let dwpe: UnsafeMutablePointer<Float>?
    /// Only read when the forward normalised.
    let dgamma: UnsafeMutablePointer<Float>?
    let dbeta: UnsafeMutablePointer<Float>?
    /// `[R, D]`, zeroed by the caller: row r receives token r's own gradient `s * dx` (the
    /// scatter with ids `0 ..< R` in `tokenRowIds`, no padding row, no positions). The
    /// caller zeroes the rows of padding tokens afterwards.
    var tokenRows: UnsafeMutablePointer<Float>? = nil
    /// `[R]` the ids `0 ..< R`; present with `tokenRows`.
    var tokenRowIds: UnsafePointer<Int32>? = nil
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
    // dx of one block, dgamma/dbeta partials per sub-block, three rows per worker (xhat,
    // dy, and a token row decoded from a block format).
    return try Checked.multiply(block + 2 * subBlocks + 3 * pool.threads, d, "backward scratch")
}

/// Adds the gradients of `embeddingForward` for `dout` into `grads` (only the buffers it
/// has: a gradient that is not wanted costs nothing, and with none wanted nothing runs).
///
/// `statistics` are the forward's per-token mean and rstd when it normalised, else `nil`.
/// `recompute`, when given, is where the layer norm backward reads the token part from
/// (a two-phase forward's summed partials, which a shard cannot rebuild from its own rows);
/// the scatter always uses `tables` and `tokens`, the real ids.
///
/// Without the layer norm, one pass over column ranges scatters dout through the dropout
/// mask (each worker owns a column range and walks all rows in order). With the layer
/// norm, rows are processed in cache-sized blocks: phase 1 (sub-blocks of rows in
/// parallel) writes dx into the block scratch and sums dgamma / dbeta per sub-block;
/// phase 2 (column ranges in parallel) scatters dx into dwte / dwpe and adds the
/// sub-block sums in order. `scratch` holds ``backwardScratchCount(rows:dim:pool:)`` floats
/// (it may be `nil` when `statistics` is).
func embeddingBackward(
    kernels: Kernels, tables t: EmbeddingTables, tokens: TokenBatch,
    statistics: (mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>)?, mask: DropoutMask?,
    dout: UnsafePointer<Float>, grads g: EmbeddingGradients, scratch: UnsafeMutablePointer<Float>?, pool: WorkerPool,
    recompute: (tables: EmbeddingTables, tokens: TokenBatch)? = nil
) {
    let d = t.dim
    let n = tokens.count
    let tablesWanted = g.dwte != nil || g.dwpe != nil
    let rowsWanted = g.tokenRows != nil && g.tokenRowIds != nil
    let normWanted = statistics != nil && (g.dgamma != nil || g.dbeta != nil)
    guard n > 0, tablesWanted || rowsWanted || normWanted else { return }
    let chunks = (d + 15) / 16
    // Per element the scatter reads dout and reads and writes the token and position
    // gradients: 16 bytes.
    let parts = min(pool.parts(count: n * d, grain: WorkerPool.memoryGrain(bytesPerItem: 16)), chunks)
    var a = t.arguments(tokens, mask: mask)
    a.dout = dout
    a.dwte = g.dwte
    a.dwpe = g.dwpe
    // Each token's own row: the same scatter over identity ids, into tokenRows only.
    var rowArgs = a
    if rowsWanted, let ids = g.tokenRowIds {
        let own = TokenBatch(batch: tokens.batch, seq: tokens.seq, ids: ids, positions: tokens.positions,
                             idStorage: nil, positionStorage: nil, start: tokens.start)
        rowArgs = EmbeddingTables(dim: t.dim, wte: t.wte, scale: t.scale, paddingIdx: -1, positions: t.positions,
                                  gamma: t.gamma, beta: t.beta, eps: t.eps, shard: nil).arguments(own, mask: mask)
        rowArgs.dout = dout
        rowArgs.dwte = g.tokenRows
        rowArgs.dwpe = nil
    }
    let scatter = kernels.scatterRows, lnRows = kernels.layerNormBackwardRows, addColumns = kernels.addColumns

    guard let statistics else {
        withUnsafePointer(to: a) { args in
          withUnsafePointer(to: rowArgs) { rArgs in
            let p = SendableConstPointer(args), pr = SendableConstPointer(rArgs), go = SendableConstPointer(dout)
            pool.run(parts: parts) { part in
                let (c0, c1) = columnRange(part, parts, chunks, d)
                if tablesWanted { scatter(p.pointer, 0, Int64(n), go.pointer, 0, 1, Int64(c0), Int64(c1)) }
                if rowsWanted { scatter(pr.pointer, 0, Int64(n), go.pointer, 0, 1, Int64(c0), Int64(c1)) }
            }
          }
        }
        return
    }

    // The layer norm path needs the scratch (callers allocate it whenever they normalise).
    let scratch = scratch.unsafelyUnwrapped
    var norm = recompute.map { $0.tables.arguments($0.tokens, mask: mask) } ?? a
    norm.mean = statistics.mean
    norm.rstd = statistics.rstd
    norm.dout = dout
    let block = min(n, backwardBlockRows(d))
    let subBlocksPerBlock = (block + subBlockRows - 1) / subBlockRows
    let dxBlock = SendablePointer(scratch)
    let partials = SendablePointer(scratch + block * d)
    let rowScratch = SendablePointer(scratch + (block + 2 * subBlocksPerBlock) * d)
    let dg = g.dgamma.map(SendablePointer.init), db = g.dbeta.map(SendablePointer.init)
    withUnsafePointer(to: a) { args in
      withUnsafePointer(to: rowArgs) { rArgs in
      withUnsafePointer(to: norm) { normArgs in
        let p = SendableConstPointer(args), pr = SendableConstPointer(rArgs), pn = SendableConstPointer(normArgs)
        var b0 = 0
        while b0 < n {
            let rows = b0..<min(n, b0 + block)
            let subBlocks = (rows.count + subBlockRows - 1) / subBlockRows
            // Phase 1: dx rows and per-sub-block dgamma / dbeta sums.
            pool.parallelFor(count: subBlocks, grain: WorkerPool.computeGrain(elementsPerItem: d * subBlockRows)) { part, local in
                let xhat = rowScratch.pointer + part * 3 * d
                for sb in local {
                    let lo = rows.lowerBound + sb * subBlockRows
                    let hi = min(rows.upperBound, lo + subBlockRows)
                    lnRows(pn.pointer, Int64(lo), Int64(hi), dxBlock.pointer + (lo - rows.lowerBound) * d,
                           partials.pointer + 2 * sb * d, partials.pointer + (2 * sb + 1) * d, xhat, xhat + d)
                }
            }
            // Phase 2: scatter the block's dx by column ranges; add the sums in order.
            pool.run(parts: parts) { part in
                let (c0, c1) = columnRange(part, parts, chunks, d)
                if tablesWanted {
                    scatter(p.pointer, Int64(rows.lowerBound), Int64(rows.upperBound), UnsafePointer(dxBlock.pointer),
                            Int64(rows.lowerBound), 0, Int64(c0), Int64(c1))
                }
                if rowsWanted {
                    scatter(pr.pointer, Int64(rows.lowerBound), Int64(rows.upperBound), UnsafePointer(dxBlock.pointer),
                            Int64(rows.lowerBound), 0, Int64(c0), Int64(c1))
                }
                for sb in 0..<subBlocks {
                    let pg = partials.pointer + 2 * sb * d
                    if let dg { addColumns(dg.pointer, pg, Int64(c0), Int64(c1)) }
                    if let db { addColumns(db.pointer, pg + d, Int64(c0), Int64(c1)) }
                }
            }
            b0 = rows.upperBound
        }
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
