import CKernelDispatch

/// Rows of ggml's block formats dequantized to float32, bit for bit as ggml's
/// `dequantize_row_*` (formulas: ../shared/research/gguf-quantized-tables.md §2.2; written
/// from that description, no ggml code copied). Every product here is exact in float32 (an
/// fp16 scale has 11 significant bits, sub-scales at most 8, quants at most 7: at most 24
/// bits in all), so only the final `+ m` / `- dmin * mn` of Q4_1, Q5_1, Q2_K, Q4_K and Q5_K
/// rounds, once, in float32. The expressions keep ggml's structure, `(d * sc) * q - (dmin * m)`,
/// as separate operations: Swift never contracts them into a fused multiply-add, and with
/// exact products a fused form would give the same bits anyway.
///
/// fp16 scales are widened exactly with the integer-only ``widenF16(_:)-(UInt16)``.
/// Blocks are read byte by byte (their fields sit at any alignment).

/// Decodes the `cols` elements of one row of `type` (a `GPTE_GGML_*` id) at `row` into
/// `dst`; returns false, writing nothing, for a type it does not decode or a `cols` that is
/// not a whole number of blocks.
func dequantizeRow(_ type: Int32, _ row: UnsafeRawPointer, _ cols: Int, _ dst: UnsafeMutablePointer<Float>) -> Bool {
    switch type {
    case Int32(GPTE_GGML_Q4_0): return blocks(row, cols, dst, 32, 18, q4_0)
    case Int32(GPTE_GGML_Q4_1): return blocks(row, cols, dst, 32, 20, q4_1)
    case Int32(GPTE_GGML_Q5_0): return blocks(row, cols, dst, 32, 22, q5_0)
    case Int32(GPTE_GGML_Q5_1): return blocks(row, cols, dst, 32, 24, q5_1)
    case Int32(GPTE_GGML_Q8_0): return blocks(row, cols, dst, 32, 34, q8_0)
    case Int32(GPTE_GGML_IQ4_NL): return blocks(row, cols, dst, 32, 18, iq4_nl)
    case Int32(GPTE_GGML_Q2_K): return blocks(row, cols, dst, 256, 84, q2_k)
    case Int32(GPTE_GGML_Q3_K): return blocks(row, cols, dst, 256, 110, q3_k)
    case Int32(GPTE_GGML_Q4_K): return blocks(row, cols, dst, 256, 144, q4_k)
    case Int32(GPTE_GGML_Q5_K): return blocks(row, cols, dst, 256, 176, q5_k)
    case Int32(GPTE_GGML_Q6_K): return blocks(row, cols, dst, 256, 210, q6_k)
    case Int32(GPTE_GGML_IQ4_XS): return blocks(row, cols, dst, 256, 136, iq4_xs)
    default: return false
    }
}

/// Bytes of a row of `cols` elements of `type` (a `GPTE_GGML_*` id), or 0 for a type
/// ``dequantizeRow(_:_:_:_:)`` does not decode.
@inline(__always)
func ggmlRowBytes(_ type: Int32, _ cols: Int) -> Int {
    switch type {
    case Int32(GPTE_GGML_Q4_0), Int32(GPTE_GGML_IQ4_NL): return cols / 32 * 18
    case Int32(GPTE_GGML_Q4_1): return cols / 32 * 20
    case Int32(GPTE_GGML_Q5_0): return cols / 32 * 22
    case Int32(GPTE_GGML_Q5_1): return cols / 32 * 24
    case Int32(GPTE_GGML_Q8_0): return cols / 32 * 34
    case Int32(GPTE_GGML_Q2_K): return cols / 256 * 84
    case Int32(GPTE_GGML_Q3_K): return cols / 256 * 110
    case Int32(GPTE_GGML_Q4_K): return cols / 256 * 144
    case Int32(GPTE_GGML_Q5_K): return cols / 256 * 176
    case Int32(GPTE_GGML_Q6_K): return cols / 256 * 210
    case Int32(GPTE_GGML_IQ4_XS): return cols / 256 * 136
    default: return 0
    }
}

