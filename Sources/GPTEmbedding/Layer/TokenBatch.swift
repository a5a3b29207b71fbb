/// Integer types accepted as token ids and positions: `Int32` (as llm.c and ggml use),
/// `Int64` (numpy's and PyTorch's default) and `Int`.
public protocol EmbeddingIndex: FixedWidthInteger, Sendable {}
extension Int32: EmbeddingIndex {}
extension Int64: EmbeddingIndex {}
extension Int: EmbeddingIndex {}

/// The validated ids and positions of one forward call, as 32-bit rows.
///
/// Building one checks every id and position before anything is written, and the result
/// is what a training forward keeps for backward.
struct TokenBatch: @unchecked Sendable {
    let batch: Int
    let seq: Int
    /// `[batch * seq]` token rows, each in `[0, vocabSize)`: the caller's int32 ids
    /// (eval calls), or a copy owned by `idStorage`.
    let ids: UnsafePointer<Int32>
    /// `[batch * seq]` explicit positions as table rows (position + the layer's offset), or
    /// `nil` for `start + t` (`start` is then a row too).
    let positions: UnsafePointer<Int32>?
    /// Keep copies alive (training state); `nil` when `ids` / `positions` are the caller's.
    let idStorage: Int32Buffer?
    let positionStorage: Int32Buffer?
    /// The position of `t == 0` when `positions` is `nil`.
    let start: Int

    var count: Int { batch * seq }

    /// The position of flat token `r`.
    @inline(__always)
    func position(_ r: Int) -> Int {
        if let positions { return Int(positions[r]) }
        return start + r % seq
    }

    /// Bytes owned (the copies a training forward keeps).
    var byteCount: Int { (idStorage?.byteCount ?? 0) + (positionStorage?.byteCount ?? 0) }

    /// `batch * seq`, after checking that neither is negative and the product fits. 0 (an
    /// empty call, which reads and writes nothing) is valid. Callers check every buffer size
    /// that follows from it before ``make`` reads the ids: the caller's `ids` has exactly
    /// that many elements, so it is read last.
    static func count(batch: Int, seq: Int) throws(GPTEmbeddingError) -> Int {
        guard batch >= 0 else { throw GPTEmbeddingError(.invalidArgument, "batch must be >= 0, got \(batch)") }
        guard seq >= 0 else { throw GPTEmbeddingError(.invalidArgument, "seq must be >= 0, got \(seq)") }
        return try Checked.multiply(batch, seq, "batch * seq")
    }

    /// A non-null address standing for the array of an empty call (`batch * seq == 0`),
    /// whose caller may pass none: it is never read or written.
    static func placeholder<T>(_: T.Type = T.self) -> UnsafeMutablePointer<T> {
        UnsafeMutablePointer(bitPattern: MemoryLayout<T>.alignment).unsafelyUnwrapped
    }

    /// Checks shapes, ids and positions. With `copy` (a training forward, which keeps them)
    /// or non-int32 input they are copied into owned 32-bit buffers; otherwise the
    /// caller's arrays are used in place for the duration of the call.
    ///
    /// - Parameters:
    ///   - vocabSize: ids must be in `[0, vocabSize)`.
    ///   - positionLimit: positions must be in `[0, positionLimit)`.
    ///   - positionRule: names the limit in messages, e.g. `max_seq_len, learned positions`.
    static func make<I: EmbeddingIndex>(
        ids: UnsafePointer<I>, batch: Int, seq: Int, positions: UnsafePointer<I>?, start: Int,
        vocabSize: Int, positionLimit: Int, positionRule: String, positionOffset: Int = 0, copy: Bool
    ) throws(GPTEmbeddingError) -> TokenBatch {
        // Callers outside this module (the C shims, Swift users) reach this generic function
        // unspecialised, where every element access goes through the protocol: hand the
        // common types to their specialised copies (measured: int64 ids 3x slower without).
        if I.self == Int32.self {
            return try makeTyped(ids: rebound(ids, Int32.self), batch: batch, seq: seq,
                                 positions: positions.map { rebound($0, Int32.self) }, start: start, vocabSize: vocabSize,
                                 positionLimit: positionLimit, positionRule: positionRule, offset: positionOffset, copy: copy)
        }
        if I.self == Int64.self || (I.self == Int.self && MemoryLayout<Int>.size == 8) {
            return try makeTyped(ids: rebound(ids, Int64.self), batch: batch, seq: seq,
                                 positions: positions.map { rebound($0, Int64.self) }, start: start, vocabSize: vocabSize,
                                 positionLimit: positionLimit, positionRule: positionRule, offset: positionOffset, copy: copy)
        }
        return try makeTyped(ids: ids, batch: batch, seq: seq, positions: positions, start: start, vocabSize: vocabSize,
                             positionLimit: positionLimit, positionRule: positionRule, offset: positionOffset, copy: copy)
    }

