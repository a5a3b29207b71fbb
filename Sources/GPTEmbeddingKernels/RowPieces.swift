import CMemoryHints

/// Pieces of a row that the forward and the backward share.

/// `x[0..<d] = s * w + p` (or `s * w` without positions), `w` a row of `W` elements and `p`
/// of `P` elements widened to float32; returns the sum of the written values.
///
/// The sum runs in four independent chains of eight lanes (32 columns a step): one chain
/// would wait on the adder's latency every 8 columns, and this loop is the forward's
/// critical path. The order is fixed by this code: `hsum((a0 + a1) + (a2 + a3))`, then
/// the tail in column order.
@inline(__always)
func gather<W: RowElement, P: RowElement>(_ x: UnsafeMutablePointer<Float>, _ w: UnsafeRawPointer, _ p: UnsafeRawPointer?,
                                          _ s: Float, _ d: Int, _: W.Type, _: P.Type,
                                          ahead: UnsafeRawPointer? = nil, aheadBytes: Int = .max) -> Float {
    let sv = Vec(repeating: s)
    var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec()
    var c = 0
    // A line (64 bytes) of the row ahead per 16 columns of float32, 32 of 16-bit elements.
    let step = W.bytes == 4 ? 16 : 32
    @inline(__always) func ask(_ c: Int) {
        if let ahead, c &* W.bytes < aheadBytes { gpte_prefetch_l2(ahead + c &* W.bytes) }
    }
    if let p {
        @inline(__always) func x8(_ c: Int) -> Vec { sv * W.load8(w, c) + P.load8(p, c) }
        while c &+ 32 <= d {
            ask(c); if step == 16 { ask(c &+ 16) }
            let u0 = x8(c), u1 = x8(c &+ 8), u2 = x8(c &+ 16), u3 = x8(c &+ 24)
            store(u0, x + c); store(u1, x + (c &+ 8)); store(u2, x + (c &+ 16)); store(u3, x + (c &+ 24))
            a0 += u0; a1 += u1; a2 += u2; a3 += u3
            c &+= 32
        }
        if c &+ 16 <= d { ask(c); let u0 = x8(c), u1 = x8(c &+ 8); store(u0, x + c); store(u1, x + (c &+ 8)); a0 += u0; a1 += u1; c &+= 16 }
        if c &+ 8 <= d { let u = x8(c); store(u, x + c); a0 += u; c &+= 8 }
        var sum = hsum((a0 + a1) + (a2 + a3))
        while c < d { x[c] = s * W.load1(w, c) + P.load1(p, c); sum += x[c]; c += 1 }
        return sum
    }
    @inline(__always) func x8(_ c: Int) -> Vec { sv * W.load8(w, c) }
    while c &+ 32 <= d {
        ask(c); if step == 16 { ask(c &+ 16) }
        let u0 = x8(c), u1 = x8(c &+ 8), u2 = x8(c &+ 16), u3 = x8(c &+ 24)
        store(u0, x + c); store(u1, x + (c &+ 8)); store(u2, x + (c &+ 16)); store(u3, x + (c &+ 24))
        a0 += u0; a1 += u1; a2 += u2; a3 += u3
        c &+= 32
    }
    if c &+ 16 <= d { ask(c); let u0 = x8(c), u1 = x8(c &+ 8); store(u0, x + c); store(u1, x + (c &+ 8)); a0 += u0; a1 += u1; c &+= 16 }
    if c &+ 8 <= d { let u = x8(c); store(u, x + c); a0 += u; c &+= 8 }
    var sum = hsum((a0 + a1) + (a2 + a3))
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

/// ``maskedGradient(_:_:_:_:)`` for a row of `G` elements (a 16-bit gradient is widened
/// exactly as it is read).
@inline(__always)
func maskedGradient<G: RowElement>(_ g: UnsafeRawPointer, _ c: Int, _: G.Type, _ stream: inout MaskStream?,
                                   _ keepScale: Vec) -> Vec {
    let v = G.load8(g, c)
    guard var s = stream else { return v }
    let keep = s.next()
    stream = s
    return (v * keepScale).replacing(with: 0, where: .!keep)
}

/// The scalar form of ``maskedGradient(_:_:_:_:_:)`` for tail columns.
@inline(__always)
func maskedGradient1<G: RowElement>(_ g: UnsafeRawPointer, _ c: Int, _: G.Type, _ mask: Dropout?, _ key: UInt32) -> Float {
    guard let mask else { return G.load1(g, c) }
    return mask.keep(rowKey: key, column: c) ? G.load1(g, c) * mask.keepScale : 0
}

/// The scalar form of ``maskedGradient(_:_:_:_:)`` for tail columns.
@inline(__always)
func maskedGradient1(_ g: UnsafePointer<Float>, _ c: Int, _ mask: Dropout?, _ key: UInt32) -> Float {
    guard let mask else { return g[c] }
    return mask.keep(rowKey: key, column: c) ? g[c] * mask.keepScale : 0
}
