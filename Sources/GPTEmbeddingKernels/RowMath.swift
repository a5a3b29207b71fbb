/// Reductions over one row, written with explicit SIMD accumulators: a strict-IEEE
/// scalar sum would be a serial chain the compiler may not reorder. The summation order
/// is fixed by this code, so results never depend on threads.
enum RowMath {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// `sum(x[0..<n])`.
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += load(x, i)
            a1 += load(x, i + 8)
            i += 16
        }
        var s = hsum(a0 + a1)
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// `sum((x - m)^2)`, in four chains like ``gather``'s sum (the order:
    /// `hsum((a0 + a1) + (a2 + a3))`, then the tail in column order).
    @inline(__always)
    static func sumSquaredDeviation(_ x: UnsafePointer<Float>, _ n: Int, mean m: Float) -> Float {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        let mv = SIMD8<Float>(repeating: m)
        var i = 0
        while i &+ 32 <= n {
            let d0 = load(x, i) - mv, d1 = load(x, i &+ 8) - mv, d2 = load(x, i &+ 16) - mv, d3 = load(x, i &+ 24) - mv
            a0 += d0 * d0
            a1 += d1 * d1
            a2 += d2 * d2
            a3 += d3 * d3
            i &+= 32
        }
        if i &+ 16 <= n {
            let d0 = load(x, i) - mv, d1 = load(x, i &+ 8) - mv
            a0 += d0 * d0
            a1 += d1 * d1
            i &+= 16
        }
        if i &+ 8 <= n { let d0 = load(x, i) - mv; a0 += d0 * d0; i &+= 8 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { let d = x[i] - m; s += d * d; i += 1 }
        return s
    }

    /// `sum(a * b)`.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += load(a, i) * load(b, i)
            a1 += load(a, i + 8) * load(b, i + 8)
            i += 16
        }
        var s = hsum(a0 + a1)
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }
}
