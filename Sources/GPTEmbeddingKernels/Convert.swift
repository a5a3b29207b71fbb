import CKernelDispatch

/// `dst[0..<count] = src[0..<count]` from `srcType` to `dstType` (`GPTE_DTYPE_*`): widening
/// is exact, narrowing rounds to nearest even (``narrowBF16(_:)-8x0h2``, ``narrowF16(_:)-4p3wk``).
/// A 16-bit to 16-bit conversion goes through float32, which holds either exactly, so it
/// rounds once.
func convert(_ dst: UnsafeMutableRawPointer, _ dstType: Int32, _ src: UnsafeRawPointer, _ srcType: Int32, _ count: Int) {
    switch srcType {
    case Int32(GPTE_DTYPE_BF16): convert(dst, dstType, src, BF16Elements.self, count)
    case Int32(GPTE_DTYPE_F16): convert(dst, dstType, src, F16Elements.self, count)
    default: convert(dst, dstType, src, F32Elements.self, count)
    }
}

@inline(__always)
private func convert<E: RowElement>(_ dst: UnsafeMutableRawPointer, _ dstType: Int32, _ src: UnsafeRawPointer,
                                    _: E.Type, _ count: Int) {
    switch dstType {
    case Int32(GPTE_DTYPE_BF16): convert(src, E.self, count, BF16Store(row: dst))
    case Int32(GPTE_DTYPE_F16): convert(src, E.self, count, F16Store(row: dst))
    default: convert(src, E.self, count, CachedStore(row: dst))
    }
}

@inline(__always)
private func convert<E: RowElement, S: RowStore>(_ src: UnsafeRawPointer, _: E.Type, _ count: Int, _ store: S) {
    var st = store
    var c = 0
    while c + 8 <= count { st.put(E.load8(src, c), column: c); c += 8 }
    while c < count { st.put1(E.load1(src, c), column: c); c += 1 }
    st.finish()
}
