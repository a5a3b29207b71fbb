import CKernelDispatch
import GPTEmbeddingKernels

/// Counter-based random numbers (``CounterHash``): every value is a pure function of
/// (seed, stream, index), so results do not depend on thread count, call order or CPU
/// path, and backward can regenerate the forward's dropout mask instead of storing it.
enum CounterRandom {
    /// The key of an independent stream derived from the user's seed.
    static func streamKey(seed: UInt64, stream: UInt64) -> UInt64 {
        CounterHash.mix64(CounterHash.mix64(seed) ^ (stream &* 0xD1B5_4A32_D192_ED03))
    }

    /// Fills every element of `table` with N(0, std) samples of stream `key` (element `i` is
    /// a function of `(key, i)` only, rounded to the table's dtype), in parallel parts.
    /// `table[j]` receives stream element `firstElement + j`: a shard of a table fills
    /// exactly the values its rows have in the whole table.
    static func fillNormal(_ table: TableStorage, std: Float, key: UInt64, firstElement: Int = 0, kernels: Kernels, pool: WorkerPool) {
        let o = SendablePointer(table.base.assumingMemoryBound(to: UInt8.self))
        let fill = kernels.fillNormal, dtype = table.dtype, bytes = table.dtype.byteCount
        pool.parallelFor(count: table.count, grain: WorkerPool.minComputePerPart) { _, range in
            fill(UnsafeMutableRawPointer(o.pointer + range.lowerBound * bytes), dtype.rawValue,
                 Int64(firstElement + range.lowerBound), Int64(firstElement + range.upperBound), std, key)
        }
    }
}

/// The dropout mask of one training step: element `c` of row `r` is kept when
/// `mix32(rowKey(r) &+ c * columnStride) >= threshold` (``CounterHash/keep(rowKey:column:threshold:)``).
struct DropoutMask: Sendable {
    /// Keep an element when its hash is at least this.
    let threshold: UInt32
    /// The multiplier of kept elements, `1 / (1 - p)`; 0 when everything is dropped.
    let keepScale: Float
    /// Every element is dropped (`p == 1`).
    let dropAll: Bool
    let stepKey: UInt64

    init(probability p: Float, seed: UInt64, step: UInt64) {
        // p * 2^32 rounded down; p < 1 here keeps it below 2^32.
        let t = Double(p) * 4_294_967_296.0
        dropAll = p >= 1
        threshold = dropAll ? UInt32.max : UInt32(min(t, 4_294_967_295.0))
        keepScale = dropAll ? 0 : 1 / (1 - p)
        stepKey = CounterHash.mix64(CounterRandom.streamKey(seed: seed, stream: 3) ^ CounterHash.mix64(step))
    }
}
