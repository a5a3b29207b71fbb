/// How a vocabulary of `V` rows is split into `world` contiguous shards, one per rank (the
/// split of Megatron-LM's `VocabParallelEmbedding`): rank `r` holds rows
/// `[start(r), end(r))` and the ranges of ranks `0 ..< world` tile `[0, V)` in order.
public enum VocabShardRule: Int32, Sendable, CaseIterable, CustomStringConvertible {
    /// Sizes differ by at most one row: the first `V % world` ranks hold `V / world + 1`
    /// rows, the others `V / world`. Works for any `V >= world`.
    case balanced = 0
    /// Megatron-LM's rule: every rank holds `V / world` rows, which requires the
    /// vocabulary to be padded to a multiple of `world` first (Megatron pads it to a
    /// multiple of `make_vocab_size_divisible_by * world`; the padding rows are never
    /// looked up).
    case megatron = 1

    /// The rule's name, as Python spells it: `balanced` or `megatron`.
    public var description: String {
        switch self {
        case .balanced: "balanced"
        case .megatron: "megatron"
        }
    }
}

/// The split of a vocabulary over ranks (see ``VocabShardRule``).
public enum VocabShard {
    /// The rows rank `rank` of `world` holds under `rule`.
    ///
    /// - Throws: `invalidArgument` naming the bad value: `world < 1`, `rank` outside
    ///   `[0, world)`, `vocabSize < 1`, more ranks than rows (a rank would hold nothing), or a
    ///   vocabulary that the Megatron rule cannot split equally.
    public static func range(vocabSize: Int, rank: Int, world: Int, rule: VocabShardRule = .balanced) throws(GPTEmbeddingError) -> Range<Int> {
        guard world >= 1 else {
            throw GPTEmbeddingError(.invalidArgument, "shard world = \(world): must be >= 1")
        }
        guard rank >= 0, rank < world else {
            throw GPTEmbeddingError(.invalidArgument, "shard rank = \(rank): must be in [0, \(world)) for a world of \(world)")
        }
        guard vocabSize >= 1 else {
            throw GPTEmbeddingError(.invalidArgument, "vocab_size = \(vocabSize): must be >= 1")
        }
        guard world <= vocabSize else {
            throw GPTEmbeddingError(.invalidArgument, "shard world = \(world) is larger than vocab_size = \(vocabSize): some ranks would hold no row")
        }
        switch rule {
        case .balanced:
            let base = vocabSize / world, extra = vocabSize % world
            let start = rank * base + min(rank, extra)
            return start..<(start + base + (rank < extra ? 1 : 0))
        case .megatron:
            guard vocabSize % world == 0 else {
                throw GPTEmbeddingError(.invalidArgument, "the megatron shard rule needs vocab_size divisible by the world: \(vocabSize) % \(world) = \(vocabSize % world) (pad the vocabulary to a multiple of \(world), or use the balanced rule)")
            }
            let per = vocabSize / world
            return (rank * per)..<((rank + 1) * per)
        }
    }
}
