@testable import GPTEmbedding
@testable import GPTEmbeddingKernels
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The normal generator behind parameter initialisation (`Kernels/NormalFill.swift`):
/// the distribution (moments, Kolmogorov-Smirnov, tails), its accuracy against a
/// double-precision Box-Muller of the same random bits, independence, and that a value
/// depends only on (key, index): not on how a range is split, nor on the thread count,
/// nor on the build (the SIMD code of optimised builds and the scalar code that debug
/// builds, these tests included, run give the same bits).
///
/// Bounds are five standard errors of the statistic for the sample size (a Kolmogorov-
/// Smirnov level of 0.001): a correct generator fails one of them with probability of
/// order 1e-6, and the keys are fixed, so the tests are deterministic.
@Suite struct NormalFillTests {
    /// `n` elements of stream `key` from element `begin` on.
    static func normals(_ n: Int, key: UInt64, std: Float = 1, from begin: Int = 0) -> [Float] {
        var a = [Float](repeating: .nan, count: n)
        a.withUnsafeMutableBufferPointer { fillNormal($0.baseAddress!, from: begin, to: begin + n, std: std, key: key) }
        return a
    }

    static let key: UInt64 = 0x0123_4567_89AB_CDEF
    /// 2^19 samples of N(0, 1), shared by the distribution tests (about half a second to
    /// generate in a debug build).
    static let samples = normals(1 << 19, key: key)

    static func fiveSigma(_ n: Int) -> Double { 5 / Double(n).squareRoot() }

    @Test func momentsAreThoseOfTheNormal() {
        let std: Float = 0.02
        let x = Self.normals(1 << 18, key: Self.key ^ 1, std: std)
        let n = Double(x.count)
        var s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0
        for v in x {
            let z = Double(v) / Double(std)
            let z2 = z * z
            s1 += z; s2 += z2; s3 += z2 * z; s4 += z2 * z2
        }
        let mean = s1 / n
        let variance = s2 / n - mean * mean
        let skew = (s3 / n - 3 * mean * variance - mean * mean * mean) / (variance * variance.squareRoot())
        let m4 = s4 / n - 4 * mean * s3 / n + 6 * mean * mean * s2 / n - 3 * mean * mean * mean * mean
        let excessKurtosis = m4 / (variance * variance) - 3
        // Standard errors for n normal samples: mean 1/sqrt(n), variance sqrt(2/n),
        // skewness sqrt(6/n), excess kurtosis sqrt(24/n).
        #expect(abs(mean) < Self.fiveSigma(x.count), "mean \(mean)")
        #expect(abs(variance - 1) < Self.fiveSigma(x.count) * 2.0.squareRoot(), "variance \(variance)")
        #expect(abs(skew) < Self.fiveSigma(x.count) * 6.0.squareRoot(), "skewness \(skew)")
        #expect(abs(excessKurtosis) < Self.fiveSigma(x.count) * 24.0.squareRoot(), "excess kurtosis \(excessKurtosis)")
    }

    /// Kolmogorov-Smirnov distances between N(0, 1) and the samples: all of them, the
    /// cosine lanes (0-7 of each block of 16) and the sine lanes (8-15). Within 3e-5:
    /// `u = Phi(x)` is counted in 2^16 bins; between two bin edges both CDFs move by at
    /// most a bin, so the largest distance at the edges plus that bounds the distance.
    static func ksDistances(_ x: [Float]) -> [(distance: Double, count: Int)] {
        let bins = 1 << 16
        var counts = [[Int]](repeating: [Int](repeating: 0, count: bins), count: 2)
        for (i, v) in x.enumerated() {
            let u = 0.5 * erfc(-Double(v) / 2.0.squareRoot())
            counts[(i >> 3) & 1][min(bins - 1, Int(u * Double(bins)))] += 1
        }
        let all = zip(counts[0], counts[1]).map { $0 + $1 }
        return [all, counts[0], counts[1]].map { c in
            let n = c.reduce(0, +)
            var cumulative = 0, edges = 0.0
            for k in 0..<bins {
                cumulative += c[k]
                edges = max(edges, abs(Double(cumulative) / Double(n) - Double(k + 1) / Double(bins)))
            }
            return (edges + max(Double(c.max()!) / Double(n), 1 / Double(bins)), n)
        }
    }

    @Test func kolmogorovSmirnovAgainstTheNormalCDF() {
        // The 0.001 critical value of the KS distance is 1.95 / sqrt(n).
        for (name, ks) in zip(["all", "cos", "sin"], Self.ksDistances(Self.samples)) {
            #expect(ks.distance < 1.95 / Double(ks.count).squareRoot(), "\(name): KS distance \(ks.distance) over \(ks.count) samples")
        }
    }

