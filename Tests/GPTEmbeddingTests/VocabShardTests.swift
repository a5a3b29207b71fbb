import Foundation
@testable import GPTEmbedding
import Testing

/// Vocabulary parallelism in one process: the all-reduce is simulated by summing the
/// partials of every shard layer, and every result is compared bit for bit with a layer
/// holding the whole table (the independent reference: the single-call forward).
@Suite struct VocabShardTests {
    /// The bits of a float array, so that -0.0 and 0.0 (and NaNs) are told apart.
    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    /// Elements whose bits differ: large arrays are compared by this count (a failed
    /// `#expect` on two large arrays spends minutes describing their difference).
    func differences(_ a: [Float], _ b: [Float]) -> Int {
        a.count != b.count ? max(a.count, b.count) : zip(a, b).reduce(0) { $0 + ($1.0.bitPattern != $1.1.bitPattern ? 1 : 0) }
    }

    @Test(arguments: [(1, 1), (7, 2), (11, 3), (50257, 8), (10, 10)])
    func balancedRangesTileTheVocabulary(vocab: Int, world: Int) throws {
        var next = 0
        for rank in 0..<world {
            let r = try VocabShard.range(vocabSize: vocab, rank: rank, world: world)
            #expect(r.lowerBound == next)
            #expect(r.count == vocab / world || r.count == vocab / world + 1)
            next = r.upperBound
        }
        #expect(next == vocab)
    }

    @Test func megatronRuleSplitsAPaddedVocabularyEqually() throws {
        // GPT-2's vocabulary padded as Megatron does (multiple of 128 * 8).
        let padded = 51200
        for rank in 0..<8 {
            #expect(try VocabShard.range(vocabSize: padded, rank: rank, world: 8, rule: .megatron) == rank * 6400..<(rank + 1) * 6400)
        }
        #expect(throws: GPTEmbeddingError.self) { try VocabShard.range(vocabSize: 50257, rank: 0, world: 8, rule: .megatron) }
    }

