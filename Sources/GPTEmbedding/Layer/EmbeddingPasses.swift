import CKernelDispatch
import CMemoryHints
#if canImport(Glibc)
import Glibc
#endif

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

    /// The kernel arguments of a call reading its token rows from `rows` (float32 `[R, D]`,
    /// row r for id r: scale 1, no padding row, no shard), with this layer's positions and
    /// layer norm: phase two of a two-phase forward, on the summed token parts.
    func arguments(_ tokens: TokenBatch, mask: DropoutMask?, tokenRows rows: UnsafeRawPointer) -> gpte_kernel_args {
        var a = arguments(tokens, mask: mask)
        a.wte = rows
        a.wte_dtype = TensorDType.float32.rawValue
        a.scale = 1
        a.padding_idx = -1
        a.wte_first_row = 0
        a.wte_rows = 0
        return a
    }

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

/// Gradient sets at least this large (8 MiB) are zeroed with streaming stores
/// (``RowTracker/zeroRows(of:cols:pool:threshold:)``); smaller ones, a quarter of an L3 or
/// less, stay in cache for the next backward, which adds into them. (1 MiB until
/// 2026-12-04: then the 1 x 1024 training step's 6 MB of gradient rows went to memory and
/// its backward read them back, 0.37 ms where it now takes 0.20.)
let streamingZeroFloats = 1 << 21

