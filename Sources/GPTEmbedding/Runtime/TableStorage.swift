import CKernelDispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The values of a parameter: `count` elements of one ``TensorDType``, in the layer's own
/// memory (64-byte aligned, huge pages when large) or inside a private mapping of a
/// checkpoint file (``MappedFile``). The address never changes for the life of the storage,
/// which is what makes zero-copy access safe to hand out.
final class TableStorage: @unchecked Sendable {
    /// The first element.
    let base: UnsafeMutableRawPointer
    /// Number of elements.
    let count: Int
    /// The element type values are computed in: the stored type, or float32 for a table
    /// in one of ggml's block formats (``blockType``).
    let dtype: TensorDType
    /// ggml's block type of a quantized table (rows of whole blocks, decoded as they are
    /// read), or `nil` for elements of ``dtype``.
    let blockType: GGMLType?
    /// The mapping the values live in, or `nil` for the layer's own memory.
    let mapping: MappedFile?
    private let heap: FloatBuffer?

    /// `count` elements of `dtype` in the layer's memory; zeroed unless the caller writes all
    /// of them next.
    init(count: Int, dtype: TensorDType, zeroed: Bool = true, what: @autoclosure () -> String) throws(GPTEmbeddingError) {
        let bytes = try Checked.multiply(count, dtype.byteCount, what())
        // A float buffer of the same byte size (rounded up): one allocator for everything.
        let buffer = try FloatBuffer(count: (bytes + 3) / 4, zeroed: zeroed, what: what())
        heap = buffer
        base = UnsafeMutableRawPointer(buffer.base)
        self.count = count
        self.dtype = dtype
        blockType = nil
        mapping = nil
    }

    /// `rows` rows of `cols` elements of block type `type` (`cols` a whole number of blocks)
    /// in the layer's memory, left for the caller to fill.
    init(rows: Int, cols: Int, blockType type: GGMLType, what: @autoclosure () -> String) throws(GPTEmbeddingError) {
        guard let rowBytes = type.rowBytes(cols), cols % type.blockSize == 0 else {
            throw GPTEmbeddingError(.invalidArgument, "\(what()): a \(type.name) row of \(cols) elements is not a whole number of \(type.blockSize)-element blocks")
        }
        let bytes = try Checked.multiply(rows, rowBytes, what())
        let buffer = try FloatBuffer(count: (bytes + 3) / 4, zeroed: false, what: what())
        heap = buffer
        base = UnsafeMutableRawPointer(buffer.base)
        count = try Checked.multiply(rows, cols, what())
        dtype = .float32
        blockType = type
        mapping = nil
    }

    /// `count` elements of block type `type` at `offset` bytes into `mapping`, which the
    /// caller has checked holds them (blocks are read byte by byte: any offset will do).
    init(mapping: MappedFile, offset: Int, count: Int, blockType type: GGMLType) {
        self.mapping = mapping
        base = mapping.base + offset
        self.count = count
        dtype = .float32
        blockType = type
        heap = nil
    }

    /// `count` elements of `dtype` at `offset` bytes into `mapping`, which the caller has
    /// checked holds them and is aligned for `dtype`.
    init(mapping: MappedFile, offset: Int, count: Int, dtype: TensorDType) {
        self.mapping = mapping
        base = mapping.base + offset
        self.count = count
        self.dtype = dtype
        blockType = nil
        heap = nil
    }

    /// `count` elements of `dtype` at `base` in the caller's memory, read for the duration of
    /// one call (a borrowed table, ``EmbeddingCall/tokenEmbedding``): never written, freed
    /// or kept.
    init(borrowing base: UnsafeRawPointer, count: Int, dtype: TensorDType) {
        self.base = UnsafeMutableRawPointer(mutating: base)
        self.count = count
        self.dtype = dtype
        blockType = nil
        mapping = nil
        heap = nil
    }

    /// Bytes of the values (of the blocks, for a block format).
    var byteCount: Int {
        guard let blockType else { return count * dtype.byteCount }
        return count / blockType.blockSize * blockType.blockBytes
    }

    /// The table's type as the kernels take it (`gpte_kernel_args.wte_dtype`): a
    /// `GPTE_DTYPE_*`, or `GPTE_DTYPE_GGML` plus the block type.
    var kernelDType: Int32 {
        blockType.map { Int32(GPTE_DTYPE_GGML) + Int32($0.rawValue) } ?? dtype.rawValue
    }

    /// Bytes this storage keeps in the layer's own memory (a mapped table's pages belong to
    /// the page cache until they are written).
    var ownedByteCount: Int { mapping == nil ? byteCount : 0 }

    /// The values as floats, when they are float32.
    var floats: UnsafeMutablePointer<Float>? {
        dtype == .float32 && blockType == nil ? base.assumingMemoryBound(to: Float.self) : nil
    }

    /// Replaces the values with `count` elements of `dtype` at `src` (any alignment),
    /// widened exactly or rounded to nearest even, in parallel parts.
    func convert(from src: UnsafeRawPointer, dtype srcType: TensorDType, count n: Int, kernels: Kernels, pool: WorkerPool) {
        let s = SendableConstPointer(src.assumingMemoryBound(to: UInt8.self))
        let d = SendablePointer(base.assumingMemoryBound(to: UInt8.self))
        let convert = kernels.convert, dstType = dtype
        pool.parallelFor(count: min(n, count), grain: WorkerPool.memoryGrain(bytesPerItem: 8)) { _, range in
            convert(UnsafeMutableRawPointer(d.pointer + range.lowerBound * dstType.byteCount), dstType.rawValue,
                    UnsafeRawPointer(s.pointer + range.lowerBound * srcType.byteCount), srcType.rawValue, Int64(range.count))
        }
    }

    /// Sets every byte to zero.
    func zero() { memset(base, 0, byteCount) }
}