@inline(__always)
private func blocks(_ row: UnsafeRawPointer, _ cols: Int, _ dst: UnsafeMutablePointer<Float>, _ size: Int, _ bytes: Int,
                    _ block: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void) -> Bool {
    guard cols >= 0, cols % size == 0 else { return false }
    var i = 0
    while i < cols / size {
        block(row + i * bytes, dst + i * size)
        i += 1
    }
    return true
}

@inline(__always) private func u8(_ p: UnsafeRawPointer, _ i: Int) -> UInt8 { p.load(fromByteOffset: i, as: UInt8.self) }
@inline(__always) private func i8(_ p: UnsafeRawPointer, _ i: Int) -> Int32 { Int32(Int8(bitPattern: u8(p, i))) }
/// The fp16 at byte `i` (little-endian), widened exactly.
@inline(__always) private func f16(_ p: UnsafeRawPointer, _ i: Int) -> Float {
    widenF16(UInt16(u8(p, i)) | UInt16(u8(p, i + 1)) << 8)
}
@inline(__always) private func f(_ x: Int32) -> Float { Float(x) }

// MARK: - 32-element blocks

/// d, qs[16]: y = (q - 8) * d.
@inline(__always)
private func q4_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0)
    for j in 0..<16 {
        let x = Int32(u8(b, 2 + j))
        y[j] = f((x & 0xF) - 8) * d
        y[j + 16] = f((x >> 4) - 8) * d
    }
}

/// d, m, qs[16]: y = q * d + m.
@inline(__always)
private func q4_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0), m = f16(b, 2)
    for j in 0..<16 {
        let x = Int32(u8(b, 4 + j))
        y[j] = f(x & 0xF) * d + m
        y[j + 16] = f(x >> 4) * d + m
    }
}

/// The little-endian u32 at byte `i`.
@inline(__always) private func u32(_ p: UnsafeRawPointer, _ i: Int) -> UInt32 {
    UInt32(u8(p, i)) | UInt32(u8(p, i + 1)) << 8 | UInt32(u8(p, i + 2)) << 16 | UInt32(u8(p, i + 3)) << 24
}

/// d, qh (u32), qs[16]: y = ((nibble | bit << 4) - 16) * d.
@inline(__always)
private func q5_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0)
    let qh = u32(b, 2)
    for j in 0..<16 {
        let x = Int32(u8(b, 6 + j))
        let h0 = Int32(truncatingIfNeeded: (qh >> UInt32(j)) & 1) << 4
        let h1 = Int32(truncatingIfNeeded: (qh >> UInt32(j + 16)) & 1) << 4
        y[j] = f(((x & 0xF) | h0) - 16) * d
        y[j + 16] = f(((x >> 4) | h1) - 16) * d
    }
}

/// d, m, qh (u32), qs[16]: y = (nibble | bit << 4) * d + m.
@inline(__always)
private func q5_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0), m = f16(b, 2)
    let qh = u32(b, 4)
    for j in 0..<16 {
        let x = Int32(u8(b, 8 + j))
        let h0 = Int32(truncatingIfNeeded: (qh >> UInt32(j)) & 1) << 4
        let h1 = Int32(truncatingIfNeeded: (qh >> UInt32(j + 16)) & 1) << 4
        y[j] = f((x & 0xF) | h0) * d + m
        y[j + 16] = f((x >> 4) | h1) * d + m
    }
}

// Eight lanes at a time: the same products and the same one rounding per element as the
// scalar forms (each lane computes exactly what the scalar loop computes). Lanes are
// converted one by one (no generic standard-library conversion: see Precision.swift);
// LLVM still emits vector instructions.

/// The eight bytes at `i` as floats, unsigned.
@inline(__always)
private func u8x8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<UInt8> { p.loadUnaligned(fromByteOffset: i, as: SIMD8<UInt8>.self) }

@inline(__always)
private func floats(_ v: SIMD8<UInt8>) -> Vec {
    Vec(Float(Int32(v[0])), Float(Int32(v[1])), Float(Int32(v[2])), Float(Int32(v[3])),
        Float(Int32(v[4])), Float(Int32(v[5])), Float(Int32(v[6])), Float(Int32(v[7])))
}

@inline(__always)
private func floats(_ v: SIMD8<Int8>) -> Vec {
    Vec(Float(Int32(v[0])), Float(Int32(v[1])), Float(Int32(v[2])), Float(Int32(v[3])),
        Float(Int32(v[4])), Float(Int32(v[5])), Float(Int32(v[6])), Float(Int32(v[7])))
}

