/// Conversions between float32 and the two 16-bit formats, eight lanes at a time, in integer
/// arithmetic (the x86-64-v3 kernels use F16C's conversions wherever those give the same
/// bits): exact, the same bits on every CPU path, and immune to a caller's flush-to-zero or
/// denormals-are-zero mode (no float arithmetic ever sees a subnormal).
///
/// - bf16 -> f32: exact (the 16 bits become the high half of the float).
/// - f16 -> f32: exact, subnormals, infinities and NaN payloads included.
/// - f32 -> bf16: round to nearest, ties to even; NaN becomes 0x7FC0, as PyTorch's
///   `c10::BFloat16` does.
/// - f32 -> f16: round to nearest, ties to even, overflow to infinity, subnormal results;
///   NaN becomes a quiet NaN with its sign (0x7E00 | sign), as PyTorch's
///   `fp16_ieee_from_fp32_value` does.

import CMemoryHints

typealias U32x8 = SIMD8<UInt32>
typealias U16x8 = SIMD8<UInt16>

// Lane-by-lane forms of three standard-library operations (`init(truncatingIfNeeded:)`
// between vector types, `any(_:)`, `clamped`): the library's are generic specialisations
// that the compiler emits as shared (linkonce) functions, which the linker would merge
// between the baseline and the x86-64-v3 copies of this module (Tests/isa/check_isa.py
// fails on any such symbol). Written per lane, LLVM still makes one vector instruction.

/// Each lane zero-extended.
@inline(__always)
func widen(_ h: U16x8) -> U32x8 {
    U32x8(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]), UInt32(h[4]), UInt32(h[5]), UInt32(h[6]), UInt32(h[7]))
}

/// Each lane's low 16 bits.
@inline(__always)
func narrow(_ u: U32x8) -> U16x8 {
    U16x8(UInt16(truncatingIfNeeded: u[0]), UInt16(truncatingIfNeeded: u[1]), UInt16(truncatingIfNeeded: u[2]),
          UInt16(truncatingIfNeeded: u[3]), UInt16(truncatingIfNeeded: u[4]), UInt16(truncatingIfNeeded: u[5]),
          UInt16(truncatingIfNeeded: u[6]), UInt16(truncatingIfNeeded: u[7]))
}

/// Whether any lane is set.
@inline(__always)
func anyLane(_ m: SIMDMask<SIMD8<Int32>>) -> Bool {
    let v = unsafeBitCast(m, to: SIMD8<Int32>.self)
    return (v[0] | v[1] | v[2] | v[3] | v[4] | v[5] | v[6] | v[7]) != 0
}

/// Whether any lane is set.
@inline(__always)
func anyLane(_ m: SIMDMask<SIMD8<Int16>>) -> Bool {
    let v = unsafeBitCast(m, to: SIMD8<Int16>.self)
    return (v[0] | v[1] | v[2] | v[3] | v[4] | v[5] | v[6] | v[7]) != 0
}

/// A vector of `x` in every lane. Comparisons and replacements below always take vectors:
/// the standard library's vector-with-scalar forms compile to a loop over the lanes.
@inline(__always)
func splat(_ x: UInt32) -> U32x8 { U32x8(repeating: x) }

/// Eight bf16 values (their bits) as floats.
@inline(__always)
func widenBF16(_ h: U16x8) -> Vec {
    unsafeBitCast(widen(h) &<< 16, to: Vec.self)
}

/// Eight f16 values (their bits) as floats. The x86-64-v3 kernels convert with F16C's
/// `vcvtph2ps` (measured 3x faster for f16 tables) unless a lane is a NaN (F16C quiets a
/// signalling one) or a subnormal: those vectors take the integer path, so both CPU paths
/// give the same bits whatever the calling thread's MXCSR says. (The hardware ignores
/// MXCSR.DAZ in `vcvtph2ps`, per Intel's SDM and on this project's AMD host, but QEMU's
/// `-cpu Haswell` flushes subnormals to zero under DAZ.) See ``widenF16WithoutDAZ(_:)``.
@inline(__always)
func widenF16(_ h: U16x8) -> Vec {
    #if GPTE_KERNELS_X86_64_V3
    let m = unsafeBitCast(h, to: SIMD8<Int16>.self) & SIMD8<Int16>(repeating: 0x7FFF)
    let special = (m .> SIMD8<Int16>(repeating: 0x7C00)) .| ((m .> SIMD8<Int16>()) .& (m .< SIMD8<Int16>(repeating: 0x0400)))
    if !anyLane(special) { return gpte_f16c_widen(h) }
    #endif
    return widenF16Integer(h)
}

