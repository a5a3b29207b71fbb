import Foundation
@testable import GPTEmbedding
import Testing

/// The AdamW step (issue 13) against closed forms and a float64 reference of the formula;
/// lazy semantics; determinism over threads and CPU paths; save, reload, continue; bad
/// input. (The PyTorch golden files are checked by AdamWGoldenTests.)
@Suite struct AdamWTests {
    /// A layer with layer norm on, after a training forward and backward on a random batch.
    static func trained(_ config: GPTEmbeddingConfig, kernels: Kernels? = nil, seed: UInt64 = 5,
                        batch: Int = 2, seq: Int = 6) throws -> GPTEmbedding {
        let layer = try kernels.map { try GPTEmbedding(config: config, kernels: $0) } ?? GPTEmbedding(config: config)
        try backward(layer, seed: seed, batch: batch, seq: seq)
        return layer
    }

    /// zero_grad, a training forward with layer norm and a backward, on ids drawn from `seed`.
    static func backward(_ layer: GPTEmbedding, seed: UInt64, batch: Int = 2, seq: Int = 6, vocabUsed: Int? = nil) throws {
        var rng = TestRandom(seed)
        let v = vocabUsed ?? layer.config.vocabSize
        let ids = (0..<(batch * seq)).map { _ in Int32(rng.int(v)) }
        layer.zeroGrad()
        let out = try layer.forward(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: true)
        try layer.backward(gradOutput: rng.floats(out.count), batch: batch, seq: seq)
    }

    /// Every value and state tensor of the layer, as bits.
    static func bits(_ layer: GPTEmbedding) -> [[UInt32]] {
        var all: [[UInt32]] = []
        for t in layer.parameters {
            all.append(t.values.map(\.bitPattern))
            if let s = t.adamw {
                all.append(Array(s.firstMoment).map(\.bitPattern))
                all.append(Array(s.secondMoment).map(\.bitPattern))
                all.append(s.masterWeights.map { Array($0).map(\.bitPattern) } ?? [])
                all.append([UInt32(truncatingIfNeeded: s.step)])
            }
        }
        return all
    }

    @Test func theFirstStepMovesEachWeightByTheLearningRateAgainstItsGradient() throws {
        let layer = try Self.trained(smallConfig())
        let lr = 0.01, wd = 0.1, eps = 1e-8
        let before = layer.parameters.map(\.values), grads = layer.parameters.map(\.gradient)
        try layer.step(AdamW(lr: lr, eps: eps, weightDecay: wd))
        // Step 1: m̂ = g and v̂ = g², so p1 = p0 (1 - lr wd) - lr g / (|g| + eps).
        for (k, t) in layer.parameters.enumerated() {
            for (i, p1) in t.values.enumerated() {
                let p0 = Double(before[k][i]), g = Double(grads[k][i])
                let expected = p0 * (1 - lr * wd) - lr * g / (abs(g) + eps)
                #expect(abs(Double(p1) - expected) <= 1e-6 * abs(expected) + 2e-7, "\(t.name)[\(i)]: \(p1) vs \(expected)")
            }
            #expect(t.adamw?.step == 1)
        }
    }

    /// The header's formula in float64.
    struct Reference {
        var p: [Double], m: [Double], v: [Double], step = 0
        init(_ values: [Float]) { p = values.map(Double.init); m = Array(repeating: 0, count: values.count); v = m }
        mutating func step(_ g: [Float], _ o: AdamW, decay: Bool) {
            step += 1
            let (b1, b2) = o.betas, t = Double(step)
            for i in p.indices {
                let gi = Double(g[i]) * o.gradScale
                if decay { p[i] *= 1 - o.lr * o.weightDecay }
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                p[i] -= o.lr / (1 - pow(b1, t)) * m[i] / ((v[i] / (1 - pow(b2, t))).squareRoot() + o.eps)
            }
        }
    }

