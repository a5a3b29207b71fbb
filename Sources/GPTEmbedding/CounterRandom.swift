#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// Fills `out[0..<count]` with N(0, std) samples of stream `key`, where element `i` is
    /// a function of `(key, i)` only. Box-Muller in double precision; elements `2k` and
    /// `2k+1` share one pair of uniforms.
    static func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, std: Float, key: UInt64, pool: WorkerPool) {
        let pairs = (count + 1) / 2
        let s = Double(std)
        let o = SendablePointer(out)
        pool.parallelFor(count: pairs, grain: 4096) { _, range in
            for k in range {
                let a = mix64(key &+ UInt64(2 * k))
                let b = mix64(key &+ UInt64(2 * k + 1))
                let u1 = (Double(a >> 11) + 0.5) * 0x1p-53   // (0, 1): log is finite
                let u2 = Double(b >> 11) * 0x1p-53
                let r = (-2 * log(u1)).squareRoot()
                let theta = 2 * Double.pi * u2
                o.pointer[2 * k] = Float(s * r * cos(theta))
                if 2 * k + 1 < count { o.pointer[2 * k + 1] = Float(s * r * sin(theta)) }
            }
        }
    }
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
