import Dispatch
import GPTEmbedding
import Testing

/// The concurrency contract, exercised so that the thread sanitizer (`make reliability`)
/// can see it: eval forwards on one layer from several threads; independent layers trained
/// in parallel.
@Suite struct ConcurrencyTests {
    @Test func evalForwardsOnOneLayerFromManyThreads() throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 500, dim: 64, maxSeqLen: 64, dropout: 0.1, threads: 2))
        var rng = TestRandom(4)
        let ids = (0..<(4 * 64)).map { _ in Int32(rng.int(500)) }
        let expected = try layer.forward(ids: ids, batch: 4, seq: 64, useLayerNorm: true)
        let results = Results(count: 8)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for _ in 0..<20 {
                let y = try? layer.forward(ids: ids, batch: 4, seq: 64, useLayerNorm: true)
                results.set(i, y == expected)
            }
        }
        #expect(results.all)
    }

    @Test func independentLayersTrainInParallel() throws {
        var rng = TestRandom(8)
        let ids = (0..<(2 * 32)).map { _ in Int32(rng.int(300)) }
        let g = rng.floats(ids.count * 32)
        @Sendable func train(_ layer: GPTEmbedding) throws -> [[Float]] {
            for _ in 0..<5 {
                _ = try layer.forward(ids: ids, batch: 2, seq: 32, training: true, useLayerNorm: true)
                try layer.backward(gradOutput: g, batch: 2, seq: 32)
            }
            return layer.parameters.map(\.gradient)
        }
        let configs = (0..<4).map { i -> GPTEmbeddingConfig in
            var c = smallConfig(vocab: 300, dim: 32, maxSeqLen: 32, dropout: 0.1, threads: 1)
            c.seed = UInt64(i)
            return c
        }
        let sequential = try configs.map { try train(GPTEmbedding(config: $0)) }
        let parallel = Results(count: 4)
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let grads = (try? GPTEmbedding(config: configs[i])).flatMap { try? train($0) }
            parallel.set(i, grads == sequential[i])
        }
        #expect(parallel.all)
    }
}

/// Per-thread results, written from concurrent closures.
final class Results: @unchecked Sendable {
    private var values: [Bool]
    private let lock = DispatchQueue(label: "results")
    init(count: Int) { values = [Bool](repeating: true, count: count) }
    func set(_ i: Int, _ ok: Bool) { lock.sync { values[i] = values[i] && ok } }
    var all: Bool { lock.sync { values.allSatisfy { $0 } } }
}