/// d, qs: int8[32]: y = q * d.
@inline(__always)
private func q8_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = Vec(repeating: f16(b, 0))
    for g in 0..<4 {
        let q = unsafeBitCast(u8x8(b, 2 + 8 * g), to: SIMD8<Int8>.self)
        store(floats(q) * d, y + 8 * g)
    }
}

/// ggml's non-linear 4-bit table of IQ4_NL and IQ4_XS (`kvalues_iq4nl`). A switch, which
/// LLVM turns into a constant table: no generic standard-library code (a shared
/// specialisation could be merged between the two kernel modules; Tests/isa/check_isa.py).
@inline(__always)
private func iq4Value(_ i: Int32) -> Float {
    switch i & 0xF {
    case 0: -127
    case 1: -104
    case 2: -83
    case 3: -65
    case 4: -49
    case 5: -35
    case 6: -22
    case 7: -10
    case 8: 1
    case 9: 13
    case 10: 25
    case 11: 38
    case 12: 53
    case 13: 69
    case 14: 89
    default: 113
    }
}

/// d, qs[16]: y = d * table[nibble].
@inline(__always)
private func iq4_nl(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0)
    for j in 0..<16 {
        let x = Int32(u8(b, 2 + j))
        y[j] = d * iq4Value(x & 0xF)
        y[j + 16] = d * iq4Value(x >> 4)
    }
}

// MARK: - 256-element super-blocks

/// scales[16] (scale low nibble, min high nibble), qs[64], d, dmin:
/// y = (d * sc) * q2 - (dmin * mn).
@inline(__always)
private func q2_k(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 80), dmin = f16(b, 82)
    for h in 0..<2 {
        for j in 0..<4 {
            let shift = Int32(2 * j)
            for g in 0..<2 {
                let sc = Int32(u8(b, 8 * h + 2 * j + g))
                let dl = d * f(sc & 0xF), ml = dmin * f(sc >> 4)
                let out = y + 128 * h + 32 * j + 16 * g
                for l in 0..<16 {
                    let q = (Int32(u8(b, 16 + 32 * h + 16 * g + l)) >> shift) & 3
                    out[l] = dl * f(q) - ml
                }
            }
        }
    }
}

/// hmask[32], qs[64], scales[12] (sixteen 6-bit values, biased by 32), d:
/// y = (d * (s - 32)) * (q2 - (hmask bit ? 0 : 4)).
@inline(__always)
private func q3_k(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 108)
    for h in 0..<2 {
        for j in 0..<4 {
            let shift = Int32(2 * j)
            let bit = UInt8(1) << UInt8(4 * h + j)
            for g in 0..<2 {
                let k = 8 * h + 2 * j + g
                let low = k < 8 ? Int32(u8(b, 96 + k)) & 0xF : Int32(u8(b, 96 + k - 8)) >> 4
                let high = (Int32(u8(b, 96 + 8 + k % 4)) >> Int32(2 * (k / 4))) & 3
                let dl = d * f((low | high << 4) - 32)
                let out = y + 128 * h + 32 * j + 16 * g
                for l in 0..<16 {
                    let q = (Int32(u8(b, 32 + 32 * h + 16 * g + l)) >> shift) & 3
                    let minus: Int32 = u8(b, 16 * g + l) & bit != 0 ? 0 : 4
                    out[l] = dl * f(q - minus)
                }
            }
        }
    }
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K / Q5_K block (12 bytes at `s`).
@inline(__always)
private func scaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (Int32, Int32) {
    if j < 4 { return (Int32(u8(s, j)) & 63, Int32(u8(s, j + 4)) & 63) }
    let sc = (Int32(u8(s, j + 4)) & 0xF) | ((Int32(u8(s, j - 4)) >> 6) << 4)
    let mn = (Int32(u8(s, j + 4)) >> 4) | ((Int32(u8(s, j)) >> 6) << 4)
    return (sc, mn)
}

