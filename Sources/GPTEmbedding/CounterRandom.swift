/// Counter-based random numbers: every value is a pure function of (seed, stream, index),
/// so results do not depend on thread count or call order, and backward can regenerate the
/// forward's dropout mask instead of storing it.
enum CounterRandom {
    /// SplitMix64's output function (Steele, Lea, Flood 2014): a 64-bit bijective mixer.
    @inline(__always)
    static func mix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// MurmurHash3's 32-bit finaliser: cheap enough to run per element and vectorisable.
    @inline(__always)
    static func mix32(_ x: UInt32) -> UInt32 {
        var h = x
        h ^= h >> 16
        h = h &* 0x85EB_CA6B
        h ^= h >> 13
        h = h &* 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    /// The key of an independent stream derived from the user's seed.
    static func streamKey(seed: UInt64, stream: UInt64) -> UInt64 {
        mix64(mix64(seed) ^ (stream &* 0xD1B5_4A32_D192_ED03))
    }

    /// Fills `out[0..<count]` with N(0, std) samples of stream `key`, element `i` a function
    /// of `(key, i)` only (``fillNormal(_:from:to:std:key:)``): the parts the pool splits
    /// the count into give the same table for any thread count.
    static func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, std: Float, key: UInt64, pool: WorkerPool) {
        let o = SendablePointer(out)
        pool.parallelFor(count: count, grain: WorkerPool.minComputePerPart) { _, range in
            fillNormalPart(o.pointer + range.lowerBound, range, std: std, key: key)
        }
    }
}

/// Elements `range` of stream `key` into `out` (element `range.lowerBound` first). At file
/// scope because inside `CounterRandom` its own `fillNormal` hides the kernel's.
private func fillNormalPart(_ out: UnsafeMutablePointer<Float>, _ range: Range<Int>, std: Float, key: UInt64) {
    fillNormal(out, from: range.lowerBound, to: range.upperBound, std: std, key: key)
}

/// The dropout mask of one training step: element `c` of row `r` is kept when
/// `mix32(rowKey(r) &+ c * golden) >= threshold`.
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
        // p == 1 keeps nothing: the threshold is unreachable only for p < 1, so keepScale 0
        // zeroes the (rare) elements whose hash is UInt32.max.
        dropAll = p >= 1
        threshold = dropAll ? UInt32.max : UInt32(min(t, 4_294_967_295.0))
        keepScale = dropAll ? 0 : 1 / (1 - p)
        stepKey = CounterRandom.mix64(CounterRandom.streamKey(seed: seed, stream: 3) ^ CounterRandom.mix64(step))
    }

    @inline(__always)
    func rowKey(_ row: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: CounterRandom.mix64(stepKey &+ UInt64(row)))
    }

    /// Consecutive columns' hash inputs differ by this (the golden ratio in 32 bits).
    static let columnStride: UInt32 = 0x9E37_79B9

    @inline(__always)
    func keep(rowKey: UInt32, column c: Int) -> Bool {
        CounterRandom.mix32(rowKey &+ UInt32(truncatingIfNeeded: c) &* Self.columnStride) >= threshold
    }
}
