import GPTEmbeddingKernels

/// The fixed sinusoidal position table of Vaswani et al. (2017, section 3.5).
///
/// Channel `c` of position `pos`:
/// - even `c`: `sin(pos * 10000^(-c / D))`
/// - odd `c`:  `cos(pos * 10000^(-(c - 1) / D))`
///
/// so the channel pair `(2i, 2i + 1)` shares the frequency `10000^(-2i/D)`. For odd `D`
/// the last channel is a lone sin channel with exponent `(D - 1) / D`: the formula is
/// applied as written and nothing is padded. Values are computed in double precision and
/// rounded to float. Rows up to `maxSeqLen` are cached; later positions (the seed promises
/// sequences longer than training) are computed on demand.
public struct SinusoidalPositionalEmbedding: @unchecked Sendable {
    /// Rows kept in the cached table.
    public let maxSeqLen: Int
    /// Width `D`.
    public let embedDim: Int
    let table: FloatBuffer

    /// Builds the cached table `[maxSeqLen, embedDim]`.
    public init(maxSeqLen: Int, embedDim: Int) throws(GPTEmbeddingError) {
        guard maxSeqLen >= 0, embedDim > 0 else {
            throw GPTEmbeddingError(.invalidArgument, "sinusoidal table needs max_seq_len >= 0 and embed_dim > 0, got \(maxSeqLen), \(embedDim)")
        }
        self.maxSeqLen = maxSeqLen
        self.embedDim = embedDim
        table = try FloatBuffer(count: Checked.multiply(max(maxSeqLen, 1), embedDim, "sinusoidal table size"), what: "sinusoidal table")
        Self.fill(start: 0, count: maxSeqLen, embedDim: embedDim, into: table.base)
    }

    /// The largest position this encoding accepts (positions are 32-bit).
    public static let maxPosition = Int(Int32.max)

    /// Rows `startPosition ..< startPosition + seqLen`, `[seqLen, embedDim]`.
    public func forward(seqLen: Int, startPosition: Int = 0) throws(GPTEmbeddingError) -> [Float] {
        var out = [Float](repeating: 0, count: try Checked.multiply(max(seqLen, 0), embedDim, "sinusoidal output size"))
        try out.withUnsafeMutableBufferPointer { (o) throws(GPTEmbeddingError) in
            try Self.table(start: startPosition, count: seqLen, embedDim: embedDim, into: o)
        }
        return out
    }

    /// Writes the rows of positions `start ..< start + count` into `out [count, embedDim]`
    /// (`out.count >= count * embedDim`) without building a table.
    public static func table(start: Int, count: Int, embedDim: Int, into out: UnsafeMutableBufferPointer<Float>) throws(GPTEmbeddingError) {
        guard count > 0 else { throw GPTEmbeddingError(.invalidArgument, "num_positions must be > 0, got \(count)") }
        guard embedDim > 0 else { throw GPTEmbeddingError(.invalidArgument, "embed_dim must be > 0, got \(embedDim)") }
        guard start >= 0 else { throw GPTEmbeddingError(.invalidArgument, "start_position must be >= 0, got \(start)") }
        let need = try Checked.multiply(count, embedDim, "num_positions * embed_dim")
        guard start <= maxPosition, count - 1 <= maxPosition - start else {
            throw GPTEmbeddingError(.outOfRange, "positions \(start) ..< \(start) + \(count) go past the largest position \(maxPosition)")
        }
        try ParameterTensor.checkCapacity(out.count, need, "the sinusoidal table")
        guard let base = out.baseAddress else { return }  // unreachable: capacity >= need > 0
        fill(start: start, count: count, embedDim: embedDim, into: base)
    }

    /// Writes the row of position `p` into `out[0..<embedDim]`, from the cache when possible.
    @inline(__always)
    func row(_ p: Int, into out: UnsafeMutablePointer<Float>) {
        if p < maxSeqLen {
            out.update(from: table.base + p * embedDim, count: embedDim)
        } else {
            Self.fill(start: p, count: 1, embedDim: embedDim, into: out)
        }
    }

    /// The cached row of position `p`, or `nil` past the cache.
    @inline(__always)
    func cachedRow(_ p: Int) -> UnsafePointer<Float>? {
        p < maxSeqLen ? UnsafePointer(table.base + p * embedDim) : nil
    }

    /// Writes rows `start ..< start + count` into `out[count, embedDim]`.
    static func fill(start: Int, count: Int, embedDim d: Int, into out: UnsafeMutablePointer<Float>) {
        SinusoidalFill.fill(start: start, count: count, embedDim: d, into: out)
    }
}