    @Test func tailFrequencies() {
        let x = Self.samples, n = x.count
        let maxRadius = (-2 * log(0x1p-32)).squareRoot()   // u1 >= 2^-32
        var beyond3 = 0, beyond35 = 0, beyond4 = 0, largest: Float = 0
        for v in x {
            let a = abs(v)
            if a > 3 { beyond3 += 1 }
            if a > 3.5 { beyond35 += 1 }
            if a > 4 { beyond4 += 1 }
            largest = max(largest, a)
        }
        for (count, sigma) in [(beyond3, 3.0), (beyond35, 3.5), (beyond4, 4.0)] {
            let p = erfc(sigma / 2.0.squareRoot())
            let expected = Double(n) * p, sd = (Double(n) * p * (1 - p)).squareRoot()
            #expect(abs(Double(count) - expected) < 5 * sd, "|x| > \(sigma): \(count), expected \(expected) +- \(sd)")
        }
        #expect(Double(largest) <= maxRadius * (1 + 1e-6), "largest |x| \(largest)")
        #expect(largest > 4, "the far tail is reached: largest |x| \(largest) in \(n)")
    }

    /// The stream as defined in `NormalFill.swift`, in double precision with libm: the same
    /// random bits, the same float `u1`, then exact Box-Muller.
    static func reference(key: UInt64, element i: Int, std: Float) -> (value: Double, radius: Double) {
        let pair = UInt64(i >> 4) * 8 + UInt64(i & 7)
        let z = CounterHash.mix64(key &+ pair &* 0x9E37_79B9_7F4A_7C15)
        let u1 = (Float(Int32(z >> 33)) + 0.5) * 0x1p-31
        let r = Double(std) * (-2 * log(Double(u1))).squareRoot()
        let theta = 2 * Double.pi * Double(UInt32(truncatingIfNeeded: z)) / 0x1p32
        return (i & 8 == 0 ? r * cos(theta) : r * sin(theta), r)
    }

    @Test func accurateAgainstDoublePrecisionBoxMuller() {
        let std: Float = 0.02
        let n = 1 << 17
        let x = Self.normals(n, key: Self.key ^ 3, std: std)
        var worst = 0.0, worstRadius = 0.0
        for i in 0..<n {
            let (value, r) = Self.reference(key: Self.key ^ 3, element: i, std: std)
            // Error relative to the radius: cos and sin are accurate to an ulp of 1, so an
            // element near a zero of its cos or sin is accurate in absolute terms.
            worst = max(worst, abs(Double(x[i]) - value) / r)
            // The radius alone: from the pair (i, i + 8) of the same block.
            if i & 8 == 0 {
                let y = Double(x[i + 8])
                worstRadius = max(worstRadius, abs((Double(x[i]) * Double(x[i]) + y * y).squareRoot() - r) / r)
            }
        }
        // 2^-24 is half an ulp at 1 (between 1/2 and 1 ulp of the radius). The float steps
        // (ln, sqrt, cos/sin, two products) stay within a few of those: at most 4.1 (values)
        // and 4.3 (radius) times 2^-24 over 2^26 elements measured; 3.3 over these 2^17.
        #expect(worst < 6 * 0x1p-24, "largest error \(worst / 0x1p-24) * 2^-24 of the radius")
        #expect(worstRadius < 6 * 0x1p-24, "largest radius error \(worstRadius / 0x1p-24) * 2^-24")
    }

    @Test func stdOnlyScales() {
        let a = Self.normals(4096, key: Self.key, std: 0.02)
        let b = Self.normals(4096, key: Self.key, std: 1)
        for i in 0..<a.count {
            #expect(abs(Double(a[i]) - 0.02 * Double(b[i])) <= 4 * 0x1p-24 * abs(0.02 * Double(b[i])))
        }
        #expect(Self.normals(100, key: Self.key, std: 0).allSatisfy { $0 == 0 })
    }

    /// Pearson correlation of `(a(i), b(i))` for `i` in `indices`, in one pass.
    static func correlation(_ indices: some Sequence<Int>, _ a: (Int) -> Double, _ b: (Int) -> Double) -> (rho: Double, count: Int) {
        var n = 0.0, sa = 0.0, sb = 0.0, saa = 0.0, sbb = 0.0, sab = 0.0
        for i in indices {
            let x = a(i), y = b(i)
            n += 1; sa += x; sb += y; saa += x * x; sbb += y * y; sab += x * y
        }
        let cov = sab / n - (sa / n) * (sb / n)
        return (cov / ((saa / n - (sa / n) * (sa / n)) * (sbb / n - (sb / n) * (sb / n))).squareRoot(), Int(n))
    }

