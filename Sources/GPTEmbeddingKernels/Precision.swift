/// Conversions between float32 and the two 16-bit formats, eight lanes at a time, in integer
/// arithmetic only: exact, the same bits on every CPU path, and immune to a caller's
/// flush-to-zero or denormals-are-zero mode (no float operation ever sees a subnormal).
///
/// - bf16 -> f32: exact (the 16 bits become the high half of the float).
/// - f16 -> f32: exact, subnormals, infinities and NaN payloads included.
/// - f32 -> bf16: round to nearest, ties to even; NaN becomes 0x7FC0, as PyTorch's
///   `c10::BFloat16` does.
/// - f32 -> f16: round to nearest, ties to even, overflow to infinity, subnormal results;
///   NaN becomes a quiet NaN with its sign (0x7E00 | sign), as PyTorch's
///   `fp16_ieee_from_fp32_value` does.

typealias U32x8 = SIMD8<UInt32>
typealias U16x8 = SIMD8<UInt16>

/// Eight bf16 values (their bits) as floats.
@inline(__always)
func widenBF16(_ h: U16x8) -> Vec {
    unsafeBitCast(U32x8(truncatingIfNeeded: h) &<< 16, to: Vec.self)
}

/// Eight f16 values (their bits) as floats.
@inline(__always)
func widenF16(_ h16: U16x8) -> Vec {
    let h = U32x8(truncatingIfNeeded: h16)
    let sign = (h & 0x8000) &<< 16
    let e = (h &>> 10) & 0x1F
    let m = h & 0x3FF
    // Normal: rebias the exponent (15 -> 127). Inf/NaN: exponent all ones, payload kept.
    var bits = ((e &+ 112) &<< 23) | (m &<< 13)
    bits.replace(with: 0x7F80_0000 | (m &<< 13), where: e .== 0x1F)
    // Subnormal (e == 0, m != 0): m * 2^-24 = 2^(p-24) * (m / 2^p) with p the top bit of m;
    // normalise by counting the shift in integers.
    let sub = (e .== 0) .& (m .!= 0)
    if any(sub) {
        var mm = m, exp = U32x8(repeating: 113)  // the exponent field of 2^-14
        for _ in 0..<10 {
            let small = sub .& ((mm & 0x400) .== 0)
            mm.replace(with: mm &<< 1, where: small)
            exp.replace(with: exp &- 1, where: small)
        }
        bits.replace(with: (exp &<< 23) | ((mm & 0x3FF) &<< 13), where: sub)
    }
    bits.replace(with: 0, where: (e .== 0) .& (m .== 0))
    return unsafeBitCast(bits | sign, to: Vec.self)
}

/// Eight floats rounded to bf16 bits.
@inline(__always)
func narrowBF16(_ v: Vec) -> U16x8 {
    let u = unsafeBitCast(v, to: U32x8.self)
    var r = (u &+ 0x7FFF &+ ((u &>> 16) & 1)) &>> 16
    r.replace(with: 0x7FC0, where: (u & 0x7FFF_FFFF) .> 0x7F80_0000)
    return U16x8(truncatingIfNeeded: r)
}

/// Eight floats rounded to f16 bits.
@inline(__always)
func narrowF16(_ v: Vec) -> U16x8 {
    let u = unsafeBitCast(v, to: U32x8.self)
    let sign = (u &>> 16) & 0x8000
    let a = u & 0x7FFF_FFFF
    // Normal results (|v| >= 2^-14): drop 13 mantissa bits with round-to-nearest-even, then
    // rebias the exponent; a carry out of the mantissa rounds up into the exponent.
    var r = (a &+ 0xFFF &+ ((a &>> 13) & 1)) &>> 13 &- (112 &<< 10)
    // Subnormal results (2^-25 < |v| < 2^-14): the mantissa with its implicit bit, shifted
    // right by 126 - exponent (14 ... 24 places), rounded to nearest-even.
    let sub = a .< 0x3880_0000
    if any(sub) {
        let e = a &>> 23
        let m = (a & 0x7F_FFFF) | 0x80_0000
        let shift = (U32x8(repeating: 126) &- e).clamped(lowerBound: U32x8(repeating: 14), upperBound: U32x8(repeating: 25))
        let kept = m &>> shift
        let rest = m & ((U32x8(repeating: 1) &<< shift) &- 1)
        let half = U32x8(repeating: 1) &<< (shift &- 1)
        let up = (rest .> half) .| ((rest .== half) .& ((kept & 1) .== 1))
        var s = kept
        s.replace(with: kept &+ 1, where: up)
        r.replace(with: s, where: sub)
    }
    r.replace(with: 0x7C00, where: a .>= 0x477F_F000)   // 65520 and beyond round to infinity
    r.replace(with: 0x7E00, where: a .> 0x7F80_0000)    // NaN
    return U16x8(truncatingIfNeeded: r | sign)
}

/// Scalar forms, for tail elements: the same code on one lane.
@inline(__always) func widenBF16(_ h: UInt16) -> Float { widenBF16(U16x8(repeating: h))[0] }
@inline(__always) func widenF16(_ h: UInt16) -> Float { widenF16(U16x8(repeating: h))[0] }
@inline(__always) func narrowBF16(_ f: Float) -> UInt16 { narrowBF16(Vec(repeating: f))[0] }
@inline(__always) func narrowF16(_ f: Float) -> UInt16 { narrowF16(Vec(repeating: f))[0] }
