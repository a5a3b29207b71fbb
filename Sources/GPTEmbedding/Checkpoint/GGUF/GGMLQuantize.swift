/// ggml's reference quantizers for the 32-element block types a token table can be written
/// in (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1): the bytes `gguf.quants.quantize` (llama.cpp's own
/// Python package) writes, which are those of ggml's `quantize_row_*_ref`.
///
/// Every step is float32 arithmetic in the reference's order, no fused multiply-add, and the
/// scales are rounded to fp16 to nearest even:
///
///     Q8_0: d = max|x| / 127, q = round-half-away(x / d)                  (int8)
///     Q4_0: m = the x of largest |x| (first), d = m / -8,  q = trunc(x / d + 8.5),  0...15
///     Q5_0: m as Q4_0,                        d = m / -16, q = trunc(x / d + 16.5), 0...31
///     Q4_1: d = (max - min) / 15, q = trunc((x - min) / d + 0.5), 0...15, min kept
///     Q5_1: d = (max - min) / 31, q = trunc((x - min) / d + 0.5), 0...31, min kept
///
/// where `/ d` is `* (1 / d)` (0 when d is 0). Values must be finite (the caller checks).
enum GGMLQuantize {
    /// The types this library writes.
    static let writable: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    /// Quantizes `n` floats at `x` (`n` a multiple of 32) into `out`, `type.rowBytes(n)`
    /// bytes. `type` is one of ``writable``.
    static func quantizeRow(_ type: GGMLType, _ x: UnsafePointer<Float>, _ n: Int, _ out: UnsafeMutableRawPointer) {
        let blocks = n / 32, bytes = type.blockBytes
        for b in 0..<blocks {
            let v = x + b * 32, o = out + b * bytes
            switch type {
            case .q8_0: q8_0(v, o)
            case .q4_0: q4_0(v, o)
            case .q4_1: q4_1(v, o)
            case .q5_0: q5_0(v, o)
            case .q5_1: q5_1(v, o)
            default: o.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            }
        }
    }

    /// fp16 bits of `x`, rounded to nearest even (numpy's `astype(np.float16)`).
    @inline(__always)
    private static func half(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    @inline(__always)
    private static func store16(_ h: UInt16, _ o: UnsafeMutableRawPointer, _ at: Int) {
        o.storeBytes(of: h.littleEndian, toByteOffset: at, as: UInt16.self)
    }

    /// `1 / d`, or 0 when `d` is zero.
    @inline(__always)
    private static func inverse(_ d: Float) -> Float { d == 0 ? 0 : 1 / d }

    /// The element of largest magnitude (the first one of equal magnitudes), signed.
    @inline(__always)
    private static func signedMax(_ v: UnsafePointer<Float>) -> Float {
        var amax: Float = 0, m: Float = 0
        for j in 0..<32 where abs(v[j]) > amax {
            amax = abs(v[j])
            m = v[j]
        }
        return m
    }

    /// The smallest and the largest element.
    @inline(__always)
    private static func range(_ v: UnsafePointer<Float>) -> (Float, Float) {
        var lo = v[0], hi = v[0]
        for j in 1..<32 {
            lo = min(lo, v[j])
            hi = max(hi, v[j])
        }
        return (lo, hi)
    }

    /// `trunc(y)` as an integer clamped to `0...top` (y is finite here; the clamp first keeps
    /// the conversion in range whatever y is).
    @inline(__always)
    private static func level(_ y: Float, _ top: Int) -> UInt8 {
        guard y > 0 else { return 0 }
        return UInt8(min(Int(min(y, 255).rounded(.towardZero)), top))
    }

    /// Packs 32 levels (low nibbles: elements 0-15 low, 16-31 high) at `o + at`.
    @inline(__always)
    private static func nibbles(_ q: SIMD32<UInt8>, _ o: UnsafeMutableRawPointer, _ at: Int) {
        for j in 0..<16 { o.storeBytes(of: (q[j] & 0x0F) | (q[j + 16] << 4), toByteOffset: at + j, as: UInt8.self) }
    }

    /// The fifth bit of 32 levels as a little-endian uint32 (bit j: element j) at `o + at`.
    @inline(__always)
    private static func fifthBits(_ q: SIMD32<UInt8>, _ o: UnsafeMutableRawPointer, _ at: Int) {
        var h: UInt32 = 0
        for j in 0..<32 { h |= UInt32((q[j] >> 4) & 1) << UInt32(j) }
        o.storeBytes(of: h.littleEndian, toByteOffset: at, as: UInt32.self)
    }

    private static func q8_0(_ v: UnsafePointer<Float>, _ o: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(v[j])) }
        let d = amax / 127, id = inverse(d)
        store16(half(d), o, 0)
        for j in 0..<32 {
            // numpy's np_roundf: |y| rounded half away from zero, with y's sign.
            let y = v[j] * id
            let a = abs(y), f = a.rounded(.down)
            let r = f + (2 * (a - f)).rounded(.down)
            let q = Int8(clamping: Int(min(r, 127)))
            o.storeBytes(of: y < 0 ? 0 &- q : q, toByteOffset: 2 + j, as: Int8.self)
        }
    }

    /// Q4_0 / Q5_0's levels: `d = m / -mid` (m the signed element of largest magnitude),
    /// `q = trunc(x / d + (mid + 0.5))` clamped to `0 ... 2 * mid - 1`; writes d at byte 0.
    private static func symmetric(_ v: UnsafePointer<Float>, _ o: UnsafeMutableRawPointer, mid: Float) -> SIMD32<UInt8> {
        let d = signedMax(v) / -mid, id = inverse(d)
        store16(half(d), o, 0)
        var q = SIMD32<UInt8>()
        for j in 0..<32 { q[j] = level(v[j] * id + (mid + 0.5), Int(2 * mid) - 1) }
        return q
    }

    /// Q4_1 / Q5_1's levels: `d = (max - min) / top`, `q = trunc((x - min) / d + 0.5)`
    /// clamped to `0 ... top`; writes d and min at bytes 0 and 2.
    private static func affine(_ v: UnsafePointer<Float>, _ o: UnsafeMutableRawPointer, top: Int) -> SIMD32<UInt8> {
        let (lo, hi) = range(v)
        let d = (hi - lo) / Float(top), id = inverse(d)
        store16(half(d), o, 0)
        store16(half(lo), o, 2)
        var q = SIMD32<UInt8>()
        for j in 0..<32 { q[j] = level((v[j] - lo) * id + 0.5, top) }
        return q
    }

    private static func q4_0(_ v: UnsafePointer<Float>, _ o: UnsafeMutableRawPointer) {
        nibbles(symmetric(v, o, mid: 8), o, 2)
    }

    private static func q5_0(_ v: UnsafePointer<Float>, _ o: UnsafeMutableRawPointer) {
        let q = symmetric(v, o, mid: 16)
        fifthBits(q, o, 2)
        nibbles(q, o, 6)
    }

    private static func q4_1(_ v: UnsafePointer<Float>, _ o: UnsafeMutableRawPointer) {
        nibbles(affine(v, o, top: 15), o, 4)
    }

    private static func q5_1(_ v: UnsafePointer<Float>, _ o: UnsafeMutableRawPointer) {
        let q = affine(v, o, top: 31)
        fifthBits(q, o, 4)
        nibbles(q, o, 8)
    }
}
