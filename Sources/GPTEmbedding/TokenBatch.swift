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
    /// `[batch * seq]` token rows, each in `[0, vocabSize)`.
    let ids: Int32Buffer
    /// `[batch * seq]` explicit positions, or `nil` for `start + t`.
    let positions: Int32Buffer?
    /// The position of `t == 0` when `positions` is `nil`.
    let start: Int

    var count: Int { batch * seq }

    /// The position of flat token `r`.
    @inline(__always)
    func position(_ r: Int) -> Int {
        if let positions { return Int(positions.base[r]) }
        return start + r % seq
    }

    /// The largest position used, for sizing checks.
    var byteCount: Int { ids.byteCount + (positions?.byteCount ?? 0) }

    /// Checks shapes, ids and positions and copies them into 32-bit buffers.
    ///
    /// - Parameters:
    ///   - vocabSize: ids must be in `[0, vocabSize)`.
    ///   - positionLimit: positions must be in `[0, positionLimit)`.
    ///   - positionRule: names the limit in messages, e.g. `max_seq_len, learned positions`.
    static func make<I: EmbeddingIndex>(
        ids: UnsafePointer<I>, batch: Int, seq: Int, positions: UnsafePointer<I>?, start: Int,
        vocabSize: Int, positionLimit: Int, positionRule: String
    ) throws(GPTEmbeddingError) -> TokenBatch {
        guard batch > 0 else { throw GPTEmbeddingError(.invalidArgument, "batch must be > 0, got \(batch)") }
        guard seq > 0 else { throw GPTEmbeddingError(.invalidArgument, "seq must be > 0, got \(seq)") }
        let n = try Checked.multiply(batch, seq, "batch * seq")
        let idBuf = try Int32Buffer(count: n, what: "token ids")
        for r in 0..<n {
            let v = ids[r]
            guard v >= 0, v < vocabSize else {
                throw GPTEmbeddingError(.outOfRange, "token id \(v) at [\(r / seq), \(r % seq)] is out of range [0, \(vocabSize))")
            }
            idBuf.base[r] = Int32(truncatingIfNeeded: v)
        }
        if let positions {
            let posBuf = try Int32Buffer(count: n, what: "positions")
            for r in 0..<n {
                let p = positions[r]
                guard p >= 0, p < positionLimit else {
                    throw GPTEmbeddingError(.outOfRange, "position \(p) at [\(r / seq), \(r % seq)] is out of range [0, \(positionLimit)) (\(positionRule))")
                }
                posBuf.base[r] = Int32(truncatingIfNeeded: p)
            }
            return TokenBatch(batch: batch, seq: seq, ids: idBuf, positions: posBuf, start: 0)
        }
        guard start >= 0 else {
            throw GPTEmbeddingError(.invalidArgument, "start_position must be >= 0, got \(start)")
        }
        // The last position is start + seq - 1; compare without overflowing.
        guard start < positionLimit, seq - 1 < positionLimit - start else {
            let t = start >= positionLimit ? 0 : positionLimit - start  // the first bad token
            throw GPTEmbeddingError(.outOfRange, "position \(start + t) at [0, \(t)] (start_position \(start) + \(t)) is out of range [0, \(positionLimit)) (\(positionRule))")
        }
        return TokenBatch(batch: batch, seq: seq, ids: idBuf, positions: nil, start: start)
    }
}
