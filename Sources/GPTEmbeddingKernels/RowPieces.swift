import CMemoryHints

/// Pieces of a row that the forward and the backward share.

/// `x[0..<d] = s * w + p` (or `s * w` without positions), `w` a row of `W` elements and `p`
/// of `P` elements widened to float32; returns the sum of the written values.
@inline(__always)
func gather<W: RowElement, P: RowElement>(_ x: UnsafeMutablePointer<Float>, _ w: UnsafeRawPointer, _ p: UnsafeRawPointer?,
                                          _ s: Float, _ d: Int, _: W.Type, _: P.Type,
                                          ahead: UnsafeRawPointer? = nil, aheadBytes: Int = .max) -> Float {
    let sv = Vec(repeating: s)
    var a0 = Vec(), a1 = Vec()
    var c = 0
    // A line (64 bytes) of the row ahead per 16 columns of float32, 32 of 16-bit elements.
    let aheadStep = W.bytes == 4 ? 15 : 31
    if let p {
        while c + 16 <= d {
            if let ahead, c & aheadStep == 0, c &* W.bytes < aheadBytes { gpte_prefetch(ahead + c * W.bytes) }
            let u = sv * W.load8(w, c) + P.load8(p, c), v = sv * W.load8(w, c + 8) + P.load8(p, c + 8)
            store(u, x + c); store(v, x + c + 8)
            a0 += u; a1 += v
            c += 16
        }
        if c + 8 <= d { let u = sv * W.load8(w, c) + P.load8(p, c); store(u, x + c); a0 += u; c += 8 }
        var sum = hsum(a0 + a1)
        while c < d { x[c] = s * W.load1(w, c) + P.load1(p, c); sum += x[c]; c += 1 }
        return sum
    }
    while c + 16 <= d {
        if let ahead, c & aheadStep == 0, c &* W.bytes < aheadBytes { gpte_prefetch(ahead + c * W.bytes) }
        let u = sv * W.load8(w, c), v = sv * W.load8(w, c + 8)
        store(u, x + c); store(v, x + c + 8)
        a0 += u; a1 += v
        c += 16
    }
    if c + 8 <= d { let u = sv * W.load8(w, c); store(u, x + c); a0 += u; c += 8 }
    var sum = hsum(a0 + a1)
    while c < d { x[c] = s * W.load1(w, c); sum += x[c]; c += 1 }
    return sum
}

/// `dy` of the next eight columns: `dout` through the dropout mask (`stream` is `nil`
/// without dropout).
@inline(__always)
func maskedGradient(_ g: UnsafePointer<Float>, _ c: Int, _ stream: inout MaskStream?, _ keepScale: Vec) -> Vec {
    let v = load(g + c)
    guard var s = stream else { return v }
    let keep = s.next()
    stream = s
    return (v * keepScale).replacing(with: 0, where: .!keep)
}

/// The scalar form of ``maskedGradient(_:_:_:_:)`` for tail columns.
@inline(__always)
func maskedGradient1(_ g: UnsafePointer<Float>, _ c: Int, _ mask: Dropout?, _ key: UInt32) -> Float {
    guard let mask else { return g[c] }
    return mask.keep(rowKey: key, column: c) ? g[c] * mask.keepScale : 0
}