/// d, dmin, scales[12], qs[128]: y = (d * sc) * nibble - (dmin * mn).
@inline(__always)
private func q4_k(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0), dmin = f16(b, 2)
    for c in 0..<4 {
        let (s1, m1) = scaleMin(b + 4, 2 * c), (s2, m2) = scaleMin(b + 4, 2 * c + 1)
        let d1 = Vec(repeating: d * f(s1)), n1 = Vec(repeating: dmin * f(m1))
        let d2 = Vec(repeating: d * f(s2)), n2 = Vec(repeating: dmin * f(m2))
        let out = y + 64 * c
        let low = SIMD8<UInt8>(repeating: 0xF), four = SIMD8<UInt8>(repeating: 4)
        for g in 0..<4 {
            let x = u8x8(b, 16 + 32 * c + 8 * g)
            store(d1 * floats(x & low) - n1, out + 8 * g)
            store(d2 * floats(x &>> four) - n2, out + 32 + 8 * g)
        }
    }
}

/// d, dmin, scales[12], qh[32], qs[128]: y = (d * sc) * (nibble + 16 * bit) - (dmin * mn).
@inline(__always)
private func q5_k(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0), dmin = f16(b, 2)
    for c in 0..<4 {
        let (s1, m1) = scaleMin(b + 4, 2 * c), (s2, m2) = scaleMin(b + 4, 2 * c + 1)
        let d1 = d * f(s1), n1 = dmin * f(m1), d2 = d * f(s2), n2 = dmin * f(m2)
        let out = y + 64 * c
        for l in 0..<32 {
            let x = Int32(u8(b, 48 + 32 * c + l))
            let hb = Int32(u8(b, 16 + l)) >> Int32(2 * c)
            out[l] = d1 * f((x & 0xF) + ((hb & 1) << 4)) - n1
            out[l + 32] = d2 * f((x >> 4) + ((hb & 2) << 3)) - n2
        }
    }
}

/// ql[128], qh[64], scales: int8[16], d: y = (d * sc) * (q6 - 32).
@inline(__always)
private func q6_k(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 208)
    for h in 0..<2 {
        let ql = 64 * h, qh = 128 + 32 * h, sc = 192 + 8 * h
        let out = y + 128 * h
        let bias = Vec(repeating: 32)
        for g in 0..<4 {
            let l = 8 * g, s = l / 16
            let a = u8x8(b, ql + l), c = u8x8(b, ql + l + 32), hh = u8x8(b, qh + l)
            let three = SIMD8<UInt8>(repeating: 3), low = SIMD8<UInt8>(repeating: 0xF)
            let two = SIMD8<UInt8>(repeating: 2), four = SIMD8<UInt8>(repeating: 4), six = SIMD8<UInt8>(repeating: 6)
            // q - 32 is exact in float32 either way: subtract after converting.
            let q1 = floats((a & low) | ((hh & three) &<< four)) - bias
            let q2 = floats((c & low) | (((hh &>> two) & three) &<< four)) - bias
            let q3 = floats((a &>> four) | (((hh &>> four) & three) &<< four)) - bias
            let q4 = floats((c &>> four) | (((hh &>> six) & three) &<< four)) - bias
            store(Vec(repeating: d * f(i8(b, sc + s))) * q1, out + l)
            store(Vec(repeating: d * f(i8(b, sc + s + 2))) * q2, out + l + 32)
            store(Vec(repeating: d * f(i8(b, sc + s + 4))) * q3, out + l + 64)
            store(Vec(repeating: d * f(i8(b, sc + s + 6))) * q4, out + l + 96)
        }
    }
}

/// d, scales_h (u16), scales_l[4], qs[128]: y = (d * (ls - 32)) * table[nibble].
@inline(__always)
private func iq4_xs(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let d = f16(b, 0)
    let sh = Int32(u8(b, 2)) | Int32(u8(b, 3)) << 8
    for ib in 0..<8 {
        let ls = ((Int32(u8(b, 4 + ib / 2)) >> Int32(4 * (ib % 2))) & 0xF) | (((sh >> Int32(2 * ib)) & 3) << 4)
        let dl = d * f(ls - 32)
        let out = y + 32 * ib
        for j in 0..<16 {
            let x = Int32(u8(b, 8 + 16 * ib + j))
            out[j] = dl * iq4Value(x & 0xF)
            out[j + 16] = dl * iq4Value(x >> 4)
        }
    }
}