    static func expectUncorrelated(_ c: (rho: Double, count: Int), _ what: @autoclosure () -> String) {
        #expect(abs(c.rho) < fiveSigma(c.count), "\(what()): correlation \(c.rho) over \(c.count)")
    }

    @Test func theTwoValuesOfAPairAreIndependent() {
        let x = Self.samples.map(Double.init)
        let cosines = x.indices.lazy.filter { $0 & 8 == 0 }   // the sine of the same pair is 8 on
        Self.expectUncorrelated(Self.correlation(cosines, { x[$0] }, { x[$0 + 8] }), "cos, sin")
        // Dependence that correlation misses: the squares (they share the radius) and |x|.
        Self.expectUncorrelated(Self.correlation(cosines, { x[$0] * x[$0] }, { x[$0 + 8] * x[$0 + 8] }), "cos^2, sin^2")
        Self.expectUncorrelated(Self.correlation(cosines, { abs(x[$0]) }, { abs(x[$0 + 8]) }), "|cos|, |sin|")
    }

    @Test func noSerialCorrelation() {
        let x = Self.samples.prefix(1 << 18).map(Double.init)
        for lag in [1, 2, 7, 8, 9, 15, 16, 17, 1024] {
            Self.expectUncorrelated(Self.correlation(0..<(x.count - lag), { x[$0] }, { x[$0 + lag] }), "lag \(lag)")
        }
    }

    @Test func differentKeysGiveUncorrelatedStreams() {
        let n = 1 << 16
        let keys: [(UInt64, UInt64)] = [
            (CounterRandom.streamKey(seed: 7, stream: 1), CounterRandom.streamKey(seed: 7, stream: 2)),
            (CounterRandom.streamKey(seed: 7, stream: 1), CounterRandom.streamKey(seed: 8, stream: 1)),
            (Self.key, Self.key ^ 1),   // keys one bit apart
            (Self.key, Self.key &+ 1),
        ]
        for (k1, k2) in keys {
            let a = Self.normals(n, key: k1).map(Double.init), b = Self.normals(n, key: k2).map(Double.init)
            Self.expectUncorrelated(Self.correlation(0..<n, { a[$0] }, { b[$0] }), "keys \(k1), \(k2)")
            Self.expectUncorrelated(Self.correlation(0..<n, { a[$0] * a[$0] }, { b[$0] * b[$0] }), "squares, keys \(k1), \(k2)")
            // Nor is one stream the other shifted by a pair or a block.
            for shift in [1, 16] {
                Self.expectUncorrelated(Self.correlation(0..<(n - shift), { a[$0 + shift] }, { b[$0] }), "keys \(k1), \(k2) shifted")
                Self.expectUncorrelated(Self.correlation(0..<(n - shift), { a[$0] }, { b[$0 + shift] }), "keys \(k1), \(k2) shifted")
            }
        }
    }