    @Test func badSplitsAreRefusedWithTheirValues() {
        for (v, r, w, text) in [(10, 0, 0, "world = 0"), (10, 3, 3, "rank = 3"), (10, -1, 2, "rank = -1"),
                                (3, 0, 4, "world = 4 is larger than vocab_size = 3"), (0, 0, 1, "vocab_size = 0")] {
            do {
                _ = try VocabShard.range(vocabSize: v, rank: r, world: w)
                Issue.record("accepted vocab \(v) rank \(r) world \(w)")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(text), "\(error.message)")
            }
        }
    }

    @Test func badShardRangesAreInvalidConfigs() {
        for shard in [3..<3, -1..<2, 5..<12] {
            var c = smallConfig(vocab: 11)
            c.vocabShard = shard
            do {
                _ = try GPTEmbedding(config: c)
                Issue.record("accepted shard \(shard)")
            } catch {
                #expect(error.code == .invalidConfig)
                #expect(error.message.contains("shard = [\(shard.lowerBound), \(shard.upperBound))"), "\(error.message)")
            }
        }
    }

    /// The shards' tables are the rows of the whole table made with the same seed (the
    /// padding row included), and the token gradient has the shard's shape.
    @Test func shardsInitialiseTheirRowsOfTheWholeTable() throws {
        var c = smallConfig(vocab: 11, dim: 20)
        c.paddingIdx = 5
        c.seed = 9
        let whole = try GPTEmbedding(config: c).tokenEmbedding.weight.values
        for rank in 0..<3 {
            c.vocabShard = try VocabShard.range(vocabSize: 11, rank: rank, world: 3)
            let layer = try GPTEmbedding(config: c)
            let r = c.vocabShard!
            #expect(layer.tokenEmbedding.weight.rows == r.count)
            #expect(bits(layer.tokenEmbedding.weight.values) == bits(Array(whole[r.lowerBound * 20..<r.upperBound * 20])))
            #expect(try c.parameterCounts().tokenEmbedding == r.count * 20)
        }
    }

    struct Case: CustomStringConvertible, Sendable {
        let positions: PositionEncoding
        let layerNorm: Bool
        let dropout: Float
        let dtype: TensorDType
        let explicitPositions: Bool
        var description: String { "\(positions) ln=\(layerNorm) p=\(dropout) \(dtype) explicit=\(explicitPositions)" }
    }

    static let cases: [Case] = [
        Case(positions: .learned, layerNorm: true, dropout: 0.2, dtype: .float32, explicitPositions: false),
        Case(positions: .learned, layerNorm: false, dropout: 0.2, dtype: .float32, explicitPositions: true),
        Case(positions: .sinusoidal, layerNorm: true, dropout: 0.1, dtype: .float32, explicitPositions: true),
        Case(positions: .sinusoidal, layerNorm: false, dropout: 0, dtype: .float32, explicitPositions: false),
        Case(positions: .none, layerNorm: true, dropout: 0.3, dtype: .float32, explicitPositions: false),
        Case(positions: .none, layerNorm: false, dropout: 0, dtype: .float32, explicitPositions: false),
        Case(positions: .learned, layerNorm: true, dropout: 0.1, dtype: .bfloat16, explicitPositions: false),
        Case(positions: .learned, layerNorm: false, dropout: 0.1, dtype: .float16, explicitPositions: true),
    ]

    /// Forward, backward and a second step of 1, 2 and 3 shards (vocabulary 37: no split is
    /// even) equal the whole layer bit for bit: outputs, position and layer norm gradients
    /// on every rank, and each rank's rows of the token gradient.
    @Test(arguments: cases)
    func shardsEqualTheWholeLayerBitForBit(_ k: Case) throws {
        let vocab = 37, dim = 24, batch = 3, seq = 9
        var c = smallConfig(vocab: vocab, dim: dim, maxSeqLen: 16, dropout: k.dropout, positions: k.positions, scale: true, threads: 2)
        c.weightDType = k.dtype
        c.paddingIdx = 4
        c.seed = 77
        var rng = TestRandom(5)
        for world in 1...3 {
            // A fresh reference per world: the dropout masks follow each layer's step count.
            let whole = try GPTEmbedding(config: c)
            let shards = try (0..<world).map { (rank) throws(GPTEmbeddingError) in
                var s = c
                s.vocabShard = try VocabShard.range(vocabSize: vocab, rank: rank, world: world)
                return try GPTEmbedding(config: s)
            }
            for step in 0..<2 {
                // Repeated ids (the padding id too) and, for explicit positions, left padding.
                var ids = (0..<(batch * seq)).map { _ in Int32(rng.int(vocab)) }
                ids[0] = 4; ids[1] = ids[2]
                let positions: [Int32]? = k.explicitPositions ? (0..<(batch * seq)).map { Int32(max(0, $0 % seq - $0 / seq)) } : nil
                let start = k.explicitPositions ? 0 : step * 3
                let ref = try whole.forward(ids: ids, batch: batch, seq: seq, positions: positions, startPosition: start,
                                            training: true, useLayerNorm: k.layerNorm)
                let partials = try shards.map { (s) throws(GPTEmbeddingError) in
                    try s.forwardPartial(ids: ids, batch: batch, seq: seq, positions: positions, startPosition: start,
                                         training: true, useLayerNorm: k.layerNorm)
                }
                // The all-reduce: summed in rank order, and in reverse order too.
                let sum = partials.dropFirst().reduce(partials[0]) { zip($0, $1).map { $0 + $1 } }
                let reversed = partials.dropLast().reversed().reduce(partials[world - 1]) { zip($0, $1).map { $0 + $1 } }
                #expect(bits(sum) == bits(reversed))
                for s in shards {
                    var x = sum
                    try s.forwardFinish(batch: batch, seq: seq, summed: &x)
                    #expect(bits(x) == bits(ref), "world \(world) step \(step) \(k)")
                }
                let dy = rng.floats(batch * seq * dim)
                whole.zeroGrad()
                try whole.backward(gradOutput: dy, batch: batch, seq: seq)
                let dwte = whole.tokenEmbedding.weight.gradient
                var touched: [Int32] = []
                for s in shards {
                    s.zeroGrad()
                    try s.backward(gradOutput: dy, batch: batch, seq: seq)
                    let r = s.config.heldTokenRows
                    #expect(bits(s.tokenEmbedding.weight.gradient) == bits(Array(dwte[r.lowerBound * dim..<r.upperBound * dim])))
                    for p in [s.layerNormWeight, s.layerNormBias] + (s.positionalEmbedding.map { [$0.weight] } ?? []) {
                        let q = whole.parameters.first { $0.name == p.name }!
                        #expect(bits(p.gradient) == bits(q.gradient), "\(p.name)")
                    }
                    touched += s.touchedTokenRows.map { $0 + Int32(r.lowerBound) }
                }
                #expect(touched == whole.touchedTokenRows)
            }
        }
    }

    /// A one-rank layer (the whole vocabulary) gives in two phases exactly the single call,
    /// eval and training, and its single call still works.
    @Test func wholeVocabularyTwoPhasesEqualOneCall() throws {
        var c = smallConfig(vocab: 50, dim: 19, dropout: 0.5, scale: true)
        c.vocabShard = 0..<50
        let a = try GPTEmbedding(config: c), b = try GPTEmbedding(config: c)
        let ids: [Int32] = [1, 2, 3, 49, 0, 7]
        for training in [false, true] {
            let one = try a.forward(ids: ids, batch: 2, seq: 3, startPosition: 5, training: training, useLayerNorm: true)
            var x = try b.forwardPartial(ids: ids, batch: 2, seq: 3, startPosition: 5, training: training, useLayerNorm: true)
            try b.forwardFinish(batch: 2, seq: 3, summed: &x)
            #expect(bits(x) == bits(one))
        }
    }

    @Test func badPhaseCallsChangeNothing() throws {
        var c = smallConfig(vocab: 10, dim: 8)
        c.vocabShard = 0..<5
        let layer = try GPTEmbedding(config: c)
        var x = [Float](repeating: 1, count: 2 * 3 * 8)
        // Phase two without phase one.
        do { try layer.forwardFinish(batch: 2, seq: 3, summed: &x); Issue.record("no phase one accepted") } catch {
            #expect(error.code == .badState)
        }
        #expect(x.allSatisfy { $0 == 1 })
        // A single call on a partial shard.
        do { _ = try layer.forward(ids: [Int32](repeating: 1, count: 6), batch: 2, seq: 3); Issue.record("single call on a shard") } catch {
            #expect(error.code == .badState)
            #expect(error.message.contains("[0, 5) of a vocabulary of 10"))
        }
        // An id outside the vocabulary (ids are global: 7 is fine, 10 is not).
        do { _ = try layer.forwardPartial(ids: [Int32(7), 10, 1, 2, 3, 4], batch: 2, seq: 3); Issue.record("id 10 accepted") } catch {
            #expect(error.code == .outOfRange)
            #expect(error.message.contains("token id 10 at [0, 1]"))
        }
        #expect(!layer.hasPendingForward)
        var p = try layer.forwardPartial(ids: [Int32(7), 9, 1, 2, 3, 4], batch: 2, seq: 3, training: true)
        // Tokens 7 and 9 belong to another shard: -0.0 rows.
        #expect(p[0..<16].allSatisfy { $0.bitPattern == (-Float(0)).bitPattern })
        // Phase two with another shape: refused, phase one still pending, buffer untouched.
        let before = p
        do { try layer.forwardFinish(batch: 3, seq: 2, summed: &p); Issue.record("other shape accepted") } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("[3, 2, 8] differs from phase one's [2, 3, 8]"))
        }
        #expect(bits(p) == bits(before))
        #expect(layer.hasPendingForward && !layer.hasTrainingState)
        try layer.forwardFinish(batch: 2, seq: 3, summed: &p)
        #expect(!layer.hasPendingForward && layer.hasTrainingState)
    }

    /// Opening rank r of w reads exactly the rows of the whole table, read or mapped, and a
    /// shard that does not fit the checkpoint is refused.
    @Test(arguments: [false, true])
    func openReadsOnlyTheShardRows(mmap: Bool) throws {
        let c = smallConfig(vocab: 23, dim: 16)
        let source = try GPTEmbedding(config: c)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("shard-\(getpid())-\(mmap).safetensors").path
        defer { unlink(path) }
        try source.saveSafetensors(path: path)
        let whole = source.tokenEmbedding.weight.values
        for rank in 0..<4 {
            var o = OpenOptions()
            o.mmap = mmap
            o.shardWorld = 4
            o.shardRank = rank
            let layer = try GPTEmbedding(contentsOf: path, options: o)
            let r = try VocabShard.range(vocabSize: 23, rank: rank, world: 4)
            #expect(layer.config.vocabSize == 23 && layer.config.vocabShard == r)
            #expect(layer.tokenEmbedding.weight.isMapped == mmap)
            #expect(bits(layer.tokenEmbedding.weight.values) == bits(Array(whole[r.lowerBound * 16..<r.upperBound * 16])))
            #expect(bits(layer.positionalEmbedding!.weight.values) == bits(source.positionalEmbedding!.weight.values))
        }
        for (rank, world, rule, text) in [(0, 24, VocabShardRule.balanced, "world = 24 is larger than vocab_size = 23"),
                                          (2, 2, .balanced, "rank = 2"), (0, 2, .megatron, "23 % 2 = 1")] {
            var o = OpenOptions()
            o.shardRank = rank
            o.shardWorld = world
            o.shardRule = rule
            do { _ = try GPTEmbedding(contentsOf: path, options: o); Issue.record("accepted \(rank)/\(world)") } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(text) && error.message.contains("23 rows"), "\(error.message)")
            }
        }
    }
}

