import CKernelDispatch
/// Normal samples for parameter initialisation: a counter-based stream in which every
/// element is a pure function of `(key, index)`, eight pairs at a time in `SIMD8` lanes.
///
/// The stream, exactly:
///
/// - Elements come in blocks of 16. Element `i` is lane `l = i % 16` of block `b = i / 16`
///   and uses the pair `p = 8 * b + l % 8`: lanes 0-7 are `r * cos(theta)`, lanes 8-15
///   `r * sin(theta)` of the same eight pairs (the layout of PyTorch's CPU `normal_`).
/// - Pair `p` takes 64 random bits `z = mix(key + (p + 1) * gamma)`: output `p` of SplitMix64
///   seeded with `key` (Steele, Lea, Flood 2014; the generator of Java's SplittableRandom,
///   with the output function `CounterHash.mix64` uses), which passes TestU01's BigCrush.
///   Keys are hashed (the layer's `CounterRandom.streamKey`), so two streams overlap only if their keys
///   happen to differ by a small multiple of gamma: a 64-bit coincidence.
/// - Box-Muller: the high 31 bits `a` give `u1 = (a + 0.5) / 2^31` in `(0, 1]`, evaluated in
///   float (so `a` rounded to 24 significant bits: steps of 2^-24 near 1, exact near 0), and
///   the radius `r = std * sqrt(-2 ln u1)`, at most 6.66 std (where 32-bit uniforms end;
///   PyTorch's 24-bit ones end at 5.77). The low 32 bits `m` give `theta = 2 pi m / 2^32`,
///   reduced exactly with integer operations: three bits of octant, 29 within it.
///
/// Accuracy: each value is within 4.1 * 2^-24 * r of double-precision Box-Muller of the same
/// `u1` and `theta` (about 4 ulp at worst; 82 % are within an ulp), measured over 2^26 values.
///
/// Every step is `+`, `-`, `*`, `/`, square root, a conversion or an integer operation, in
/// a fixed order: IEEE defines each result exactly and Swift never fuses a multiply and an
/// add, so the baseline (SSE2) and x86-64-v3 (AVX2 + FMA) builds give the same bits. No libm:
/// glibc picks its `log`/`sin`/`cos` by CPU; `ln` and `sin`/`cos` are polynomials here.
///
/// Writes elements `begin ..< end` of the stream `key`: element `i` goes to
/// `out[i - begin]`, i.e. `out` points at element `begin`. Any split of a range into parts
/// gives the same values, so threads can fill parts of one table independently.
/// Optimised builds run the SIMD code, debug builds a scalar copy of it: the same bits.
func fillNormal(_ out: UnsafeMutablePointer<Float>, from begin: Int, to end: Int, std: Float, key: UInt64) {
    guard begin < end else { return }
    precondition(begin >= 0, "fillNormal: negative element index")
    #if DEBUG
    fillNormalScalar(out, from: begin, to: end, std: std, key: key)
    #else
    fillNormalEightPairs(out, from: begin, to: end, std: std, key: key)
    #endif
}

/// ``fillNormal(_:from:to:std:key:)`` eight pairs (16 elements) at a time in `SIMD8` lanes:
/// what optimised builds run.
func fillNormalEightPairs(_ out: UnsafeMutablePointer<Float>, from begin: Int, to end: Int, std: Float, key: UInt64) {
    guard begin < end else { return }
    let scale = SIMD8<Float>(repeating: std)
    var i = begin
    // A block the range does not cover whole (at its start or end) goes through a copy.
    func partial(_ i: Int) -> Int {
        let block = i >> 4
        let v = normalBlock(NormalFillConstants.state(key: key, block: block), std: scale)
        let all = SIMD16<Float>(lowHalf: v.0, highHalf: v.1)
        let stop = min(end, (block + 1) << 4)
        for j in i..<stop { out[j - begin] = all[j & 15] }
        return stop
    }
    if i & 15 != 0 { i = partial(i) }
    if end - i >= 16 {
        var state = NormalFillConstants.state(key: key, block: i >> 4)
        let step = SIMD8<UInt64>(repeating: 8 &* NormalFillConstants.gamma)
        var p = UnsafeMutableRawPointer(out + (i - begin))
        var blocks = (end - i) >> 4
        i += blocks << 4
        while blocks > 0 {
            let v = normalBlock(state, std: scale)
            p.storeBytes(of: v.0, as: SIMD8<Float>.self)
            (p + 32).storeBytes(of: v.1, as: SIMD8<Float>.self)
            state &+= step
            p += 64
            blocks -= 1
        }
    }
    if i < end { _ = partial(i) }
}

