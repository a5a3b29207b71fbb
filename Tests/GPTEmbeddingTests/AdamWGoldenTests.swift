@testable import GPTEmbedding
import Testing

/// Every PyTorch AdamW golden file (Tests/golden/adamw), replayed through the layer's own
/// forward, backward and step: parameters, both moments and the bf16 master weights after
/// every step, and the gradient norm, against `torch.optim.AdamW` (and the row-restricted
/// reference of the lazy case).
@Suite struct AdamWGoldenTests {
    /// `|a - b| <= 1e-6 |b| + 1e-7`: float rounding (the golden files are bit-exact PyTorch;
    /// the gradients feeding the step come from this library's backward, whose layer norm
    /// sums in another order).
    static func close(_ a: [Float], _ b: [Float]) -> (ok: Bool, worst: Double) {
        var worst = 0.0, ok = a.count == b.count
        for (x, y) in zip(a, b) {
            let err = abs(Double(x) - Double(y)), allowed = 1e-6 * abs(Double(y)) + 1e-7
            worst = max(worst, err / allowed)
            if !(err <= allowed) { ok = false }
        }
        return (ok, worst)
    }

    static let names: [GPTEmbedding.Parameter: String] = [
        .tokenEmbedding: "wte", .positionEmbedding: "wpe", .layerNormWeight: "ln_weight", .layerNormBias: "ln_bias",
    ]

    /// The layer a golden file describes, with its initial values.
    static func layer(_ g: AdamWGolden, threads: Int) throws -> GPTEmbedding {
        var c = GPTEmbeddingConfig()
        c.vocabSize = g.vocabSize
        c.embedDim = g.embedDim
        c.maxSeqLen = g.hasPositionTable ? g.maxSeqLen : 0
        c.positionEncoding = g.hasPositionTable ? .learned : .none
        c.paddingIdx = g.paddingIdx
        c.dropout = 0
        c.scaleEmbeddings = false
        c.layerNormEps = g.layerNormEps
        c.weightDType = g.isBF16 ? .bfloat16 : .float32
        c.numThreads = threads
        let layer = try GPTEmbedding(config: c)
        for t in layer.parameters {
            let p = GPTEmbedding.Parameter.allCases.first { (try? layer.tensor($0)) === t }!
            try t.setValues(try #require(g.floats(names[p]!)))
        }
        return layer
    }

    /// With `exactGradients`, PyTorch's gradients of each step replace the backward's (after
    /// the backward recorded the touched rows) so that the step alone is compared, bit for
    /// bit; without, the layer's own gradients feed it (end to end, to float rounding).
    @Test(arguments: try AdamWGolden.all(), [true, false])
    func replayingTheRunGivesPyTorchsParametersAndMoments(golden g: AdamWGolden, exactGradients: Bool) throws {
        var worst = 0.0, mismatches = 0
        for threads in [1, 2] {
            let layer = try Self.layer(g, threads: threads)
            for k in 1...g.steps {
                let ids = try #require(g.ints("ids", step: k)).map { Int32($0) }
                layer.zeroGrad()
                _ = try layer.forward(ids: ids, batch: g.batch, seq: g.seq, training: true, useLayerNorm: true)
                try layer.backward(gradOutput: try #require(g.floats("grad_output", step: k)), batch: g.batch, seq: g.seq)
                if exactGradients {
                    for t in layer.parameters {
                        let p = GPTEmbedding.Parameter.allCases.first { (try? layer.tensor($0)) === t }!
                        let grad = try #require(g.floats("grad.\(Self.names[p]!)", step: k))
                        try t.gradientBuffer().base.update(from: grad, count: grad.count)
                    }
                }
                let norm = try #require(g.scalar("grad_norm_sq", step: k))
                #expect(abs(layer.gradNormSquared() - norm) <= 1e-6 * norm, "\(g) step \(k): grad norm²")
                let mask = Int(try #require(g.ints("decay_mask", step: k))[0])
                let options = AdamW(
                    lr: try #require(g.scalar("lr", step: k)),
                    betas: (try #require(g.scalar("beta1", step: k)), try #require(g.scalar("beta2", step: k))),
                    eps: try #require(g.scalar("eps", step: k)),
                    weightDecay: try #require(g.scalar("weight_decay", step: k)),
                    decayed: Set(GPTEmbedding.Parameter.allCases.filter { mask & (1 << Int($0.rawValue)) != 0 }),
                    gradScale: try #require(g.scalar("grad_scale", step: k)),
                    lazy: try #require(g.ints("lazy", step: k))[0] == 1)
                try layer.step(options)
                for t in layer.parameters {
                    let p = GPTEmbedding.Parameter.allCases.first { (try? layer.tensor($0)) === t }!
                    let name = Self.names[p]!
                    let state = try #require(t.adamw)
                    #expect(state.step == Int64(k))
                    var checks: [(String, [Float])] = [
                        (name, t.values), ("exp_avg.\(name)", Array(state.firstMoment)),
                        ("exp_avg_sq.\(name)", Array(state.secondMoment)),
                    ]
                    if let master = state.masterWeights { checks.append(("master.\(name)", Array(master))) }
                    for (key, ours) in checks {
                        let theirs = try #require(g.floats(key, step: k), "\(key).\(k)")
                        let (ok, w) = Self.close(ours, theirs)
                        worst = max(worst, w)
                        mismatches += zip(ours, theirs).filter { $0.bitPattern != $1.bitPattern }.count
                        if exactGradients || !key.hasPrefix("exp_avg") {
                            #expect(ok, "\(g) step \(k) \(key): worst error \(w) × the allowance")
                        }
                    }
                }
            }
        }
        print("AdamW golden \(g) exact gradients \(exactGradients): worst error \(worst) × (1e-6·|x| + 1e-7), \(mismatches) values not bit-identical")
    }
}