extension VocabShardTests {
    /// Outputs large enough for the streaming stores (over 2^21 floats), on several
    /// threads: the two phases still equal the single call bit for bit. (The single call
    /// streams its output; phase two writes in place with ordinary stores, the rows being
    /// in cache.)
    @Test func largeStreamedOutputsEqualTheWholeLayer() throws {
        let vocab = 1000, dim = 256, batch = 2, seq = 300
        var c = smallConfig(vocab: vocab, dim: dim, maxSeqLen: seq, dropout: 0.1, scale: true, threads: 2)
        c.seed = 3
        // Streamed outputs (2M floats or more) without a call that large: the layers'
        // threshold is lowered below this call's output.
        let whole = try GPTEmbedding(config: c)
        whole.streamingThreshold = 4096
        var rng = TestRandom(8)
        let ids = (0..<(batch * seq)).map { _ in Int32(rng.int(vocab)) }
        let ref = try whole.forward(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: true)
        var sum = [Float](repeating: -0.0, count: ref.count)
        let shards = try (0..<2).map { (rank) throws(GPTEmbeddingError) in
            var s = c
            s.vocabShard = try VocabShard.range(vocabSize: vocab, rank: rank, world: 2)
            let shard = try GPTEmbedding(config: s)
            shard.streamingThreshold = 4096
            return shard
        }
        for s in shards {
            let p = try s.forwardPartial(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: true)
            for i in sum.indices { sum[i] += p[i] }
        }
        for s in shards {
            var x = sum
            try s.forwardFinish(batch: batch, seq: seq, summed: &x)
            #expect(bits(x) == bits(ref))
        }
    }
}