enum NormalFillConstants {
    /// SplitMix64's increment (2^64 / golden ratio).
    static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The SplitMix64 states of the eight pairs of `block`: `key + p * gamma`.
    @inline(__always)
    static func state(key: UInt64, block: Int) -> SIMD8<UInt64> {
        let p = SIMD8<UInt64>(repeating: UInt64(truncatingIfNeeded: block) &* 8) &+ SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7)
        return SIMD8<UInt64>(repeating: key) &+ p &* gamma
    }

    // ln(m) = 2 atanh(s), s = (m - 1) / (m + 1): 2s + s^3 (2/3 + s^2 (2/5 + s^2 (2/7 + s^2 2/9))).
    // |s| <= 0.1716 for m in [sqrt(1/2), sqrt(2)], so the first term left out, 2 s^11 / 11,
    // is below 1e-9 of ln(m).
    static let ln1: Float = 2.0 / 3.0
    static let ln2: Float = 2.0 / 5.0
    static let ln3: Float = 2.0 / 7.0
    static let ln4: Float = 2.0 / 9.0
    /// ln 2 split in two: `ln2High` has 16 significant bits, so `e * ln2High` is exact.
    static let ln2High: Float = 0.693_145_751_953_125
    static let ln2Low: Float = 1.428_606_765_330_187e-6

    // Taylor series on [0, pi/4]: the first terms left out (a^11 / 11!, a^12 / 12!) are
    // below 2e-9.
    static let sin1: Float = -1.0 / 6.0
    static let sin2: Float = 1.0 / 120.0
    static let sin3: Float = -1.0 / 5040.0
    static let sin4: Float = 1.0 / 362_880.0
    static let cos2: Float = 1.0 / 24.0
    static let cos3: Float = -1.0 / 720.0
    static let cos4: Float = 1.0 / 40320.0
    static let cos5: Float = -1.0 / 3_628_800.0
    /// Radians per unit of the 29-bit angle within an octant: (pi / 4) / 2^29.
    static let octantUnit: Float = Float(Double.pi / 4 / 536_870_912.0)
}

/// ``fillNormal(_:from:to:std:key:)`` in scalar code, a pair at a time: what debug builds
/// run (SwiftPM defines `DEBUG`). Unoptimised, the SIMD types' operations are generic loops
/// over their lanes: 0.8 µs a value, half a minute for a GPT-2 small table. The same
/// operations in the same order as the vector code, lane by lane, so the same bits
/// (`NormalFillTests` compares the two).
func fillNormalScalar(_ out: UnsafeMutablePointer<Float>, from begin: Int, to end: Int, std: Float, key: UInt64) {
    typealias K = NormalFillConstants
    guard begin < end else { return }
    for block in (begin >> 4)...((end - 1) >> 4) {
        for lane in 0..<8 {
            let cosIndex = block << 4 + lane, sinIndex = cosIndex + 8
            let cosWanted = cosIndex >= begin && cosIndex < end, sinWanted = sinIndex >= begin && sinIndex < end
            guard cosWanted || sinWanted else { continue }
            let pair = UInt64(truncatingIfNeeded: block) &* 8 &+ UInt64(truncatingIfNeeded: lane)
            var z = key &+ pair &* K.gamma &+ K.gamma
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let u1 = (Float(Int(z >> 33)) + 0.5) * 0x1p-31
            let r = abs(lnNormal(u1) * -2).squareRoot() * std
            let (c, s) = cosSinTurns(UInt32(truncatingIfNeeded: z))
            if cosWanted { out[cosIndex - begin] = r * c }
            if sinWanted { out[sinIndex - begin] = r * s }
        }
    }
}

