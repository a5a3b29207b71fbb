import CKernelDispatch

/// A trainable `[rows, cols]` table and its gradient.
///
/// The values are stored as float32, bfloat16 or float16 (``dtype``), in the layer's memory
/// or in a private mapping of a checkpoint; the gradient is always float32 (the
/// master-gradient rule of mixed-precision training) and is allocated (zeroed) on first
/// use, so inference never pays for it. The float32 accessors (``values``,
/// ``setValues(_:)-([Float])``, ``copyValues(into:)``) work for every dtype: reads widen exactly,
/// writes round to nearest even. Both buffers keep their address for the life of the
/// tensor, which is what makes zero-copy access safe to hand out.
public final class ParameterTensor: @unchecked Sendable {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let cols: Int
    /// The name used in state dicts, e.g. `token_embedding.weight`.
    public let name: String
    /// Where the values live.
    let storage: TableStorage
    private(set) var grad: FloatBuffer?
    /// Converts between the storage's dtype and float32.
    let kernels: Kernels

    /// A `[rows, cols]` tensor of `dtype` whose values start at zero, or, with
    /// `zeroed: false`, undefined: for a caller that writes every element next (an
    /// initialiser that fills the table), which then pays for touching the memory once.
    init(name: String, rows: Int, cols: Int, dtype: TensorDType = .float32, zeroed: Bool = true,
         kernels: Kernels) throws(GPTEmbeddingError) {
        self.name = name
        self.rows = rows
        self.cols = cols
        self.kernels = kernels
        storage = try TableStorage(count: Checked.multiply(rows, cols, "\(name) size"), dtype: dtype, zeroed: zeroed, what: name)
    }

    /// A `[rows, cols]` tensor over prepared values (a checkpoint read or mapped).
    init(name: String, rows: Int, cols: Int, storage: TableStorage, kernels: Kernels) {
        self.name = name
        self.rows = rows
        self.cols = cols
        self.storage = storage
        self.kernels = kernels
    }

    /// `rows * cols`.
    public var count: Int { storage.count }

    /// The element type of the values.
    public var dtype: TensorDType { storage.dtype }

    /// ggml's block type when the values are a quantized table opened from a GGUF file
    /// (`.q4_k`, ...), else `nil`. Such a table is frozen: rows are dequantized to float32
    /// as they are read (``dtype`` is then `.float32`, the type its values come out in); it
    /// has no gradient and takes no optimizer step, and ``setValues(_:)-([Float])`` refuses it
    /// (`badState`). Open with `OpenOptions.dtype` to train it.
    public var blockType: GGMLType? { storage.blockType }

    /// The `badState` error for what a frozen block-format table cannot do.
    func frozenError(_ what: String) -> GPTEmbeddingError {
        GPTEmbeddingError(.badState, "\(name) is a \(blockType?.name ?? "quantized") table, which is frozen: it \(what); to train it, open the file with a dtype that converts it (C: gpt_embedding_open_options.dtype, Python: dtype=, Swift: OpenOptions.dtype; float32, bfloat16 or float16)")
    }

    /// Whether the values live in a private mapping of a checkpoint file (pages shared with
    /// the page cache until written; writes never reach the file).
    public var isMapped: Bool { storage.mapping != nil }