    @Test(arguments: [false, true])
    func tenStepsWithAChangingScheduleFollowTheFormula(bf16: Bool) throws {
        var c = smallConfig(vocab: 30, dim: 20)
        if bf16 { c.weightDType = .bfloat16 }
        let layer = try GPTEmbedding(config: c)
        var refs = layer.parameters.map { Reference($0.values) }
        var o = AdamW(betas: (0.8, 0.95), eps: 1e-6, weightDecay: 0.05, decayed: [.tokenEmbedding, .positionEmbedding])
        for s in 0..<10 {
            try Self.backward(layer, seed: UInt64(100 + s))
            o.lr = 0.02 * (1 - Double(s) / 12)
            o.gradScale = s % 3 == 0 ? 0.5 : 1
            let grads = layer.parameters.map(\.gradient)
            try layer.step(o)
            for (k, p) in GPTEmbedding.Parameter.allCases.enumerated() { refs[k].step(grads[k], o, decay: o.decayed.contains(p)) }
        }
        for (k, t) in layer.parameters.enumerated() {
            let state = try #require(t.adamw)
            #expect(state.step == 10)
            // float32 master (or the float32 parameter) against float64.
            let values = state.masterWeights.map(Array.init) ?? t.values
            let worst = zip(values, refs[k].p).map { abs(Double($0) - $1) / (abs($1) + 1e-3) }.max() ?? 0
            #expect(worst < 1e-5, "\(t.name): relative error \(worst)")
            let mErr = zip(Array(state.firstMoment), refs[k].m).map { abs(Double($0) - $1) / (abs($1) + 1e-6) }.max() ?? 0
            #expect(mErr < 1e-4, "\(t.name) exp_avg: relative error \(mErr)")
            if let master = state.masterWeights {
                // The table holds the master rounded to bf16, to nearest even.
                for (x, stored) in zip(Array(master), t.values) {
                    #expect(stored == Float(bfloat16RoundedFrom: x))
                }
            }
        }
    }

    @Test func lazyStepsLeaveUntouchedRowsAndTheirMomentsAlone() throws {
        let c = smallConfig(vocab: 40, dim: 12, maxSeqLen: 16)
        let layer = try GPTEmbedding(config: c)
        try Self.backward(layer, seed: 1, vocabUsed: 40)
        try layer.step(AdamW(lr: 0.01, lazy: true))
        // A second batch from ids 0..<10 only, and positions 0..<3: rows 10... and positions 3... stay.
        let wte = layer.tokenEmbedding.weight, wpe = try #require(layer.positionalEmbedding?.weight)
        let before = (wte.values, Array(wte.adamw!.firstMoment), Array(wte.adamw!.secondMoment), wpe.values)
        layer.zeroGrad()
        var rng = TestRandom(3)
        let ids = (0..<6).map { _ in Int32(rng.int(10)) }
        let out = try layer.forward(ids: ids, batch: 2, seq: 3, training: true, useLayerNorm: true)
        try layer.backward(gradOutput: rng.floats(out.count), batch: 2, seq: 3)
        let lnBefore = layer.layerNormWeight.values
        try layer.step(AdamW(lr: 0.01, lazy: true))
        let touched = Set(ids.map(Int.init))
        let d = c.embedDim
        for row in 0..<c.vocabSize {
            let r = (row * d)..<((row + 1) * d)
            let same = Array(wte.values[r]) == Array(before.0[r]) && Array(wte.adamw!.firstMoment[r]) == Array(before.1[r])
                && Array(wte.adamw!.secondMoment[r]) == Array(before.2[r])
            #expect(same == !touched.contains(row), "row \(row)")
        }
        for row in 0..<c.maxSeqLen {
            let r = (row * d)..<((row + 1) * d)
            #expect((Array(wpe.values[r]) == Array(before.3[r])) == (row >= 3), "position \(row)")
        }
        #expect(layer.layerNormWeight.values != lnBefore)  // dense
        #expect(wte.adamw?.step == 2)  // the global count, as SparseAdam's
    }