/// How the forward writes `count` elements of `dtype` to `out` (`GPTE_STORE_*`): streaming
/// when the output is large (in bytes) and its rows are aligned for it.
/// `threshold` is ``streamingOutputFloats`` except in tests, which lower it (per layer) to
/// reach the streaming paths with small calls.
func forwardStoreMode(_ out: UnsafeMutableRawPointer, count: Int, dim: Int, dtype: TensorDType = .float32,
                      threshold: Int = streamingOutputFloats) -> Int32 {
    guard count * dtype.byteCount >= threshold * 4 else { return Int32(GPTE_STORE_CACHED) }
    let address = Int(bitPattern: out)
    if dtype != .float32 {
        // Sixteen 16-bit values make one 32-byte streaming store, eight a 16-byte one.
        if address % 32 == 0 && dim % 16 == 0 { return Int32(GPTE_STORE_STREAM32) }
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

/// Phase two of a two-phase forward, in place: `x [R, D]` holds the summed token parts
/// (the token rows, ids `0 ..< R`) and receives `dropout(layerNorm?(x[r] + P[pos[r]]))`.
/// Each worker takes a contiguous range of rows in chunks that stay in its L2: it streams a
/// chunk of `x` into `keep` (the copy the layer-norm backward reads; skipped when `nil`),
/// then runs the forward rows on the chunk, which read `x` from cache and write it back.
/// So `x` is read from memory once and written once, and `keep` written once with streaming
/// stores: the floor. (A copy first and a forward from the copy moved twice the bytes.)
///
/// In place is safe because every row is assembled in the worker's scratch row before its
/// row of `x` is written (the kernel's `spill`), and a plain lookup reads each group of
/// columns before it stores them. `rowScratch` holds ``forwardScratchCount(dim:pool:decodesRows:)``
/// floats.
func embeddingForwardSummed(
    kernels: Kernels, tables t: EmbeddingTables, tokens: TokenBatch, normalize: Bool, mask: DropoutMask?,
    saveMean: UnsafeMutablePointer<Float>?, saveRstd: UnsafeMutablePointer<Float>?,
    x: UnsafeMutablePointer<Float>, keep: UnsafeMutablePointer<Float>?, rowScratch: UnsafeMutablePointer<Float>,
    pool: WorkerPool
) {
    let d = t.dim
    var a = t.arguments(tokens, mask: mask, tokenRows: UnsafeRawPointer(x))
    a.normalize = normalize ? 1 : 0
    a.save_mean = saveMean
    a.save_rstd = saveRstd
    a.out = UnsafeMutableRawPointer(x)
    a.out_dtype = TensorDType.float32.rawValue
    // The rows were just read into cache by the copy: ordinary stores write them back.
    a.store_mode = Int32(GPTE_STORE_CACHED)
    let grain = normalize || a.dropout != 0
        ? WorkerPool.computeGrain(elementsPerItem: d)
        : WorkerPool.memoryGrain(bytesPerItem: 12 * d)
    // 64 KiB of rows per chunk: the copy's read leaves them in L2 for the kernel.
    let chunk = max(1, (64 << 10) / (4 * d))
    let forwardRows = kernels.forwardRows
    let scratch = SendablePointer(rowScratch), rowsIn = SendablePointer(x), copy = keep.map(SendablePointer.init)
    withUnsafePointer(to: a) { args in
        let p = SendableConstPointer(args)
        pool.parallelFor(count: tokens.count, grain: grain) { part, rows in
            var lo = rows.lowerBound
            while lo < rows.upperBound {
                let hi = min(rows.upperBound, lo + chunk)
                if let copy { StreamingStore.copy(from: rowsIn.pointer + lo * d, to: copy.pointer + lo * d, count: (hi - lo) * d) }
                forwardRows(p.pointer, Int64(lo), Int64(hi), scratch.pointer + part * d)
                lo = hi
            }
            if copy != nil { gpte_stream_fence() }
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

/// Rows per block of the layer-norm backward (at most 256 KiB of dx, whole sub-blocks): a
/// block's dx rows stay in the core's own cache (L2) between phase 1, which writes them,
/// and phase 2, which scatters them, also with the next block's phase 1 running beside it
/// (two scratch sets, see ``BackwardSchedule``). Blocks are scattered one after another,
/// so small blocks also keep the other worker from waiting long for its turn: 2 MiB blocks
/// (the earlier size) made the 8×1024 backward 10-18 % slower on one die and 5-10 % on two
/// (docs/performance.md).
@inline(__always)
func backwardBlockRows(_ d: Int) -> Int { max(subBlockRows, (1 << 16) / d / subBlockRows * subBlockRows) }

/// Rows whose dgamma / dbeta contributions are summed together before being added in
/// order. Fixed, so the summation order never depends on the thread count.
let subBlockRows = 32

/// Floats of scratch `embeddingBackward` needs for `rows` tokens of width `d`.
func backwardScratchCount(rows: Int, dim d: Int, pool: WorkerPool) throws(GPTEmbeddingError) -> Int {
    try BackwardBlocks(rows: rows, dim: d).scratchFloats(threads: pool.threads)
}

/// Adds the gradients of `embeddingForward` for `dout` into `grads` (only the buffers it
/// has: a gradient that is not wanted costs nothing, and with none wanted nothing runs).
///
/// `statistics` are the forward's per-token mean and rstd when it normalised, else `nil`.
/// `dout` holds elements of `doutType` (float32, bf16 or f16); the kernels widen 16-bit
/// values exactly as they read them, so no float32 copy is made.
/// `recompute`, when given, is where the layer norm backward reads the token part from
/// (a two-phase forward's summed partials, which a shard cannot rebuild from its own rows);
/// the scatter always uses `tables` and `tokens`, the real ids.
///
/// Without the layer norm, one pass over column ranges scatters dout through the dropout
/// mask (each worker owns a column range and walks all rows in order). With the layer
/// norm, rows are processed in cache-sized blocks: phase 1 (sub-blocks of rows in
/// parallel) writes dx into the block scratch and sums dgamma / dbeta per sub-block;
/// phase 2 (column ranges) scatters dx into dwte / dwpe and adds the sub-block sums in
/// order, block after block, while other workers already compute the next block's phase 1
/// (``BackwardSchedule``). `scratch` holds ``backwardScratchCount(rows:dim:pool:)`` floats
/// (it may be `nil` when `statistics` is).
func embeddingBackward(
    kernels: Kernels, tables t: EmbeddingTables, tokens: TokenBatch,
    statistics: (mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>)?, mask: DropoutMask?,
    dout: UnsafeRawPointer, doutType: TensorDType = .float32, grads g: EmbeddingGradients,
    scratch: UnsafeMutablePointer<Float>?, pool: WorkerPool,
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
    a.dout_dtype = doutType.rawValue
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
        rowArgs.dout_dtype = doutType.rawValue
        rowArgs.dwte = g.tokenRows
        rowArgs.dwpe = nil
    }
    let scatter = kernels.scatterRows, lnRows = kernels.layerNormBackwardRows, addColumns = kernels.addColumns
    // Without the layer norm dout is scattered as it is (16-bit rows widened as they are
    // read); with it, phase 1 reads dout and the scatter reads float32 dx.
    let dt = doutType.rawValue, f32 = TensorDType.float32.rawValue

    guard let statistics else {
        if parts > 1, let plan = ScatterPlan(tokens: tokens, workers: parts, byPosition: g.dwpe != nil,
                                             sharesIds: g.dwte != nil || rowsWanted) {
            defer { plan.release() }
            let scatterOwned = kernels.scatterOwnedRows
            withUnsafePointer(to: a) { args in
              withUnsafePointer(to: rowArgs) { rArgs in
                let p = SendableConstPointer(args), pr = SendableConstPointer(rArgs), go = SendableRawPointer(dout)
                let owners = SendableConstPointer(UnsafePointer(plan.owners))
                pool.run(parts: parts) { part in
                    let (c0, c1) = columnRange(part, parts, chunks, d)
                    if tablesWanted { scatterOwned(p.pointer, owners.pointer, Int32(part), go.pointer, dt, 1, Int64(c0), Int64(c1)) }
                    if rowsWanted { scatterOwned(pr.pointer, owners.pointer, Int32(part), go.pointer, dt, 1, Int64(c0), Int64(c1)) }
                }
              }
            }
            return
        }
        withUnsafePointer(to: a) { args in
          withUnsafePointer(to: rowArgs) { rArgs in
            let p = SendableConstPointer(args), pr = SendableConstPointer(rArgs), go = SendableRawPointer(dout)
            pool.run(parts: parts) { part in
                let (c0, c1) = columnRange(part, parts, chunks, d)
                if tablesWanted { scatter(p.pointer, 0, Int64(n), go.pointer, dt, 0, 1, Int64(c0), Int64(c1)) }
                if rowsWanted { scatter(pr.pointer, 0, Int64(n), go.pointer, dt, 0, 1, Int64(c0), Int64(c1)) }
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
    norm.dout_dtype = doutType.rawValue
    let layout = BackwardBlocks(rows: n, dim: d)
    let dg = g.dgamma.map(SendablePointer.init), db = g.dbeta.map(SendablePointer.init)
    let base = SendablePointer(scratch)
    let workers = pool.parts(count: layout.subBlocks(of: 0) * layout.blocks,
                             grain: WorkerPool.computeGrain(elementsPerItem: d * subBlockRows))
    withUnsafePointer(to: a) { args in
      withUnsafePointer(to: rowArgs) { rArgs in
      withUnsafePointer(to: norm) { normArgs in
        let p = SendableConstPointer(args), pr = SendableConstPointer(rArgs), pn = SendableConstPointer(normArgs)
        // Phase 1 of sub-block sb of block b: its dx rows and dgamma / dbeta sums.
        @Sendable func computeRows(_ b: Int, _ sb: Int, worker: Int) {
            let xhat = base.pointer + layout.rowScratchOffset(worker: worker)
            let rows = layout.rows(of: b)
            let lo = rows.lowerBound + sb * subBlockRows, hi = min(rows.upperBound, lo + subBlockRows)
            let dx = base.pointer + layout.dxOffset(block: b) + (lo - rows.lowerBound) * d
            let partials = base.pointer + layout.partialsOffset(block: b) + 2 * sb * d
            lnRows(pn.pointer, Int64(lo), Int64(hi), dx, partials, partials + d, xhat, xhat + d)
        }
        // Phase 2 of block b over column part `part` of `parts`: its dx scattered, its
        // sub-blocks' sums added in order.
        @Sendable func scatterBlock(_ b: Int, part: Int, parts: Int) {
            let rows = layout.rows(of: b)
            let dx = UnsafeRawPointer(base.pointer + layout.dxOffset(block: b))
            let (c0, c1) = columnRange(part, parts, (d + 15) / 16, d)
            if tablesWanted {
                scatter(p.pointer, Int64(rows.lowerBound), Int64(rows.upperBound), dx, f32, Int64(rows.lowerBound), 0,
                        Int64(c0), Int64(c1))
            }
            if rowsWanted {
                scatter(pr.pointer, Int64(rows.lowerBound), Int64(rows.upperBound), dx, f32, Int64(rows.lowerBound), 0,
                        Int64(c0), Int64(c1))
            }
            for sb in 0..<layout.subBlocks(of: b) {
                let pg = base.pointer + layout.partialsOffset(block: b) + 2 * sb * d
                if let dg { addColumns(dg.pointer, pg, Int64(c0), Int64(c1)) }
                if let db { addColumns(db.pointer, pg + d, Int64(c0), Int64(c1)) }
            }
        }
        if workers == 2 && layout.blocks > 1 {
            let pair = BlockPairSchedule(blocks: layout.blocks)
            pool.run(parts: 2) { worker in
                pair.run(part: worker,
                         compute: { b in for sb in 0..<layout.subBlocks(of: b) { computeRows(b, sb, worker: worker) } },
                         scatter: { b in scatterBlock(b, part: 0, parts: 1) })
            }
            return
        }
        let schedule = BackwardSchedule(layout, workers: workers)
        pool.run(parts: workers) { worker in
            var waits = 0
            while true {
                switch schedule.next() {
                case .done:
                    return
                case .wait:
                    // Another worker holds the task this one waits for; on a loaded machine
                    // it may not be running: give it the core now and then.
                    gpte_spin_pause()
                    waits += 1
                    if waits & 63 == 0 { sched_yield() }
                case let .rows(b, sb):
                    computeRows(b, sb, worker: worker)
                    schedule.finishedRows(block: b)
                case let .scatter(b, part, parts):
                    scatterBlock(b, part: part, parts: parts)
                    schedule.finishedScatter()
                }
            }
        }
      }
      }
    }
}

/// Who scatters which token rows in a backward without the layer norm, over `workers`
/// workers (``scatterOwnedRows`` in the kernels): each token is owned by the worker that
/// owns its position row (contiguous position ranges; without a position gradient,
/// contiguous token ranges), so every position row is written by one worker; a token row
/// is written whole by the worker owning all of its id's tokens, or, when an id's tokens
/// belong to several workers, in column parts by all of them. Each worker walks every
/// token in order, so each gradient element is summed in token order, as before.
///
/// `nil` (the caller then scatters by column ranges alone) when the owners would be
/// uneven, e.g. explicit positions crowding into one range or sequences shorter than the
/// number of workers, or when the few bytes it needs cannot be allocated.
struct ScatterPlan {
    /// `[R]`: the owning worker in bits 0-6, bit 7 when the token's id is shared.
    let owners: UnsafeMutablePointer<UInt8>

    init?(tokens: TokenBatch, workers: Int, byPosition: Bool, sharesIds: Bool) {
        let n = tokens.count
        guard workers > 1, workers < 0x7F, n > 0, let owners = malloc(n)?.assumingMemoryBound(to: UInt8.self) else { return nil }
        // Owners: position ranges (or token ranges), even by construction for the usual
        // start + r % seq positions; explicit positions are checked for balance.
        var counts = [Int](repeating: 0, count: workers)
        if byPosition, let positions = tokens.positions {
            var lo = Int(positions[0]), hi = lo
            for r in 0..<n { lo = min(lo, Int(positions[r])); hi = max(hi, Int(positions[r])) }
            let span = hi - lo + 1
            for r in 0..<n {
                let o = (Int(positions[r]) - lo) * workers / span
                owners[r] = UInt8(truncatingIfNeeded: o)
                counts[o] += 1
            }
        } else if byPosition {
            let seq = tokens.seq
            for r in 0..<n {
                let o = (r % seq) * workers / seq
                owners[r] = UInt8(truncatingIfNeeded: o)
                counts[o] += 1
            }
        } else {
            for r in 0..<n {
                let o = r * workers / n
                owners[r] = UInt8(truncatingIfNeeded: o)
                counts[o] += 1
            }
        }
        // A quarter above an even share is the most one worker may get.
        guard counts.allSatisfy({ $0 <= n / workers + n / (4 * workers) + 1 }) else { free(owners); return nil }
        if sharesIds {
            // Per id: 0 unseen, owner + 1, or 0xFF when tokens of two owners have it.
            var top = 0, bottom = 0
            for r in 0..<n { top = max(top, Int(tokens.ids[r])); bottom = min(bottom, Int(tokens.ids[r])) }
            guard bottom >= 0 else { free(owners); return nil }
            guard let seen = calloc(top + 1, 1)?.assumingMemoryBound(to: UInt8.self) else { free(owners); return nil }
            defer { free(seen) }
            for r in 0..<n {
                let id = Int(tokens.ids[r]), mark = owners[r] &+ 1
                if seen[id] == 0 { seen[id] = mark } else if seen[id] != mark { seen[id] = 0xFF }
            }
            for r in 0..<n where seen[Int(tokens.ids[r])] == 0xFF { owners[r] |= 0x80 }
        }
        self.owners = owners
    }

    func release() { free(owners) }
}

/// How the layer-norm backward cuts `rows` tokens into blocks, and where each block's
/// scratch lives. Blocks alternate between ``buffers`` sets of scratch (dx rows and
/// dgamma / dbeta sums per sub-block), so phase 1 of one block can run while the block
/// before it is scattered.
struct BackwardBlocks: Sendable {
    let rows: Int
    let dim: Int
    /// Rows per block (the last block may be shorter).
    let blockRows: Int
    let blocks: Int
    /// Scratch sets: 2, or 1 when there is one block.
    let buffers: Int

    init(rows: Int, dim: Int) {
        self.rows = rows
        self.dim = dim
        blockRows = max(1, min(rows, backwardBlockRows(dim)))
        blocks = (rows + blockRows - 1) / blockRows
        buffers = min(2, blocks)
    }

    /// Sub-blocks of a whole block.
    var subBlocksPerBlock: Int { (blockRows + subBlockRows - 1) / subBlockRows }

    func rows(of b: Int) -> Range<Int> { b * blockRows ..< min(rows, (b + 1) * blockRows) }

    func subBlocks(of b: Int) -> Int { (rows(of: b).count + subBlockRows - 1) / subBlockRows }

    /// Floats of one scratch set: dx of a block, then two sums per sub-block.
    private var setFloats: Int { (blockRows + 2 * subBlocksPerBlock) * dim }

    func dxOffset(block b: Int) -> Int { (b % buffers) * setFloats }

    func partialsOffset(block b: Int) -> Int { dxOffset(block: b) + blockRows * dim }

    /// Three rows per worker (x-hat, dy, and a token row decoded from a block format).
    func rowScratchOffset(worker: Int) -> Int { buffers * setFloats + worker * 3 * dim }

    /// Floats of scratch for `threads` workers.
    func scratchFloats(threads: Int) throws(GPTEmbeddingError) -> Int {
        // Block rows are bounded (backwardBlockRows), threads by the team's limit: only the
        // product with dim can overflow.
        try Checked.multiply(buffers * (blockRows + 2 * subBlocksPerBlock) + 3 * threads, dim, "backward scratch")
    }
}

/// Hands out the layer-norm backward's work to the workers of one call: phase 1 sub-blocks
/// (compute: the layer norm's backward and the dropout mask) and phase 2 scatters (memory:
/// read-modify-write of gradient rows), so that one worker scatters block b while the
/// others compute block b + 1 — the two phases' bottlenecks overlap instead of taking turns.
/// (Two workers use ``BlockPairSchedule`` instead, which needs no lock.)
///
/// The results do not depend on who runs what: a sub-block's dx and sums are its own, and
/// blocks are scattered strictly in order (each gradient element is still summed in token
/// order, the dgamma / dbeta sums in sub-block order). A block is scattered in one column
/// range per two workers (all but one keep computing), the last block over every worker.
/// A block's scratch set is reused only after the block two before it is scattered.
final class BackwardSchedule: @unchecked Sendable {
    enum Task {
        case rows(block: Int, subBlock: Int)
        case scatter(block: Int, part: Int, parts: Int)
        case wait
        case done
    }

    private let layout: BackwardBlocks
    private let workers: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// The next phase-1 sub-block to hand out.
    private var nextBlock = 0, nextSubBlock = 0
    /// Sub-blocks finished, per block.
    private var rowsDone: [Int]
    /// The block being scattered, its next column part, and its parts finished.
    private var scatterBlock = 0, nextPart = 0, partsDone = 0

    init(_ layout: BackwardBlocks, workers: Int) {
        self.layout = layout
        self.workers = max(1, workers)
        rowsDone = Array(repeating: 0, count: layout.blocks)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Column parts of block `b`'s scatter.
    private func parts(_ b: Int) -> Int { b == layout.blocks - 1 ? workers : max(1, workers / 2) }

    /// The next task for the asking worker.
    func next() -> Task {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if scatterBlock == layout.blocks { return .done }
        if rowsDone[scatterBlock] == layout.subBlocks(of: scatterBlock) && nextPart < parts(scatterBlock) {
            nextPart += 1
            return .scatter(block: scatterBlock, part: nextPart - 1, parts: parts(scatterBlock))
        }
        if nextBlock < layout.blocks && nextBlock < scatterBlock + layout.buffers {
            let task = Task.rows(block: nextBlock, subBlock: nextSubBlock)
            nextSubBlock += 1
            if nextSubBlock == layout.subBlocks(of: nextBlock) { nextBlock += 1; nextSubBlock = 0 }
            return task
        }
        return .wait
    }

    func finishedRows(block b: Int) {
        pthread_mutex_lock(mutex)
        rowsDone[b] += 1
        pthread_mutex_unlock(mutex)
    }

    func finishedScatter() {
        pthread_mutex_lock(mutex)
        partsDone += 1
        if partsDone == parts(scatterBlock) { scatterBlock += 1; nextPart = 0; partsDone = 0 }
        pthread_mutex_unlock(mutex)
    }
}

/// Columns `[c0, c1)` of part `part` of `parts`, in whole 16-column chunks.
@inline(__always)
private func columnRange(_ part: Int, _ parts: Int, _ chunks: Int, _ d: Int) -> (Int, Int) {
    let cr = WorkerPool.range(part: part, of: parts, count: chunks)
    return (cr.lowerBound * 16, min(cr.upperBound * 16, d))
}