    /// ``make(ids:batch:seq:positions:start:vocabSize:positionLimit:positionRule:copy:)``,
    /// specialised by the compiler for each concrete `I` it is called with here.
    @inline(__always)
    private static func makeTyped<I: EmbeddingIndex>(
        ids: UnsafePointer<I>, batch: Int, seq: Int, positions: UnsafePointer<I>?, start: Int,
        vocabSize: Int, positionLimit: Int, positionRule: String, offset: Int, copy: Bool
    ) throws(GPTEmbeddingError) -> TokenBatch {
        let n = try count(batch: batch, seq: seq)
        // Positions are kept as table rows (position + offset): with an offset they are copied.
        let inPlace = !copy && I.self == Int32.self && offset == 0
        // Valid positions: rows [0, positionLimit) less the offset.
        let lo = -offset, hi = positionLimit - offset
        let rule = offset == 0 ? positionRule : "\(positionRule), position_offset \(offset)"
        for r in 0..<n {
            let v = ids[r]
            guard v >= 0, v < vocabSize else {
                throw GPTEmbeddingError(.outOfRange, "token id \(v) at [\(r / seq), \(r % seq)] is out of range [0, \(vocabSize))")
            }
        }
        if let positions {
            for r in 0..<n {
                let p = positions[r]
                guard p >= lo, p < hi else {
                    throw GPTEmbeddingError(.outOfRange, "position \(p) at [\(r / seq), \(r % seq)] is out of range [\(lo), \(hi)) (\(rule))")
                }
            }
            if inPlace {
                return TokenBatch(batch: batch, seq: seq, ids: rebound(ids), positions: rebound(positions),
                                  idStorage: nil, positionStorage: nil, start: 0)
            }
            let idBuf = try copied(ids, n, "token ids"), posBuf = try copied(positions, n, "positions", plus: offset)
            return TokenBatch(batch: batch, seq: seq, ids: idBuf.base, positions: posBuf.base,
                              idStorage: idBuf, positionStorage: posBuf, start: 0)
        }
        guard start >= 0 else {
            throw GPTEmbeddingError(.invalidArgument, "start_position must be >= 0, got \(start)")
        }
        // An empty call reads no position: any start_position >= 0 will do.
        if n == 0 {
            return TokenBatch(batch: batch, seq: seq, ids: placeholder(), positions: nil, idStorage: nil,
                              positionStorage: nil, start: 0)
        }
        // The last position is start + seq - 1; compare without overflowing.
        guard start < hi, seq - 1 < hi - start else {
            let t = start >= hi ? 0 : hi - start  // the first bad token
            throw GPTEmbeddingError(.outOfRange, "position \(start + t) at [0, \(t)] (start_position \(start) + \(t)) is out of range [\(lo), \(hi)) (\(rule))")
        }
        // A negative offset also needs the first row, start + offset, to exist.
        guard start + offset >= 0 else {
            throw GPTEmbeddingError(.outOfRange, "position \(start) at [0, 0] is out of range [\(lo), \(hi)) (\(rule))")
        }
        if !copy && I.self == Int32.self {
            return TokenBatch(batch: batch, seq: seq, ids: rebound(ids), positions: nil, idStorage: nil, positionStorage: nil,
                              start: start + offset)
        }
        let idBuf = try copied(ids, n, "token ids")
        return TokenBatch(batch: batch, seq: seq, ids: idBuf.base, positions: nil, idStorage: idBuf, positionStorage: nil,
                          start: start + offset)
    }

    /// Validated values as an owned int32 buffer.
    private static func copied<I: EmbeddingIndex>(_ p: UnsafePointer<I>, _ n: Int, _ what: String, plus offset: Int = 0) throws(GPTEmbeddingError) -> Int32Buffer {
        let buf = try Int32Buffer(count: n, what: what)
        for r in 0..<n { buf.base[r] = Int32(truncatingIfNeeded: Int(p[r]) + offset) }
        return buf
    }

    /// An int32 pointer seen as such (only called when `I` is `Int32`).
    private static func rebound<I: EmbeddingIndex>(_ p: UnsafePointer<I>) -> UnsafePointer<Int32> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Int32.self)
    }

    /// `p` as a pointer to `T`, which is `I` itself or a type of the same layout (`Int` and
    /// `Int64` on 64-bit platforms).
    private static func rebound<I: EmbeddingIndex, T>(_ p: UnsafePointer<I>, _: T.Type) -> UnsafePointer<T> {
        UnsafeRawPointer(p).assumingMemoryBound(to: T.self)
    }
}
