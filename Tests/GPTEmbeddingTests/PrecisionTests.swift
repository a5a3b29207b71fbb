@testable import GPTEmbeddingKernels
import Testing

/// The 16-bit conversions of the kernels against independent references: Swift's own
/// `Float16` (IEEE binary16, round to nearest even) and a bf16 rounding computed in double
/// precision from the two neighbouring bf16 values.
@Suite struct PrecisionTests {
    @Test func everyF16WidensExactly() {
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let got = widenF16(bits)
            if expected.isNaN {
                #expect(got.isNaN && got.sign == expected.sign, "f16 \(bits)")
                // The payload is kept: the ten mantissa bits land at the top of float's 23.
                #expect(got.bitPattern & 0x7FFFFF == UInt32(bits & 0x3FF) << 13)
            } else {
                #expect(got.bitPattern == expected.bitPattern, "f16 \(bits): \(got) vs \(expected)")
            }
        }
    }

    @Test func everyBF16WidensExactly() {
        for bits in 0...UInt16.max {
            #expect(widenBF16(bits).bitPattern == UInt32(bits) << 16)
        }
    }

    /// Floats that matter for rounding: around every f16 / bf16 boundary, ties, subnormal
    /// results, overflow, and a spread of random bit patterns.
    static let samples: [Float] = {
        var values: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 65536, .infinity, -.infinity,
                               .greatestFiniteMagnitude, .leastNonzeroMagnitude, .leastNormalMagnitude,
                               0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1.000002p-25, 0x1p-26, 3 * 0x1p-25, 0x1.ffcp-15,
                               1 + 0x1p-11, 1 + 0x1p-10 + 0x1p-11, 1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8, 0.1, 1e-3, 55.425625]
        var state: UInt64 = 0x1234_5678
        for _ in 0..<200_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            values.append(Float(bitPattern: UInt32(truncatingIfNeeded: state >> 32)))
        }
        // Every f16 value and the midpoints between neighbours (exact ties).
        for bits in UInt16(0)...0x7BFF {
            let a = Float(Float16(bitPattern: bits)), b = Float(Float16(bitPattern: bits + 1))
            values += [a, -a, (a + b) / 2, -(a + b) / 2, a.nextUp, b.nextDown]
        }
        return values
    }()

    @Test func f32RoundsToF16AsIEEE() {
        for x in Self.samples {
            let got = narrowF16(x)
            if x.isNaN {
                #expect(got == (x.sign == .minus ? 0xFE00 : 0x7E00), "NaN \(x.bitPattern)")
            } else {
                #expect(got == Float16(x).bitPattern, "\(x) (\(x.bitPattern)): \(got) vs \(Float16(x).bitPattern)")
            }
        }
    }

    /// The bf16 value nearest to `x`, ties to even, by comparing distances in double.
    static func referenceBF16(_ x: Float) -> UInt16 {
        if x.isNaN { return 0x7FC0 }
        let down = UInt16(x.bitPattern >> 16)  // truncation: toward zero
        let lo = Float(bitPattern: UInt32(down) << 16)
        if lo == x { return down }
        let up = down &+ 1
        let hi = Float(bitPattern: UInt32(up) << 16)  // may be infinity: then compare with 2^128
        let hiD = hi.isInfinite ? (x.sign == .minus ? -0x1p128 : 0x1p128) : Double(hi)
        let dLo = abs(Double(x) - Double(lo)), dHi = abs(hiD - Double(x))
        if dLo < dHi { return down }
        if dHi < dLo { return up }
        return down & 1 == 0 ? down : up
    }

    @Test func f32RoundsToBF16ToNearestEven() {
        for x in Self.samples {
            #expect(narrowBF16(x) == Self.referenceBF16(x), "\(x) (\(x.bitPattern))")
        }
    }

    @Test func vectorAndScalarFormsAgreeLaneByLane() {
        let xs = Array(Self.samples.prefix(80_000))
        for i in stride(from: 0, to: xs.count - 8, by: 8) {
            let v = Vec(xs[i..<(i + 8)])
            let b = narrowBF16(v), h = narrowF16(v)
            for l in 0..<8 {
                #expect(b[l] == narrowBF16(xs[i + l]))
                #expect(h[l] == narrowF16(xs[i + l]))
                #expect(widenF16(h)[l].bitPattern == widenF16(h[l]).bitPattern)
            }
        }
    }
}
