import Dispatch
import Testing
@testable import GPTEmbedding

/// The backward without the layer norm splits its tokens among the workers by position
/// range (`ScatterPlan`, `scatterOwnedRows`); ids whose tokens fall to several workers are
/// added in column parts. These calls are large enough to be split (a part needs 256 Ki
/// elements), and each gradient is checked bit for bit against a token-order float32 sum
/// written out here and against the same call on one thread.
@Suite struct ScatterOwnershipTests {
    static let dim = 256, vocab = 3000

    /// Gradients of a training forward + backward (no layer norm) on `threads` threads.
    func gradients(ids: [Int32], batch: Int, seq: Int, positions: [Int32]?, threads: Int, dropout: Float = 0,
                   paddingIdx: Int? = nil, sinusoidal: Bool = false, dout: [Float]) throws -> [[Float]] {
        var c = smallConfig(vocab: Self.vocab, dim: Self.dim, maxSeqLen: 1024, dropout: dropout,
                            positions: sinusoidal ? .sinusoidal : .learned, threads: threads)
        c.paddingIdx = paddingIdx
        c.seed = 77
        let layer = try GPTEmbedding(config: c)
        _ = try layer.forward(ids: ids, batch: batch, seq: seq, positions: positions, training: true, useLayerNorm: false)
        try layer.backward(gradOutput: dout, batch: batch, seq: seq)
        // A second step adds to the first.
        _ = try layer.forward(ids: ids, batch: batch, seq: seq, positions: positions, training: true, useLayerNorm: false)
        try layer.backward(gradOutput: dout, batch: batch, seq: seq)
        return [layer.tokenEmbedding.weight.gradient] + (layer.positionalEmbedding.map { [$0.weight.gradient] } ?? [])
    }

    /// The reference: every element summed in token order, in float32, twice over.
    func reference(ids: [Int32], seq: Int, positions: [Int32]?, paddingIdx: Int?, dout: [Float]) -> [[Float]] {
        let d = Self.dim
        var dwte = [Float](repeating: 0, count: Self.vocab * d), dwpe = [Float](repeating: 0, count: 1024 * d)
        for _ in 0..<2 {
            for r in 0..<ids.count {
                let p = positions.map { Int($0[r]) } ?? r % seq
                for c in 0..<d {
                    if Int(ids[r]) != paddingIdx { dwte[Int(ids[r]) * d + c] += dout[r * d + c] }
                    dwpe[p * d + c] += dout[r * d + c]
                }
            }
        }
        return [dwte, dwpe]
    }

    /// Elements whose bits differ (printing whole gradients would drown the report).
    func differences(_ a: [Float], _ b: [Float]) -> Int {
        a.count != b.count ? max(a.count, b.count) : zip(a, b).reduce(0) { $0 + ($1.0.bitPattern != $1.1.bitPattern ? 1 : 0) }
    }

    enum Shape: String, CaseIterable { case random, allSame, explicitPositions, crowdedPositions, padding, shortSequences }

    @Test(arguments: Shape.allCases)
    func gradientsAreTokenOrderSums(shape: Shape) throws {
        var rng = TestRandom(31)
        let (batch, seq) = shape == .shortSequences ? (8192, 1) : (8, 1024)
        let n = batch * seq
        let ids: [Int32] = (0..<n).map { _ in shape == .allSame ? 17 : Int32(rng.int(Self.vocab)) }
        let positions: [Int32]? = switch shape {
        case .explicitPositions: (0..<n).map { _ in Int32(rng.int(1024)) }
        case .crowdedPositions: (0..<n).map { $0 % 7 == 0 ? Int32(rng.int(1024)) : 5 }
        default: nil
        }
        let pad = shape == .padding ? Int(ids[3]) : nil
        let dout = rng.floats(n * Self.dim)
        let want = reference(ids: ids, seq: seq, positions: positions, paddingIdx: pad, dout: dout)
        for threads in [1, 2, 3, 4] {
            let got = try gradients(ids: ids, batch: batch, seq: seq, positions: positions, threads: threads, paddingIdx: pad, dout: dout)
            #expect(differences(got[0], want[0]) == 0, "token gradient, \(shape), \(threads) threads")
            #expect(differences(got[1], want[1]) == 0, "position gradient, \(shape), \(threads) threads")
        }
    }

