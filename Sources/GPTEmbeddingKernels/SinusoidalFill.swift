#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rows of the sinusoidal position table of Vaswani et al. (2017, section 3.5): channel `c`
/// of position `p` is `sin(p * 10000^(-c/D))` for even `c` and `cos(p * 10000^(-(c-1)/D))`
/// for odd `c`, computed in double precision and rounded to float.
public enum SinusoidalFill {
    /// `10000^(-(c - c % 2) / D)`.
    @inline(__always)
    public static func frequency(channel c: Int, embedDim d: Int) -> Double {
        pow(10000.0, -Double(c & ~1) / Double(d))
    }

    /// Writes rows `start ..< start + count` into `out [count, embedDim]`.
    public static func fill(start: Int, count: Int, embedDim d: Int, into out: UnsafeMutablePointer<Float>) {
        guard count > 0 else { return }
        // Channel-major, so each frequency is computed once and nothing is allocated.
        for c in 0..<d {
            let f = frequency(channel: c, embedDim: d)
            let isSin = c & 1 == 0
            for r in 0..<count {
                let angle = Double(start + r) * f
                out[r * d + c] = Float(isSin ? sin(angle) : cos(angle))
            }
        }
    }
}
