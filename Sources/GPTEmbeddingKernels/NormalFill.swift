import CKernelDispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Elements `[begin, end)` of the N(0, std) stream `key`, element `i` written to
/// `out[i - begin]`. Element `i` is a function of `(key, i)` only, so any split of a range
/// gives the same values. Box-Muller in double precision; elements `2k` and `2k + 1` share
/// one pair of uniforms.
func fillNormal(_ out: UnsafeMutablePointer<Float>, from begin: Int, to end: Int, std: Float, key: UInt64) {
    guard begin < end else { return }
    let s = Double(std)
    var k = begin / 2
    while 2 * k < end {
        let a = CounterHash.mix64(key &+ UInt64(2 * k))
        let b = CounterHash.mix64(key &+ UInt64(2 * k + 1))
        let u1 = (Double(a >> 11) + 0.5) * 0x1p-53   // (0, 1): log is finite
        let u2 = Double(b >> 11) * 0x1p-53
        let r = (-2 * log(u1)).squareRoot()
        let theta = 2 * Double.pi * u2
        if 2 * k >= begin { out[2 * k - begin] = Float(s * r * cos(theta)) }
        if 2 * k + 1 < end { out[2 * k + 1 - begin] = Float(s * r * sin(theta)) }
        k += 1
    }
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