/// ``widenF16(_:)`` for a thread whose MXCSR.DAZ is clear (``daz()`` is false), where
/// `vcvtph2ps` converts subnormals exactly on hardware and emulators alike: only NaNs
/// take the integer path. The test for subnormals cost a third of the f16-table layer-norm
/// backward's row pass (and 2 % of a 0.02-std table's vectors are subnormal somewhere).
@inline(__always)
func widenF16WithoutDAZ(_ h: U16x8) -> Vec {
    #if GPTE_KERNELS_X86_64_V3
    let m = unsafeBitCast(h, to: SIMD8<Int16>.self) & SIMD8<Int16>(repeating: 0x7FFF)
    if !anyLane(m .> SIMD8<Int16>(repeating: 0x7C00)) { return gpte_f16c_widen(h) }
    #endif
    return widenF16Integer(h)
}

/// Whether the calling thread's MXCSR has denormals-are-zero set (a caller's choice, e.g.
/// `torch.set_flush_denormal(True)`; the kernels run on the thread that calls them).
@inline(__always)
func daz() -> Bool { gpte_denormals_are_zero() != 0 }

#if GPTE_KERNELS_X86_64_V3
/// The x86-64-v3 narrowing's detour for the rare vector F16C does not round as this library
/// does, out of line: inlined, the integer path made ``narrowF16(_:)`` so large that the
/// compiler called it instead of inlining it (64 call sites, every vector of a row paying a
/// call). (Widening stays inline: there a call on the rare path, with every vector register
/// it clobbers, made the f16 layer-norm backward 12-15 % slower.)
@inline(never)
func narrowF16Rare(_ v: Vec) -> U16x8 { narrowF16Integer(v) }
#endif

/// ``widenF16(_:)`` in integer arithmetic.
@inline(__always)
func widenF16Integer(_ h16: U16x8) -> Vec {
    let h = widen(h16)
    let sign = (h & splat(0x8000)) &<< 16
    let e = (h &>> 10) & splat(0x1F)
    let m = h & splat(0x3FF)
    // Normal: rebias the exponent (15 -> 127). Inf/NaN: exponent all ones, payload kept.
    var bits = ((e &+ splat(112)) &<< 23) | (m &<< 13)
    bits.replace(with: splat(0x7F80_0000) | (m &<< 13), where: e .== splat(0x1F))
    // Zero and subnormal (e == 0): m * 2^-24 = 2^(p-24) * (m / 2^p) with p the top bit of
    // m; normalised by counting the shift in integers. Rare, so behind a branch.
    let low = e .== splat(0)
    if anyLane(low) {
        let sub = low .& (m .!= splat(0))
        var mm = m, exp = splat(113)  // the exponent field of 2^-14
        for _ in 0..<10 {
            let small = sub .& ((mm & splat(0x400)) .== splat(0))
            mm.replace(with: mm &<< 1, where: small)
            exp.replace(with: exp &- splat(1), where: small)
        }
        bits.replace(with: (exp &<< 23) | ((mm & splat(0x3FF)) &<< 13), where: sub)
        bits.replace(with: splat(0), where: low .& (m .== splat(0)))
    }
    return unsafeBitCast(bits | sign, to: Vec.self)
}

typealias U16x16 = SIMD16<UInt16>

/// Eight floats rounded to bf16, each lane's bits in its low 16 bits.
@inline(__always)
func roundedBF16(_ v: Vec) -> U32x8 {
    let u = unsafeBitCast(v, to: U32x8.self)
    var r = (u &+ splat(0x7FFF) &+ ((u &>> 16) & splat(1))) &>> 16
    r.replace(with: splat(0x7FC0), where: (u & splat(0x7FFF_FFFF)) .> splat(0x7F80_0000))
    return r
}

/// Eight floats rounded to bf16 bits.
@inline(__always)
func narrowBF16(_ v: Vec) -> U16x8 { narrow(roundedBF16(v)) }

/// Sixteen floats (`a`'s eight, then `b`'s) rounded to bf16 bits. The x86-64-v3 kernels
/// pack the two halves with one `vpackusdw` and a `vpermq` where two separate narrowings
/// take two extracts and two packs (the same bits).
@inline(__always)
func narrowBF16(_ a: Vec, _ b: Vec) -> U16x16 {
    #if GPTE_KERNELS_X86_64_V3
    return gpte_avx2_pack16(roundedBF16(a), roundedBF16(b))
    #else
    return U16x16(lowHalf: narrowBF16(a), highHalf: narrowBF16(b))
    #endif
}

/// Sixteen floats (`a`'s eight, then `b`'s) rounded to f16 bits.
@inline(__always)
func narrowF16(_ a: Vec, _ b: Vec) -> U16x16 { U16x16(lowHalf: narrowF16(a), highHalf: narrowF16(b)) }

/// ``narrowF16(_:_:)`` on a thread whose MXCSR.FTZ is clear (``narrowF16WithoutFTZ(_:)``).
@inline(__always)
func narrowF16WithoutFTZ(_ a: Vec, _ b: Vec) -> U16x16 {
    U16x16(lowHalf: narrowF16WithoutFTZ(a), highHalf: narrowF16WithoutFTZ(b))
}

