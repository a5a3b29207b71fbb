/// What AdamW keeps for one parameter: its step count, both moments and, for a bfloat16 or
/// float16 table, the float32 master copy the updates accumulate in (the stored table is
/// that copy rounded to nearest even after every step).
///
/// Allocated on the first step that updates the parameter (or when the state is asked for
/// or restored); counted in ``GPTEmbedding/memoryBytes``.
public final class AdamWState: @unchecked Sendable {
    /// Steps taken on this parameter (PyTorch's `state['step']`); bias corrections use it.
    /// Settable to restore a saved state.
    public var step: Int64 = 0
    let expAvg: FloatBuffer
    let expAvgSq: FloatBuffer
    /// Present for 16-bit tables.
    let master: FloatBuffer?

    init(count: Int, name: String, needsMaster: Bool) throws(GPTEmbeddingError) {
        expAvg = try FloatBuffer(count: count, what: "\(name) exp_avg")
        expAvgSq = try FloatBuffer(count: count, what: "\(name) exp_avg_sq")
        master = needsMaster ? try FloatBuffer(count: count, zeroed: false, what: "\(name) master weights") : nil
    }

    /// The first moment (`exp_avg`), zero-copy; valid while the state lives.
    public var firstMoment: UnsafeMutableBufferPointer<Float> { expAvg.buffer }
    /// The second moment (`exp_avg_sq`), zero-copy.
    public var secondMoment: UnsafeMutableBufferPointer<Float> { expAvgSq.buffer }
    /// The float32 master weights of a 16-bit table (`nil` for float32 parameters).
    public var masterWeights: UnsafeMutableBufferPointer<Float>? { master?.buffer }

    /// Bytes owned.
    var byteCount: Int { expAvg.byteCount + expAvgSq.byteCount + (master?.byteCount ?? 0) }

    /// One of the state tensors.
    public enum Kind: Int32, Sendable, CaseIterable {
        /// `exp_avg`.
        case expAvg = 0
        /// `exp_avg_sq`.
        case expAvgSq = 1
        /// The float32 master weights (16-bit tables only).
        case master = 2

        /// The suffix of the tensor's name in a checkpoint and in `state_dict()`.
        public var name: String {
            switch self {
            case .expAvg: "exp_avg"
            case .expAvgSq: "exp_avg_sq"
            case .master: "master"
            }
        }
    }

    /// One state tensor, zero-copy (`nil`: the master of a float32 parameter).
    public func tensor(_ kind: Kind) -> UnsafeMutableBufferPointer<Float>? { buffer(kind)?.buffer }

    func buffer(_ kind: Kind) -> FloatBuffer? {
        switch kind {
        case .expAvg: expAvg
        case .expAvgSq: expAvgSq
        case .master: master
        }
    }
}
