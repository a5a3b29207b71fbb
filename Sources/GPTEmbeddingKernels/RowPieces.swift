import CMemoryHints

/// Pieces of a row that the forward and the backward share.

/// `x[c0..<c1] = s * w + p` (or `s * w` without positions); returns the sum of the
/// written values. `c0` is a multiple of 8.
@inline(__always)
func gather(_ x: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ p: UnsafePointer<Float>?,
            _ s: Float, _ c0: Int, _ c1: Int, ahead: UnsafePointer<Float>? = nil) -> Float {
    let sv = Vec(repeating: s)
    var a0 = Vec(), a1 = Vec()
    var c = c0
    if let p {
        while c + 16 <= c1 {
            if let ahead { gpte_prefetch(ahead + c) }
            let u = sv * load(w + c) + load(p + c), v = sv * load(w + c + 8) + load(p + c + 8)
            store(u, x + c); store(v, x + c + 8)
            a0 += u; a1 += v
            c += 16
        }
        if c + 8 <= c1 { let u = sv * load(w + c) + load(p + c); store(u, x + c); a0 += u; c += 8 }
        var sum = hsum(a0 + a1)
        while c < c1 { x[c] = s * w[c] + p[c]; sum += x[c]; c += 1 }
        return sum
    }
    while c + 16 <= c1 {
        if let ahead { gpte_prefetch(ahead + c) }
        let u = sv * load(w + c), v = sv * load(w + c + 8)
        store(u, x + c); store(v, x + c + 8)
        a0 += u; a1 += v
        c += 16
    }
    if c + 8 <= c1 { let u = sv * load(w + c); store(u, x + c); a0 += u; c += 8 }
    var sum = hsum(a0 + a1)
    while c < c1 { x[c] = s * w[c]; sum += x[c]; c += 1 }
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