/// Scalar ``lnNormal(_:)-(SIMD8<Float>)``: the same steps.
@inline(__always)
func lnNormal(_ x: Float) -> Float {
    typealias K = NormalFillConstants
    let t = Int32(bitPattern: x.bitPattern) &- 0x3F35_04F3
    let e = Float(Int(t >> 23))
    let m = Float(bitPattern: UInt32(bitPattern: (t & 0x007F_FFFF) &+ 0x3F35_04F3))
    let f = m - 1
    let s = f / (f + 2)
    let z = s * s
    let lnm = s * 2 + s * z * (K.ln1 + z * (K.ln2 + z * (K.ln3 + z * K.ln4)))
    return e * K.ln2High + (e * K.ln2Low + lnm)
}

/// Scalar ``cosSinTurns(_:)-(SIMD8<UInt32>)``: the same steps.
@inline(__always)
func cosSinTurns(_ m: UInt32) -> (Float, Float) {
    typealias K = NormalFillConstants
    let odd = m & 0x2000_0000 != 0
    let within = Int32(truncatingIfNeeded: m & 0x1FFF_FFFF)
    let a = Float(Int(odd ? 0x2000_0000 &- within : within)) * K.octantUnit
    let z = a * a
    let sinA = a + a * z * (K.sin1 + z * (K.sin2 + z * (K.sin3 + z * K.sin4)))
    let cosA = 1 - z * 0.5 + z * z * (K.cos2 + z * (K.cos3 + z * (K.cos4 + z * K.cos5)))
    let sinQ = odd ? cosA : sinA
    let cosQ = odd ? sinA : cosA
    let q = m >> 30
    let swap = q & 1 != 0
    let c = swap ? sinQ : cosQ
    let s = swap ? cosQ : sinQ
    let negC = (q &+ 1) & 2 != 0
    let negS = q & 2 != 0
    // 0 - x, not -x: the SIMD types negate that way, which gives +0 for a zero cos or sin.
    return (negC ? 0 - c : c, negS ? 0 - s : s)
}

/// The 16 outputs of the eight pairs whose SplitMix64 states are `state`: cosines, sines.
@inline(__always)
private func normalBlock(_ state: SIMD8<UInt64>, std: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
    // SplitMix64's output function of state + gamma (CounterHash.mix64 of `state`).
    var z = state &+ NormalFillConstants.gamma
    z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z &>> 31
    let words = unsafeBitCast(z, to: SIMD16<UInt32>.self)   // little-endian: even = low word
    let high = words.oddHalf, low = words.evenHalf
    // u1 = (a + 0.5) / 2^31 from the high 31 bits: in (0, 1], never 0.
    let a = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: high &>> 1))
    let u1 = (a + 0.5) * 0x1p-31
    let r = squareRootOfMagnitude(lnNormal(u1) * -2) * std
    let (c, s) = cosSinTurns(low)
    return (r * c, r * s)
}

/// `sqrt(|x|)` lane by lane. `SIMD.squareRoot()` is a loop of `Float.squareRoot()`, which
/// compiles to glibc's `sqrtf` behind a branch for negative input (errno), lane by lane;
/// with `abs` the compiler knows the input is not negative and emits one vector sqrt.
@inline(__always)
private func squareRootOfMagnitude(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var r = SIMD8<Float>()
    for i in 0..<8 { r[i] = abs(x[i]).squareRoot() }
    return r
}