    /// Optimised builds run the SIMD code, debug builds (these tests) the scalar code: the
    /// same bits, on random elements and on the edge cases of `ln` and of the angle.
    @Test func vectorAndScalarCodeGiveTheSameBits() {
        for (begin, end) in [(0, 1 << 16), (5, 1000), (17, 18), (1 << 40 | 3, 1 << 40 | 3003)] {
            var v = [Float](repeating: .nan, count: end - begin), s = v
            v.withUnsafeMutableBufferPointer { fillNormalEightPairs($0.baseAddress!, from: begin, to: end, std: 0.02, key: Self.key) }
            s.withUnsafeMutableBufferPointer { fillNormalScalar($0.baseAddress!, from: begin, to: end, std: 0.02, key: Self.key) }
            #expect(v.map(\.bitPattern) == s.map(\.bitPattern), "elements \(begin) ..< \(end)")
        }
        // u1 runs over [2^-32, 1]; the reduction switches exponent at sqrt(1/2).
        var rng = TestRandom(5)
        let half = Float(0.5).squareRoot()
        var u: [Float] = [0x1p-32, 0x1p-31, 0.5, 1, Float(1).nextDown, half, half.nextUp, half.nextDown,
                          2 * half, (2 * half).nextDown, 0.25, 0x1.6A09E6p-2]
        u += (0..<(1 << 12)).map { _ in (Float(Int(rng.next() >> 33)) + 0.5) * 0x1p-31 }
        // The angle: every octant's first and last values, and random ones.
        var m: [UInt32] = (0..<8).flatMap { o -> [UInt32] in
            let start = UInt32(o) << 29
            return [start, start + 1, start + 0x0FFF_FFFF, start + 0x1000_0000, start + 0x1FFF_FFFF]
        }
        m += (0..<(1 << 12)).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
        while u.count % 8 != 0 { u.append(1) }
        while m.count % 8 != 0 { m.append(0) }
        for k in stride(from: 0, to: u.count, by: 8) {
            let lanes = SIMD8<Float>(u[k..<(k + 8)])
            let vector = lnNormal(lanes)
            for j in 0..<8 {
                #expect(vector[j].bitPattern == lnNormal(u[k + j]).bitPattern, "ln \(u[k + j])")
                #expect(abs(Double(vector[j]) - log(Double(u[k + j]))) <= 2 * Double(vector[j].ulp), "ln \(u[k + j]) = \(vector[j])")
            }
        }
        for k in stride(from: 0, to: m.count, by: 8) {
            let (c, s) = cosSinTurns(SIMD8<UInt32>(m[k..<(k + 8)]))
            for j in 0..<8 {
                let (cs, ss) = cosSinTurns(m[k + j])
                #expect(c[j].bitPattern == cs.bitPattern && s[j].bitPattern == ss.bitPattern, "angle \(m[k + j])")
                let theta = 2 * Double.pi * Double(m[k + j]) / 0x1p32
                #expect(abs(Double(c[j]) - cos(theta)) <= 0x1p-23 && abs(Double(s[j]) - sin(theta)) <= 0x1p-23,
                        "angle \(m[k + j]): \(c[j]), \(s[j])")
            }
        }
        #expect(cosSinTurns(UInt32(0)) == (1, 0))
    }

    /// Elements of `begin ..< end` filled in the given parts (cut points), `out` at `begin`.
    static func filledInParts(key: UInt64, begin: Int, end: Int, cuts: [Int]) -> [UInt32] {
        var out = [Float](repeating: .nan, count: end - begin)
        out.withUnsafeMutableBufferPointer { o in
            let bounds = [begin] + cuts.sorted() + [end]
            for (lo, hi) in zip(bounds, bounds.dropFirst()) {
                fillNormal(o.baseAddress! + (lo - begin), from: lo, to: hi, std: 0.5, key: key)
            }
        }
        return out.map(\.bitPattern)
    }

    @Test func anySplitOfARangeGivesTheSameBits() {
        var rng = TestRandom(11)
        for begin in [0, 5, 16, 1 << 40 | 3] {
            let end = begin + 1000
            let whole = Self.filledInParts(key: Self.key, begin: begin, end: end, cuts: [])
            #expect(!whole.contains(Float.nan.bitPattern))
            // Single elements, pieces within one 16-element block, block-aligned cuts,
            // empty parts, random cuts.
            var splits: [[Int]] = [Array(begin + 1 ..< end), [begin + 16, begin + 32], [begin + 3, begin + 3, begin + 4]]
            splits.append((begin / 16 + 1 ... begin / 16 + 60).map { $0 * 16 })
            for _ in 0..<20 { splits.append((0..<rng.int(12)).map { _ in begin + rng.int(1001) }) }
            for cuts in splits {
                #expect(Self.filledInParts(key: Self.key, begin: begin, end: end, cuts: cuts) == whole, "cuts \(cuts)")
            }
            // A range inside a longer one is the same part of it.
            let inner = Self.filledInParts(key: Self.key, begin: begin + 7, end: begin + 21, cuts: [])
            #expect(inner == Array(whole[7..<21]))
        }
    }

    @Test func theSameTablesForAnyThreadCount() throws {
        // 8200 x 64 = 524,800 elements: two parts at two threads (2^18 elements a part at least).
        // One thread fills it in one call; compare two threads with that.
        var c = smallConfig(vocab: 8200, dim: 64, maxSeqLen: 64, threads: 2)
        c.seed = 99
        #expect(WorkerPool(threads: 2).parts(count: 8200 * 64, grain: WorkerPool.minComputePerPart) == 2)
        #expect(WorkerPool(threads: 1).parts(count: 8200 * 64, grain: WorkerPool.minComputePerPart) == 1)
        let two = try GPTEmbedding(config: c)
        let single = Self.normals(8200 * 64, key: CounterRandom.streamKey(seed: 99, stream: 1), std: c.initStd)
        #expect(two.tokenEmbedding.weight.values.map(\.bitPattern) == single.map(\.bitPattern))
        let positions = Self.normals(64 * 64, key: CounterRandom.streamKey(seed: 99, stream: 2), std: c.initStd)
        #expect(two.positionalEmbedding!.weight.values.map(\.bitPattern) == positions.map(\.bitPattern))
    }
}