    /// With dropout, and without a position gradient (sinusoidal: tokens split in ranges).
    @Test(arguments: [false, true])
    func sameBitsOnEveryThreadCount(sinusoidal: Bool) throws {
        var rng = TestRandom(32)
        let ids: [Int32] = (0..<(8 * 1024)).map { _ in Int32(rng.int(Self.vocab)) }
        let dout = rng.floats(ids.count * Self.dim)
        let one = try gradients(ids: ids, batch: 8, seq: 1024, positions: nil, threads: 1, dropout: 0.1, sinusoidal: sinusoidal, dout: dout)
        #expect(one[0].contains { $0 != 0 })
        for threads in [2, 3, 4] {
            let many = try gradients(ids: ids, batch: 8, seq: 1024, positions: nil, threads: threads, dropout: 0.1, sinusoidal: sinusoidal, dout: dout)
            #expect(many.count == one.count && zip(many, one).allSatisfy { differences($0, $1) == 0 }, "\(threads) threads")
        }
    }

    /// The layer-norm backward over several blocks (256 rows each at D = 256): with two
    /// workers each computes and scatters its own blocks (`BackwardSchedule`); the bits are
    /// those of one thread, and of three and four (shared blocks).
    @Test func layerNormBackwardSameBitsOnEveryThreadCount() throws {
        var rng = TestRandom(33)
        let ids: [Int32] = (0..<(8 * 1024)).map { _ in Int32(rng.int(Self.vocab)) }   // 32 blocks at D = 256
        let dout = rng.floats(ids.count * Self.dim)
        func run(_ threads: Int) throws -> [[Float]] {
            var c = smallConfig(vocab: Self.vocab, dim: Self.dim, maxSeqLen: 1024, dropout: 0.1, threads: threads)
            c.seed = 78
            let layer = try GPTEmbedding(config: c)
            for _ in 0..<2 {
                _ = try layer.forward(ids: ids, batch: 8, seq: 1024, training: true, useLayerNorm: true)
                try layer.backward(gradOutput: dout, batch: 8, seq: 1024)
            }
            return layer.parameters.map(\.gradient)
        }
        let one = try run(1)
        #expect(one.count == 4 && one.allSatisfy { $0.contains { $0 != 0 } })
        for threads in [2, 3, 4] {
            let many = try run(threads)
            #expect(many.count == one.count && zip(many, one).allSatisfy { differences($0, $1) == 0 }, "\(threads) threads")
        }
    }