/// ln(x) for positive normal finite `x`, within about 2 ulp.
@inline(__always)
func lnNormal(_ x: SIMD8<Float>) -> SIMD8<Float> {
    typealias K = NormalFillConstants
    // x = 2^e * m with m in [sqrt(1/2), sqrt(2)): subtracting the bits of sqrt(1/2) carries
    // into the exponent exactly when the mantissa is below sqrt(2)'s.
    let t = unsafeBitCast(x, to: SIMD8<Int32>.self) &- 0x3F35_04F3
    let e = SIMD8<Float>(t &>> 23)
    let m = unsafeBitCast((t & 0x007F_FFFF) &+ 0x3F35_04F3, to: SIMD8<Float>.self)
    let f = m - 1                       // exact
    let s = f / (f + 2)
    let z = s * s
    let lnm = s * 2 + s * z * (K.ln1 + z * (K.ln2 + z * (K.ln3 + z * K.ln4)))
    return e * K.ln2High + (e * K.ln2Low + lnm)
}

/// cos and sin of the angle `2 pi m / 2^32`, within about 1 ulp (of 1).
@inline(__always)
func cosSinTurns(_ m: SIMD8<UInt32>) -> (SIMD8<Float>, SIMD8<Float>) {
    typealias K = NormalFillConstants
    // The top three bits are the octant, the other 29 the angle within it. In an odd
    // octant the angle is measured back from the octant's end, so a is in [0, pi/4].
    // (Comparisons against whole vectors: the standard library has vector versions of
    // those only; a scalar operand compiles to a loop over the lanes.)
    let zero = SIMD8<UInt32>()
    let odd = (m & 0x2000_0000) .!= zero
    let within = SIMD8<Int32>(truncatingIfNeeded: m & 0x1FFF_FFFF)
    let a = SIMD8<Float>(within.replacing(with: 0x2000_0000 &- within, where: odd)) * K.octantUnit
    let z = a * a
    let sinA = a + a * z * (K.sin1 + z * (K.sin2 + z * (K.sin3 + z * K.sin4)))
    let cosA = 1 - z * 0.5 + z * z * (K.cos2 + z * (K.cos3 + z * (K.cos4 + z * K.cos5)))
    // Within the quadrant the angle is a (even octant) or pi/2 - a (odd octant).
    let sinQ = sinA.replacing(with: cosA, where: odd)
    let cosQ = cosA.replacing(with: sinA, where: odd)
    // Quadrant q turns (cos, sin) by q * 90 degrees: q = 1 gives (-sin, cos), q = 2
    // (-cos, -sin), q = 3 (sin, -cos).
    let q = m &>> 30
    let swap = (q & 1) .!= zero
    let c = cosQ.replacing(with: sinQ, where: swap)
    let s = sinQ.replacing(with: cosQ, where: swap)
    let negC = (q &+ 1) & 2 .!= zero     // q = 1, 2
    let negS = q & 2 .!= zero            // q = 2, 3
    return (c.replacing(with: -c, where: negC), s.replacing(with: -s, where: negS))   // -x is 0 - x
}

/// ``fillNormal(_:from:to:std:key:)`` into a table of `dtype` (`GPTE_DTYPE_*`): 16-bit tables
/// get the float32 samples rounded to nearest even, through a small buffer on the stack.
func fillNormal(_ out: UnsafeMutableRawPointer, dtype: Int32, from begin: Int, to end: Int, std: Float, key: UInt64) {
    guard dtype != Int32(GPTE_DTYPE_F32) else {
        fillNormal(out.assumingMemoryBound(to: Float.self), from: begin, to: end, std: std, key: key)
        return
    }
    let chunk = 1024
    withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { buf in
        guard let tmp = buf.baseAddress else { return }
        var i = begin
        while i < end {
            let n = min(chunk, end - i)
            fillNormal(tmp, from: i, to: i + n, std: std, key: key)
            convert(out + 2 * (i - begin), dtype, UnsafeRawPointer(tmp), Int32(GPTE_DTYPE_F32), n)
            i += n
        }
    }
}