extension VocabShardTests {
    /// Phase two in place, split over two workers and over chunks, for two training steps in
    /// a row (the second reuses the summed part the first kept), with an eval call between
    /// them: outputs and gradients equal a layer taking single calls, bit for bit. Cases:
    /// layer norm with dropout (the summed part kept), dropout without the layer norm
    /// (nothing kept), sinusoidal positions with `D` odd (the second worker's rows start
    /// off a 16-byte boundary: the streaming copy's unaligned ends). (Debug builds are slow: 1-4 threads run in Tests/python/test_shard.py.)
    @Test(arguments: [(true, 0.1 as Float, PositionEncoding.learned, 64), (false, 0.1, .learned, 64),
                      (true, 0.2, .sinusoidal, 29)])
    func phaseTwoSplitOverWorkersEqualsTheSingleCall(layerNorm: Bool, dropout: Float, positions: PositionEncoding, dim: Int) throws {
        // A part needs 2^18 elements: 2 x 4096 tokens of 64 split in two; 18,079 tokens of
        // 29 split at token 9,039, whose row starts 12 bytes past a 16-byte boundary.
        let vocab = 300, (batch, seq) = dim == 64 ? (2, 4096) : (1, 18079)
        for threads in [2] {
            var c = smallConfig(vocab: vocab, dim: dim, maxSeqLen: seq, dropout: dropout, positions: positions, scale: true, threads: threads)
            c.seed = 11
            let one = try GPTEmbedding(config: c), two = try GPTEmbedding(config: c)
            var rng = TestRandom(UInt64(threads))
            for step in 0..<2 {
                let ids = (0..<(batch * seq)).map { _ in Int32(rng.int(vocab)) }
                if step == 1 {
                    // An eval call in between: it keeps nothing and frees nothing kept.
                    let ref = try one.forward(ids: ids, batch: batch, seq: seq, useLayerNorm: layerNorm)
                    var x = try two.forwardPartial(ids: ids, batch: batch, seq: seq, useLayerNorm: layerNorm)
                    try two.forwardFinish(batch: batch, seq: seq, summed: &x)
                    #expect(differences(x, ref) == 0, "eval, threads \(threads)")
                }
                let ref = try one.forward(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: layerNorm)
                var x = try two.forwardPartial(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: layerNorm)
                try two.forwardFinish(batch: batch, seq: seq, summed: &x)
                #expect(differences(x, ref) == 0, "threads \(threads) step \(step)")
                let dy = rng.floats(batch * seq * dim)
                for layer in [one, two] {
                    layer.zeroGrad()
                    try layer.backward(gradOutput: dy, batch: batch, seq: seq)
                }
                for (p, q) in zip(one.parameters, two.parameters) {
                    #expect(differences(p.gradient, q.gradient) == 0, "\(p.name), threads \(threads) step \(step)")
                }
            }
        }
    }
}