    /// The values as float32, row-major, when ``dtype`` is `.float32`; empty otherwise (use
    /// ``rawData``). Valid while this tensor is alive; writing changes the parameter.
    public var data: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: storage.floats, count: storage.floats == nil ? 0 : count)
    }

    /// The values in their own dtype: `count` elements of ``dtype`` at the pointer (for a
    /// table in a block format, ``blockType``, its raw blocks: `rows` rows of
    /// `blockType.rowBytes(cols)` bytes, and the dtype says `.float32`). Valid
    /// while this tensor is alive; writing changes the parameter (a mapped table's pages
    /// become private copies; the file never changes).
    public var rawData: (pointer: UnsafeMutableRawPointer, dtype: TensorDType) { (storage.base, storage.dtype) }

    /// The gradient, allocated and zeroed on first use. Valid while this tensor is alive.
    /// Writing through it is allowed (a tied output head adds its gradient here); from then
    /// on `zeroGrad` clears the whole gradient rather than only the rows backward touched.
    public func gradientData() throws(GPTEmbeddingError) -> UnsafeMutableBufferPointer<Float> {
        if blockType != nil { throw frozenError("has no gradient") }
        let g = try gradientBuffer()
        gradientShared = true
        return g.buffer
    }

    /// Whether the gradient's address was handed out (or a component wrote it directly),
    /// so the rows written cannot be tracked.
    private(set) var gradientShared = false

    /// Notes a write to the gradient that the layer's row tracking does not see.
    func markUntrackedWrites() { gradientShared = true }

    /// Whether a gradient has been allocated.
    public var hasGradient: Bool { grad != nil }

    func gradientBuffer() throws(GPTEmbeddingError) -> FloatBuffer {
        if let grad { return grad }
        if blockType != nil { throw frozenError("has no gradient") }
        let g = try FloatBuffer(count: count, what: "\(name) gradient")
        grad = g
        return g
    }

    /// A copy of the values as float32 (widened exactly).
    public var values: [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, n in
            if let b = buf.baseAddress { widen(into: b, from: 0, count: count) }
            n = count
        }
    }

    /// A copy of the gradient (zeros before the first backward, and always for a frozen
    /// table in a block format).
    public var gradient: [Float] { grad.map { Array($0.buffer) } ?? [Float](repeating: 0, count: count) }

    /// Copies the values, as float32, into `dst`, which must hold at least `count` floats.
    public func copyValues(into dst: UnsafeMutableBufferPointer<Float>) throws(GPTEmbeddingError) {
        try Self.checkCapacity(dst.count, count, name)
        if let d = dst.baseAddress { widen(into: d, from: 0, count: count) }
    }

    /// Copies the gradient into `dst` (zeros before the first backward); `badState` for a
    /// frozen table in a block format.
    public func copyGradient(into dst: UnsafeMutableBufferPointer<Float>) throws(GPTEmbeddingError) {
        if blockType != nil { throw frozenError("has no gradient") }
        try Self.checkCapacity(dst.count, count, name)
        guard let grad else {
            dst.baseAddress?.update(repeating: 0, count: count)
            return
        }
        dst.baseAddress?.update(from: grad.base, count: count)
    }

    /// Replaces the values with `src`, which must hold exactly `count` floats; rounded to
    /// ``dtype`` to nearest even.
    public func setValues(_ src: UnsafeBufferPointer<Float>) throws(GPTEmbeddingError) {
        if blockType != nil { throw frozenError("cannot be set") }
        guard src.count == count, let s = src.baseAddress else {
            throw GPTEmbeddingError(.invalidArgument, "\(name) has \(count) elements [\(rows), \(cols)], got \(src.count)")
        }
        kernels.convert(storage.base, dtype.rawValue, UnsafeRawPointer(s), TensorDType.float32.rawValue, Int64(count))
        // A 16-bit table's master weights take the given values exactly.
        adamw?.master?.base.update(from: s, count: count)
    }

    /// Replaces the values with `src`.
    public func setValues(_ src: [Float]) throws(GPTEmbeddingError) {
        try src.withUnsafeBufferPointer { (b) throws(GPTEmbeddingError) in try setValues(b) }
    }

    /// Elements `[start, start + count)` widened to float32 into `dst`.
    func widen(into dst: UnsafeMutablePointer<Float>, from start: Int, count n: Int) {
        if let type = blockType {
            // Whole rows (every caller asks for rows): each dequantized as the kernels do.
            guard cols > 0, let rowBytes = type.rowBytes(cols) else { return }
            let first = start / cols
            for r in 0..<n / cols {
                _ = kernels.dequantizeRow(Int32(type.rawValue), UnsafeRawPointer(storage.base + (first + r) * rowBytes),
                                          Int64(cols), dst + r * cols)
            }
            return
        }
        kernels.convert(UnsafeMutableRawPointer(dst), TensorDType.float32.rawValue,
                        UnsafeRawPointer(storage.base + start * dtype.byteCount), dtype.rawValue, Int64(n))
    }

    /// Sets the gradient to zero (no allocation if there is none).
    public func zeroGradient() { grad?.zero() }

    /// The optimizer's state for this tensor, once a step (or a restore) has created it.
    public internal(set) var adamw: AdamWState?

    /// The optimizer state, allocated on first use: zero moments, step 0, and for a 16-bit
    /// table a master copy taken from the table (widened exactly).
    func adamwState(pool: WorkerPool) throws(GPTEmbeddingError) -> AdamWState {
        if let adamw { return adamw }
        if blockType != nil { throw frozenError("takes no optimizer step") }
        let state = try AdamWState(count: count, name: name, needsMaster: dtype != .float32)
        if let master = state.master { refreshMaster(master, pool: pool) }
        adamw = state
        return state
    }

    /// Copies the table, widened, into the master weights (after the table was replaced).
    func refreshMaster(_ master: FloatBuffer, pool: WorkerPool) {
        let d = SendablePointer(master.base), src = SendableConstPointer(UnsafeRawPointer(storage.base).assumingMemoryBound(to: UInt8.self))
        let convert = kernels.convert, type = dtype
        pool.parallelFor(count: count, grain: WorkerPool.memoryGrain(bytesPerItem: 6)) { _, range in
            convert(UnsafeMutableRawPointer(d.pointer + range.lowerBound), TensorDType.float32.rawValue,
                    UnsafeRawPointer(src.pointer + range.lowerBound * type.byteCount), type.rawValue, Int64(range.count))
        }
    }

    /// Bytes owned (values in the layer's memory, gradient and optimizer state).
    var byteCount: Int { storage.ownedByteCount + (grad?.byteCount ?? 0) + (adamw?.byteCount ?? 0) }

    static func checkCapacity(_ have: Int, _ need: Int, _ what: String, unit: String = "floats") throws(GPTEmbeddingError) {
        guard have >= need else {
            throw GPTEmbeddingError(.bufferTooSmall, "buffer for \(what) holds \(have) \(unit), needs \(need)")
        }
    }
}
