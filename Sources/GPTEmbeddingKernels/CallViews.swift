import CKernelDispatch

/// Shapes (R = tokens of the call, D = dim):
///   ids, positions  [R]          validated rows
///   wte             [V, D]       token table;  wpe [rows, D] position rows
///   gamma, beta     [D]          layer norm weight and bias
///   out, dout       [R, D]       output and its gradient
///   mean, rstd      [R]          layer norm statistics kept by a training forward
///
/// These views read a call's `gpte_kernel_args` once, so the row loops see plain Swift
/// values. The layer fills every pointer a kernel uses before it calls the kernel.

/// The tables of a call.
struct Tables {
    let dim: Int
    let wte: UnsafeRawPointer
    let wteDType: Int32
    /// The ggml block type of `wte` (`GPTE_GGML_*`), or -1 for float elements.
    let blockType: Int32
    /// Bytes of a token row.
    let wteRowBytes: Int
    /// `sqrt(D)` or 1.
    let scale: Float
    /// The padding row, or -1.
    let paddingIdx: Int
    let positionKind: Int32
    let wpe: UnsafeRawPointer?
    let wpeDType: Int32
    /// Bytes of a position row.
    let wpeRowBytes: Int
    let wpeRows: Int
    let gamma: UnsafePointer<Float>?
    let beta: UnsafePointer<Float>?
    let eps: Float
    /// The vocabulary row of `wte`'s first row (a shard's start; 0 for a whole table).
    let firstRow: Int
    /// Rows `wte` holds, or 0 for the whole vocabulary (every id is held).
    let heldRows: Int

    @inline(__always)
    init(_ a: UnsafePointer<gpte_kernel_args>) {
        let a = a.pointee
        dim = Int(a.dim)
        wte = a.wte
        wteDType = a.wte_dtype
        blockType = a.wte_dtype >= Int32(GPTE_DTYPE_GGML) ? a.wte_dtype - Int32(GPTE_DTYPE_GGML) : -1
        wteRowBytes = blockType >= 0 ? ggmlRowBytes(blockType, Int(a.dim)) : Int(a.dim) * dtypeBytes(a.wte_dtype)
        scale = a.scale
        paddingIdx = Int(a.padding_idx)
        positionKind = a.position_kind
        wpe = a.wpe
        wpeDType = a.position_kind == Int32(GPTE_POSITIONS_TABLE) ? a.wpe_dtype : Int32(GPTE_DTYPE_F32)
        wpeRowBytes = Int(a.dim) * dtypeBytes(wpeDType)
        wpeRows = Int(a.wpe_rows)
        gamma = a.gamma
        beta = a.beta
        eps = a.eps
        heldRows = Int(a.wte_rows)
        firstRow = heldRows == 0 ? 0 : Int(a.wte_first_row)
    }

    /// The row of token `id` (elements of `wteDType`); `id` must be held (``holds(_:)``).
    @inline(__always)
    func tokenRow(_ id: Int32) -> UnsafeRawPointer { wte + (Int(id) - firstRow) * wteRowBytes }

    /// Whether token `id` is one of the rows `wte` holds (always, for a whole table).
    @inline(__always)
    func holds(_ id: Int32) -> Bool {
        heldRows == 0 || UInt(bitPattern: Int(id) - firstRow) < UInt(heldRows)
    }

    /// The row of token `id` as float32 values in `decoded` (D floats) when the table is in
    /// a block format, else its stored row (elements of `wteDType`).
    @inline(__always)
    func tokenRow(_ id: Int32, decoded: UnsafeMutablePointer<Float>?) -> UnsafeRawPointer {
        guard let decoded else { return tokenRow(id) }
        _ = dequantizeRow(blockType, tokenRow(id), dim, decoded)
        return UnsafeRawPointer(decoded)
    }

    /// The stored row of token `id` `prefetchDistance` rows ahead, for the row loops to ask
    /// for a line at a time (``prefetchBytes`` of it: a block-format row is a fraction of
    /// the float row the loops walk).
    @inline(__always)
    func rowAhead(_ id: Int32, decoded _: UnsafeMutablePointer<Float>?) -> UnsafeRawPointer { tokenRowForPrefetch(id) }

    /// Bytes of a stored row: the row loops ask for the line at `c * W.bytes` only below it.
    @inline(__always)
    var prefetchBytes: Int { wteRowBytes }

    /// The row of token `id` when it is held, else the table's first row: an address that
    /// is always inside the table, for prefetching.
    @inline(__always)
    func tokenRowForPrefetch(_ id: Int32) -> UnsafeRawPointer { holds(id) ? tokenRow(id) : wte }

    /// The row of position `p` (elements of `wpeDType`: float32 for sinusoidal rows), or
    /// `nil` when there are no positions. Sinusoidal rows past the cached ones are computed
    /// into `spill` (D floats).
    @inline(__always)
    func positionRow(_ p: Int, spill: UnsafeMutablePointer<Float>) -> UnsafeRawPointer? {
        guard positionKind != Int32(GPTE_POSITIONS_NONE), let wpe else { return nil }
        if positionKind == Int32(GPTE_POSITIONS_TABLE) || p < wpeRows { return wpe + p * wpeRowBytes }
        SinusoidalFill.fill(start: p, count: 1, embedDim: dim, into: spill)
        return UnsafeRawPointer(spill)
    }
}

/// The tokens of a call.
struct Tokens {
    let ids: UnsafePointer<Int32>
    let positions: UnsafePointer<Int32>?
    let start: Int
    let seq: Int
    let count: Int

    @inline(__always)
    init(_ a: UnsafePointer<gpte_kernel_args>) {
        let a = a.pointee
        ids = a.ids
        positions = a.positions
        start = Int(a.start)
        seq = max(1, Int(a.seq))
        count = Int(a.count)
    }

    /// The position of flat token `r`.
    @inline(__always)
    func position(_ r: Int) -> Int {
        if let positions { return Int(positions[r]) }
        return start + r % seq
    }
}

/// The dropout mask of a call: element `c` of row `r` is kept when
/// `mix32(rowKey(r) &+ c * columnStride) >= threshold`.
struct Dropout {
    let threshold: UInt32
    /// The multiplier of kept elements, `1 / (1 - p)`.
    let keepScale: Float
    let stepKey: UInt64

    /// The call's mask, or `nil` without dropout.
    @inline(__always)
    static func of(_ a: UnsafePointer<gpte_kernel_args>) -> Dropout? {
        let a = a.pointee
        guard a.dropout != 0 else { return nil }
        return Dropout(threshold: a.threshold, keepScale: a.keep_scale, stepKey: a.step_key)
    }

    @inline(__always)
    func rowKey(_ row: Int) -> UInt32 { CounterHash.rowKey(stepKey: stepKey, row: row) }

    @inline(__always)
    func keep(rowKey: UInt32, column c: Int) -> Bool {
        CounterHash.keep(rowKey: rowKey, column: c, threshold: threshold)
    }
}

/// Bytes of one element of `dtype` (`GPTE_DTYPE_*`).
@inline(__always)
func dtypeBytes(_ dtype: Int32) -> Int { dtype == Int32(GPTE_DTYPE_F32) ? 4 : 2 }
