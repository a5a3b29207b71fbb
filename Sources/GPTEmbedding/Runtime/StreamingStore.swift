import CMemoryHints

/// Writes that go around the caches (SSE2 streaming stores: every x86-64 CPU has them).
/// A normal store first reads each line it writes (read-for-ownership), which doubles the
/// traffic of a large write nobody reads soon. The 16-byte aligned middle of a range is
/// streamed, its ends written normally. Callers issue `gpte_stream_fence()` before another
/// thread may read what they wrote.
enum StreamingStore {
    /// `p[0 ..< n] = 0`.
    @inline(__always)
    static func zero(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i < n && Int(bitPattern: p + i) & 15 != 0 { p[i] = 0; i += 1 }
        let zero = SIMD4<Float>()
        while i &+ 16 <= n {
            gpte_stream_store4(p + i, zero)
            gpte_stream_store4(p + (i &+ 4), zero)
            gpte_stream_store4(p + (i &+ 8), zero)
            gpte_stream_store4(p + (i &+ 12), zero)
            i &+= 16
        }
        while i &+ 4 <= n { gpte_stream_store4(p + i, zero); i &+= 4 }
        while i < n { p[i] = 0; i += 1 }
    }

    /// `p[0 ..< n] = 0`: around the caches when `streaming`, else with normal stores (the
    /// lines then stay in cache for their next reader).
    @inline(__always)
    static func zero(_ p: UnsafeMutablePointer<Float>, _ n: Int, streaming: Bool) {
        if streaming { zero(p, n) } else { p.update(repeating: 0, count: n) }
    }

    /// `to[0 ..< count] = from[0 ..< count]` (the ranges do not overlap).
    @inline(__always)
    static func copy(from: UnsafePointer<Float>, to p: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i < n && Int(bitPattern: p + i) & 15 != 0 { p[i] = from[i]; i += 1 }
        let src = UnsafeRawPointer(from)
        while i &+ 16 <= n {
            gpte_stream_store4(p + i, src.loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self))
            gpte_stream_store4(p + (i &+ 4), src.loadUnaligned(fromByteOffset: (i &+ 4) &* 4, as: SIMD4<Float>.self))
            gpte_stream_store4(p + (i &+ 8), src.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD4<Float>.self))
            gpte_stream_store4(p + (i &+ 12), src.loadUnaligned(fromByteOffset: (i &+ 12) &* 4, as: SIMD4<Float>.self))
            i &+= 16
        }
        while i &+ 4 <= n { gpte_stream_store4(p + i, src.loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self)); i &+= 4 }
        while i < n { p[i] = from[i]; i += 1 }
    }
}