    /// A token table big enough that 2 threads split the step (checked), no bigger: the
    /// suite runs under the sanitizers.
    @Test(arguments: [(false, false), (true, false), (false, true)])
    func stepsAreBitIdenticalForAnyThreadCountAndCPUPath(lazy: Bool, bf16: Bool) throws {
        let vocab = 6000, dim = 136
        #expect(WorkerPool(threads: 2).parts(count: vocab, grain: WorkerPool.memoryGrain(bytesPerItem: 28 * dim)) == 2)
        var results: [[[UInt32]]] = []
        let paths = [Kernels.load(.baseline), Kernels.load(.x86_64_v3)].compactMap { $0 }
        for kernels in paths {
            for threads in [1, 2] {
                var c = smallConfig(vocab: vocab, dim: dim, maxSeqLen: 64, threads: threads)
                if bf16 { c.weightDType = .bfloat16 }
                let layer = try GPTEmbedding(config: c, kernels: kernels)
                for s in 0..<3 {
                    try Self.backward(layer, seed: UInt64(s), batch: 4, seq: 64)
                    try layer.step(AdamW(lr: 1e-2, weightDecay: 0.1, gradScale: 0.7, lazy: lazy))
                }
                results.append(Self.bits(layer) + [[UInt32(truncatingIfNeeded: layer.gradNormSquared().bitPattern)]])
            }
        }
        #expect(results.count >= 2)
        for r in results.dropFirst() { #expect(r == results[0]) }
    }

    /// A dense step on a large bf16 / f16 table writes the table with streaming stores
    /// (here the layer's threshold is lowered so that a small table streams; 32-byte stores
    /// for a width of 144, 16-byte ones for 136): the same bits as with normal stores, on
    /// both CPU paths and at 1 and 2 threads.
    @Test(arguments: [TensorDType.bfloat16, .float16], [136, 144])
    func denseStepsStreamingA16BitTableGiveTheBitsOfNormalStores(dtype: TensorDType, dim: Int) throws {
        let vocab = 3000
        var results: [[[UInt32]]] = []
        let paths = [Kernels.load(.baseline), Kernels.load(.x86_64_v3)].compactMap { $0 }
        for kernels in paths {
            for threads in [1, 2] {
                for streams in [false, true] {
                    var c = smallConfig(vocab: vocab, dim: dim, maxSeqLen: 64, threads: threads)
                    c.weightDType = dtype
                    let layer = try GPTEmbedding(config: c, kernels: kernels)
                    if streams {
                        layer.streamingThreshold = 1024
                        #expect(Int(bitPattern: layer.parameters[0].storage.base) % 16 == 0)
                    }
                    for s in 0..<3 {
                        try Self.backward(layer, seed: UInt64(s), batch: 4, seq: 64)
                        try layer.step(AdamW(lr: 1e-2, weightDecay: 0.1, lazy: false))
                    }
                    results.append(Self.bits(layer))
                }
            }
        }
        #expect(results.count >= 4)
        for (i, r) in results.enumerated().dropFirst() {
            let same = r == results[0]  // (not inside #expect: it would print every value)
            #expect(same, "\(dtype): run \(i) (path, threads, streaming) differs from the first")
        }
    }

    @Test(arguments: [false, true])
    func savingReloadingAndContinuingEqualsTrainingWithoutAStop(bf16: Bool) throws {
        var c = smallConfig(vocab: 30, dim: 20, dropout: 0.1)
        if bf16 { c.weightDType = .bfloat16 }
        let o = AdamW(lr: 0.01, weightDecay: 0.1, lazy: true)
        let a = try GPTEmbedding(config: c)
        for s in 0..<3 { try Self.backward(a, seed: UInt64(s)); try a.step(o) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("adamw-\(getpid())-\(bf16).safetensors").path
        defer { unlink(path) }
        try a.saveSafetensors(path: path, optimizerState: true)
        // The same configuration (seed: dropout masks) with a history of its own, which the
        // load replaces: weights, moments, steps and the dropout stream's position.
        let b = try GPTEmbedding(config: c)
        try Self.backward(b, seed: 99)
        try b.step(AdamW(lr: 0.5))
        try b.loadSafetensors(path: path)
        #expect(Self.bits(a) == Self.bits(b))
        for s in 3..<6 {
            for layer in [a, b] { try Self.backward(layer, seed: UInt64(s)); try layer.step(o) }
        }
        #expect(Self.bits(a) == Self.bits(b))
        // The official format: the header parses and names every state tensor.
        let header = try GPTEmbedding.safetensorsHeader(path: path)
        #expect(header.metadata["optimizer.token_embedding.weight.step"] == "3")
        #expect(header.tensors.contains { $0.name == "optimizer.token_embedding.weight.exp_avg_sq" })
        #expect(header.tensors.contains { $0.name == "optimizer.token_embedding.weight.master" } == bf16)
    }

    @Test func badOptionsAndAStepWithoutGradientsChangeNothing() throws {
        let layer = try Self.trained(smallConfig())
        try layer.step(AdamW())
        let before = Self.bits(layer)
        let bad: [(AdamW, String)] = [
            (AdamW(lr: -1), "lr -1.0"), (AdamW(lr: .nan), "lr nan"), (AdamW(lr: .infinity), "lr inf"),
            (AdamW(betas: (1, 0.999)), "beta1 1.0"), (AdamW(betas: (-0.1, 0.999)), "beta1 -0.1"),
            (AdamW(betas: (0.9, 1)), "beta2 1.0"), (AdamW(betas: (0.9, .nan)), "beta2 nan"),
            (AdamW(eps: 0), "eps 0.0"), (AdamW(eps: -1e-8), "eps -1e-08"),
            (AdamW(weightDecay: -0.1), "weight_decay -0.1"), (AdamW(weightDecay: .nan), "weight_decay nan"),
            (AdamW(gradScale: -1), "grad_scale -1.0"), (AdamW(gradScale: .infinity), "grad_scale inf"),
        ]
        for (o, named) in bad {
            let e = #expect(throws: GPTEmbeddingError.self) { try layer.step(o) }
            #expect(e?.code == .invalidArgument)
            #expect(e?.message.contains(named) == true, "\(e?.message ?? "") should name \(named)")
            #expect(Self.bits(layer) == before)
        }
        layer.zeroGrad()
        let afterZero = Self.bits(layer)
        let e = #expect(throws: GPTEmbeddingError.self) { try layer.step(AdamW()) }
        #expect(e?.code == .badState)
        #expect(Self.bits(layer) == afterZero)
        let fresh = try GPTEmbedding(config: smallConfig())
        #expect(throws: GPTEmbeddingError.self) { try fresh.step(AdamW()) }
        #expect(fresh.parameters.allSatisfy { $0.adamw == nil })
    }

    /// Found by fuzzing: a step count restored (or set) at its maximum cannot grow.
    @Test func aStepCountAtItsMaximumIsAnErrorNotAnOverflow() throws {
        let layer = try Self.trained(smallConfig())
        try layer.optimizerState(.layerNormBias).step = .max
        let before = Self.bits(layer)
        let e = #expect(throws: GPTEmbeddingError.self) { try layer.step(AdamW()) }
        #expect(e?.code == .badState)
        #expect(Self.bits(layer) == before)
    }

    @Test func theGradientNormIsTheSumOfSquaresOfEveryGradient() throws {
        let layer = try Self.trained(smallConfig(vocab: 300, dim: 24), batch: 3, seq: 10)
        let expected = layer.parameters.flatMap(\.gradient).reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(expected > 0)
        #expect(abs(layer.gradNormSquared() - expected) <= 1e-6 * expected)
        layer.zeroGrad()
        #expect(layer.gradNormSquared() == 0)
    }

    @Test func parameterGroupsStepOnlyTheirParametersAndCountTheirOwnSteps() throws {
        let layer = try Self.trained(smallConfig())
        let lnBefore = layer.layerNormBias.values
        try layer.step(AdamW(weightDecay: 0.1, parameters: [.tokenEmbedding, .positionEmbedding]))
        #expect(layer.layerNormBias.values == lnBefore)
        #expect(layer.layerNormBias.adamw == nil)
        try layer.step(AdamW(weightDecay: 0, parameters: [.layerNormWeight, .layerNormBias]))
        #expect(layer.tokenEmbedding.weight.adamw?.step == 1)
        #expect(layer.layerNormBias.adamw?.step == 1)
        #expect(layer.layerNormBias.values != lnBefore)
    }

    @Test func infiniteGradientsPropagateAsIEEESaysAndTheNormShowsThem() throws {
        let layer = try Self.trained(smallConfig())
        let g = try layer.layerNormBias.gradientData()
        g[0] = .infinity
        #expect(layer.gradNormSquared() == .infinity)
        try layer.step(AdamW())
        #expect(layer.layerNormBias.values[0].isNaN)  // inf / inf
        #expect(!layer.layerNormBias.values[1].isNaN)
    }

    @Test func memoryCountsTheStateOnceAllocated() throws {
        let layer = try Self.trained(smallConfig(vocab: 100, dim: 16))
        let before = layer.memoryBytes
        try layer.step(AdamW())
        // Two float32 moments per parameter.
        #expect(layer.memoryBytes - before == 2 * 4 * layer.numParameters)
        layer.resetOptimizer()
        #expect(layer.memoryBytes == before)
    }
}

extension Float {
    /// `x` rounded to bfloat16 (nearest even) and widened back: the reference rounding.
    init(bfloat16RoundedFrom x: Float) {
        let u = x.bitPattern
        if x.isNaN { self = Float(bitPattern: 0x7FC0_0000); return }
        let rounded = (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000
        self = Float(bitPattern: rounded)
    }
}