    /// When the shared thread team is busy with another call (here the backward is called
    /// from inside one of the team's parts), a layer's parts run one after another on the
    /// calling thread. The two-worker schedule must not wait for the worker that has not
    /// started: it did, forever (worker 0 waited for worker 1's blocks; two layers trained
    /// from two threads at once hung). The bits are those of the same call with the team free.
    @Test func layerNormBackwardFinishesWhenItsPartsRunOneAfterAnother() throws {
        var rng = TestRandom(35)
        let ids: [Int32] = (0..<(4 * 1024)).map { _ in Int32(rng.int(Self.vocab)) }   // 16 blocks, 2 workers
        let dout = rng.floats(ids.count * Self.dim)
        func layer() throws -> GPTEmbedding {
            var c = smallConfig(vocab: Self.vocab, dim: Self.dim, maxSeqLen: 1024, dropout: 0.1, threads: 2)
            c.seed = 79
            let layer = try GPTEmbedding(config: c)
            _ = try layer.forward(ids: ids, batch: 4, seq: 1024, training: true, useLayerNorm: true)
            return layer
        }
        let free = try layer()
        try free.backward(gradOutput: dout, batch: 4, seq: 1024)
        let expected = free.parameters.map(\.gradient)
        let nested = try layer()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            ThreadTeam.shared.run(parts: 2) { part in
                if part == 0 { try? nested.backward(gradOutput: dout, batch: 4, seq: 1024) }
            }
            done.signal()
        }
        try #require(done.wait(timeout: .now() + 600) == .success, "the backward did not return")
        let got = nested.parameters.map(\.gradient)
        #expect(got.count == expected.count && zip(got, expected).allSatisfy { differences($0, $1) == 0 })
    }

    /// The plan itself: owners by position range, shared ids marked, uneven owners refused.
    @Test func planOwnersAndSharedIds() throws {
        let ids: [Int32] = [5, 6, 5, 7, 8, 7, 9, 5]   // batch 2, seq 4
        let plan = try #require(ids.withUnsafeBufferPointer { p in
            ScatterPlan(tokens: TokenBatch(batch: 2, seq: 4, ids: p.baseAddress!, positions: nil, idStorage: nil, positionStorage: nil, start: 0),
                        workers: 2, byPosition: true, sharesIds: true)
        })
        defer { plan.release() }
        // Positions 0, 1 -> worker 0; 2, 3 -> worker 1. Id 5 is at positions 0, 2, 3: shared.
        // Id 7 at positions 3 and 1: shared. 6, 8, 9 are single.
        #expect(Array(UnsafeBufferPointer(start: plan.owners, count: 8)) == [0x80, 0, 0x81, 0x81, 0, 0x80, 1, 0x81])
        let crowded: [Int32] = [3, 3, 3, 3, 3, 3, 3, 900]
        let refused = ids.withUnsafeBufferPointer { p in
            crowded.withUnsafeBufferPointer { q in
                ScatterPlan(tokens: TokenBatch(batch: 2, seq: 4, ids: p.baseAddress!, positions: q.baseAddress!, idStorage: nil, positionStorage: nil, start: 0),
                            workers: 2, byPosition: true, sharesIds: true)
            }
        }
        #expect(refused == nil, "seven of eight tokens on one worker")
    }
}

extension ScatterOwnershipTests {
    /// zero_grad on both of its paths: sets written with streaming stores (`streamed`, the
    /// threshold lowered to 1,024 floats) and sets written normally, split over the workers
    /// as the lazy step splits them. The token rows a backward touched (the row-list path,
    /// about 900 of 4,000 rows) and a position table touched whole (the whole-table path)
    /// read as zeros afterwards, every element, and a second step on the zeroed gradients
    /// equals a fresh layer's first step bit for bit.
    @Test(arguments: [1, 2], [false, true])
    func zeroGradClearsEveryElement(threads: Int, streamed: Bool) throws {
        let d = 512, seq = 1024, vocab = 4000
        var c = smallConfig(vocab: vocab, dim: d, maxSeqLen: seq, threads: threads)
        c.seed = 5
        var rng = TestRandom(9)
        let first = (0..<seq).map { _ in Int32(rng.int(vocab)) }
        let second = (0..<seq).map { _ in Int32(rng.int(vocab)) }
        let dout = rng.floats(seq * d)
        let layer = try GPTEmbedding(config: c), fresh = try GPTEmbedding(config: c)
        layer.streamingZeroThreshold = streamed ? 1024 : Int.max
        _ = try layer.forward(ids: first, batch: 1, seq: seq, training: true, useLayerNorm: false)
        try layer.backward(gradOutput: dout, batch: 1, seq: seq)
        // The row-list path, with enough rows for two parts (``WorkerPool/memoryGrain``).
        #expect(layer.touchedTokenRows.count * 4 <= vocab)
        #expect(layer.touchedTokenRows.count >= 2 * WorkerPool.memoryGrain(bytesPerItem: 28 * d))
        layer.zeroGrad()
        for p in layer.parameters { #expect(p.gradient.allSatisfy { $0.bitPattern == 0 }, "\(p.name)") }
        for l in [layer, fresh] {
            _ = try l.forward(ids: second, batch: 1, seq: seq, training: true, useLayerNorm: false)
            try l.backward(gradOutput: dout, batch: 1, seq: seq)
        }
        for (p, q) in zip(layer.parameters, fresh.parameters) { #expect(differences(p.gradient, q.gradient) == 0, "\(p.name)") }
    }
}