/// Eight floats rounded to f16 bits. The x86-64-v3 kernels round with F16C's `vcvtps2ph`
/// (nearest even) unless a lane is a NaN (F16C keeps part of its payload; PyTorch, and this
/// library, give 0x7E00 | sign) or rounds to an f16 subnormal: those vectors take the
/// integer path, so both CPU paths give the same bits. The hardware ignores MXCSR.FTZ here
/// (Intel SDM, VCVTPS2PH), but QEMU's `-cpu Haswell` flushes such results under FTZ
/// (Tests/c/test_precision.c's DAZ + FTZ run failed there), and x86 code also runs on
/// emulators and translators: for the rare subnormal result the integer path is kept.
@inline(__always)
func narrowF16(_ v: Vec) -> U16x8 {
    #if GPTE_KERNELS_X86_64_V3
    let a = unsafeBitCast(v, to: SIMD8<Int32>.self) & SIMD8<Int32>(repeating: 0x7FFF_FFFF)
    let special = (a .> SIMD8<Int32>(repeating: 0x7F80_0000))
        .| ((a .> SIMD8<Int32>()) .& (a .< SIMD8<Int32>(repeating: 0x3880_0000)))
    if !anyLane(special) { return gpte_f16c_narrow(v) }
    return narrowF16Rare(v)
    #else
    return narrowF16Integer(v)
    #endif
}

/// ``narrowF16(_:)`` for a thread whose MXCSR.FTZ is clear (``ftz()`` is false), where
/// `vcvtps2ph` rounds into f16's subnormal range correctly on hardware and emulators alike:
/// only NaNs take the integer path.
@inline(__always)
func narrowF16WithoutFTZ(_ v: Vec) -> U16x8 {
    #if GPTE_KERNELS_X86_64_V3
    let a = unsafeBitCast(v, to: SIMD8<Int32>.self) & SIMD8<Int32>(repeating: 0x7FFF_FFFF)
    if !anyLane(a .> SIMD8<Int32>(repeating: 0x7F80_0000)) { return gpte_f16c_narrow(v) }
    return narrowF16Rare(v)
    #else
    return narrowF16Integer(v)
    #endif
}

/// Whether the calling thread's MXCSR has flush-to-zero set.
@inline(__always)
func ftz() -> Bool { gpte_flush_to_zero() != 0 }

/// ``narrowF16(_:)`` in integer arithmetic.
@inline(__always)
func narrowF16Integer(_ v: Vec) -> U16x8 {
    let u = unsafeBitCast(v, to: U32x8.self)
    let sign = (u &>> 16) & splat(0x8000)
    let a = u & splat(0x7FFF_FFFF)
    // Normal results (|v| >= 2^-14): drop 13 mantissa bits with round-to-nearest-even, then
    // rebias the exponent; a carry out of the mantissa rounds up into the exponent.
    var r = ((a &+ splat(0xFFF) &+ ((a &>> 13) & splat(1))) &>> 13) &- splat(112 << 10)
    // Subnormal results (|v| < 2^-14): the mantissa with its implicit bit, shifted right by
    // 126 - exponent (14 ... 25 places), rounded to nearest-even. Rare: behind a branch.
    let sub = a .< splat(0x3880_0000)
    if anyLane(sub) {
        let e = a &>> 23
        let m = (a & splat(0x7F_FFFF)) | splat(0x80_0000)
        var shift = splat(126) &- e  // wraps for large exponents: those lanes clamp to 25
        shift.replace(with: splat(25), where: shift .> splat(25))
        shift.replace(with: splat(14), where: shift .< splat(14))
        let kept = m &>> shift
        let rest = m & ((splat(1) &<< shift) &- splat(1))
        let half = splat(1) &<< (shift &- splat(1))
        let up = (rest .> half) .| ((rest .== half) .& ((kept & splat(1)) .== splat(1)))
        var s = kept
        s.replace(with: kept &+ splat(1), where: up)
        r.replace(with: s, where: sub)
    }
    r.replace(with: splat(0x7C00), where: a .>= splat(0x477F_F000))   // 65520 and beyond round to infinity
    r.replace(with: splat(0x7E00), where: a .> splat(0x7F80_0000))    // NaN
    return narrow(r | sign)
}

/// Scalar forms, for tail elements: the same code on one lane.
@inline(__always) func widenBF16(_ h: UInt16) -> Float { widenBF16(U16x8(repeating: h))[0] }
@inline(__always) func widenF16(_ h: UInt16) -> Float { widenF16(U16x8(repeating: h))[0] }
@inline(__always) func narrowBF16(_ f: Float) -> UInt16 { narrowBF16(Vec(repeating: f))[0] }
@inline(__always) func narrowF16(_ f: Float) -> UInt16 { narrowF16(Vec(repeating: f))[0] }
