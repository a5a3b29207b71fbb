/// The hashes behind every random number of the layer: each value is a pure function of
/// (seed, stream, index), so results do not depend on thread count, call order or CPU
/// path, and backward regenerates the forward's dropout mask instead of storing it.
public enum CounterHash {
    /// SplitMix64's output function (Steele, Lea, Flood 2014): a 64-bit bijective mixer.
    @inline(__always)
    public static func mix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// MurmurHash3's 32-bit finaliser: cheap enough to run per element and vectorisable.
    @inline(__always)
    public static func mix32(_ x: UInt32) -> UInt32 {
        var h = x
        h ^= h >> 16
        h = h &* 0x85EB_CA6B
        h ^= h >> 13
        h = h &* 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    /// Consecutive columns' dropout hash inputs differ by this (the golden ratio in 32 bits).
    public static let columnStride: UInt32 = 0x9E37_79B9

    /// The dropout key of token row `row` in the step keyed `stepKey`.
    @inline(__always)
    public static func rowKey(stepKey: UInt64, row: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: mix64(stepKey &+ UInt64(bitPattern: Int64(row))))
    }

    /// Whether dropout keeps column `c` of the row keyed `rowKey`.
    @inline(__always)
    public static func keep(rowKey: UInt32, column c: Int, threshold: UInt32) -> Bool {
        mix32(rowKey &+ UInt32(truncatingIfNeeded: c) &* columnStride) >= threshold
    }
}
