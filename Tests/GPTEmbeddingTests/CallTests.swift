import Dispatch
import GPTEmbedding
import Synchronization
import Testing

/// Calls with explicit state (``EmbeddingCall``): compared bit for bit with the stateful
/// forward and backward (the reference), and their promises (nothing kept, skipped work,
/// errors that write nothing, empty calls).
@Suite struct CallTests {
    /// The bits of a float array, so that -0.0 and 0.0 (and NaNs) are told apart.
    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }
    func bits(_ a: UnsafeMutableBufferPointer<Float>) -> [UInt32] { a.map(\.bitPattern) }

    /// One configuration of the stateful-vs-explicit comparison.
    struct Case: CustomStringConvertible, Sendable {
        var dtype: TensorDType = .float32
        var layerNorm: Bool = false
        var dropout: Float = 0
        var positions: PositionEncoding = .learned
        var padding: Int? = nil
        var int64: Bool = false
        var explicitPositions = false
        var threads = 1
        var gradDType: TensorDType = .float32
        var description: String {
            "\(dtype) ln=\(layerNorm) p=\(dropout) \(positions) pad=\(padding.map(String.init) ?? "-") i64=\(int64) explicit=\(explicitPositions) threads=\(threads) grad=\(gradDType)"
        }
    }

    static let cases: [Case] = [
        Case(),
        Case(layerNorm: true),
        Case(dropout: 0.3),
        Case(layerNorm: true, dropout: 0.3, padding: 3),
        Case(dtype: .bfloat16, layerNorm: true, dropout: 0.25, int64: true),
        Case(dtype: .bfloat16, dropout: 0.5, padding: 0, explicitPositions: true, gradDType: .bfloat16),
        Case(dtype: .float16, layerNorm: true, dropout: 0.1, positions: .sinusoidal, explicitPositions: true, gradDType: .float16),
        Case(layerNorm: true, dropout: 0.2, positions: .none, padding: 5, int64: true),
        Case(dropout: 0.4, positions: .sinusoidal, padding: 2, int64: true, threads: 2),
        Case(layerNorm: true, dropout: 0.3, padding: 1, explicitPositions: true, threads: 2),
        Case(dropout: 1),
        Case(layerNorm: true, dropout: 1, padding: 1),
    ]

    func config(_ c: Case) -> GPTEmbeddingConfig {
        var cfg = smallConfig(vocab: 40, dim: 20, maxSeqLen: 16, dropout: c.dropout, positions: c.positions, threads: c.threads)
        cfg.weightDType = c.dtype
        cfg.paddingIdx = c.padding
        cfg.seed = 11
        cfg.scaleEmbeddings = true
        return cfg
    }

    /// Ids of `n` tokens with repeats and (when the case has one) the padding row.
    func ids(_ n: Int, _ rng: inout TestRandom, padding: Int?) -> [Int] {
        (0..<n).map { r in
            if let padding, r % 4 == 1 { return padding }
            return rng.int(12)
        }
    }

    /// A gradient as `dtype` bytes (16-bit values are rounded from the float32 ones) and its
    /// float32 view (what the layer widens it to).
    func gradient(_ n: Int, _ rng: inout TestRandom, _ dtype: TensorDType) -> [Float] {
        let g = rng.floats(n)
        switch dtype {
        case .float32: return g
        case .bfloat16: return g.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) }
        case .float16: return g.map { Float(Float16($0)) }
        }
    }

    /// `g` as a buffer of `dtype` elements (exact for values from ``gradient(_:_:_:)``).
    func encoded(_ g: [Float], _ dtype: TensorDType) -> [UInt16] {
        switch dtype {
        case .float32: return []
        case .bfloat16: return g.map { UInt16($0.bitPattern >> 16) }
        case .float16: return g.map { Float16($0).bitPattern }
        }
    }

    /// Runs `body` with `g` as raw `dtype` memory.
    func withGradient<R>(_ g: [Float], _ dtype: TensorDType, _ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        if dtype == .float32 { return try g.withUnsafeBytes { try body($0.baseAddress!) } }
        return try encoded(g, dtype).withUnsafeBytes { try body($0.baseAddress!) }
    }

    /// Three training steps of a stateful layer against the same steps as explicit calls
    /// (seed = config.seed, offset = step), with the gradients into caller buffers and into
    /// a third layer's own gradients: outputs, mean-free results and gradients bit for bit.
    @Test(arguments: cases)
    func explicitCallsMatchTheStatefulLayer(_ c: Case) throws {
        if c.int64 { try compare(c, Int64.self) } else { try compare(c, Int32.self) }
    }

    func compare<I: EmbeddingIndex>(_ c: Case, _: I.Type) throws {
        let cfg = config(c)
        let stateful = try GPTEmbedding(config: cfg), explicit = try GPTEmbedding(config: cfg), own = try GPTEmbedding(config: cfg)
        let d = cfg.embedDim
        var rng = TestRandom(5)
        let w = stateful.tokenEmbedding.weight
        var dwte = [Float](repeating: 0, count: w.count)
        var dwpe = [Float](repeating: 0, count: (stateful.positionalEmbedding?.weight.count ?? 0))
        var dgamma = [Float](repeating: 0, count: d), dbeta = [Float](repeating: 0, count: d)
        for step in 0..<3 {
            let (b, t) = [(2, 5), (3, 4), (1, 7)][step]
            let n = b * t
            let idList = ids(n, &rng, padding: c.padding).map { I($0) }
            let posList: [I]? = c.explicitPositions ? (0..<n).map { I(($0 * 7 + step) % 16) } : nil
            let start = c.explicitPositions ? 0 : step * 2
            let reference = try stateful.forward(ids: idList, batch: b, seq: t, positions: posList, startPosition: start,
                                                 training: true, useLayerNorm: c.layerNorm)
            let dy = gradient(n * d, &rng, c.gradDType)
            try withGradient(dy, c.gradDType) { g in
                try stateful.backward(gradOutput: g, dtype: c.gradDType, batch: b, seq: t)
            }
            var mean = [Float](repeating: .nan, count: n), rstd = [Float](repeating: .nan, count: n)
            var out = [Float](repeating: .nan, count: n * d)
            try idList.withUnsafeBufferPointer { idp in
                try withOptional(posList) { pp in
                    try mean.withUnsafeMutableBufferPointer { m in
                        try rstd.withUnsafeMutableBufferPointer { r in
                            let call = EmbeddingCall(ids: idp.baseAddress, batch: b, seq: t, positions: pp, startPosition: start,
                                                     training: true, useLayerNorm: c.layerNorm, dropoutSeed: cfg.seed,
                                                     dropoutOffset: UInt64(step), mean: m.baseAddress, rstd: r.baseAddress)
                            try out.withUnsafeMutableBufferPointer { o in
                                try explicit.forward(call, into: UnsafeMutableRawPointer(o.baseAddress!), capacity: o.count)
                            }
                            #expect(try explicit.forward(call).map(\.bitPattern) == bits(reference), "array variant, step \(step)")
                            try withGradient(dy, c.gradDType) { g in
                                try dwte.withUnsafeMutableBufferPointer { tw in
                                    try dwpe.withUnsafeMutableBufferPointer { pw in
                                        try dgamma.withUnsafeMutableBufferPointer { gw in
                                            try dbeta.withUnsafeMutableBufferPointer { bw in
                                                let grads = CallGradients(tokenEmbedding: tw, positionEmbedding: pw.isEmpty ? nil : pw,
                                                                          layerNormWeight: gw, layerNormBias: bw)
                                                try explicit.backward(call, gradOutput: g, dtype: c.gradDType, count: n * d,
                                                                      into: .buffers(grads))
                                            }
                                        }
                                    }
                                }
                                try own.backward(call, gradOutput: g, dtype: c.gradDType, count: n * d, into: .layer)
                            }
                        }
                    }
                }
            }
            #expect(bits(out) == bits(reference), "forward, step \(step)")
            if !c.layerNorm { #expect(mean.allSatisfy(\.isNaN) && rstd.allSatisfy(\.isNaN), "statistics written without the norm") }
            if c.layerNorm && c.dropout < 1 { #expect(!mean.contains(where: \.isNaN) && !rstd.contains(where: \.isNaN)) }
        }
        #expect(bits(dwte) == bits(stateful.tokenEmbedding.weight.gradient), "token gradient")
        if let wpe = stateful.positionalEmbedding?.weight { #expect(bits(dwpe) == bits(wpe.gradient), "position gradient") }
        #expect(bits(dgamma) == bits(stateful.layerNormWeight.gradient), "layer norm weight gradient")
        #expect(bits(dbeta) == bits(stateful.layerNormBias.gradient), "layer norm bias gradient")
        // The explicit calls into buffers left the layer as it was: no gradient, no state.
        #expect(!explicit.tokenEmbedding.weight.hasGradient && !explicit.hasTrainingState)
        #expect(explicit.touchedTokenRows.isEmpty)
        // Into the layer's own gradients: exactly the stateful backward, touched rows too.
        for (p, q) in zip(own.parameters, stateful.parameters) { #expect(bits(p.gradient) == bits(q.gradient), "\(p.name)") }
        #expect(own.touchedTokenRows == stateful.touchedTokenRows)
        #expect(!own.hasTrainingState)
    }

    /// Runs `body` with the base address of `a` (nil for nil).
    func withOptional<I, R>(_ a: [I]?, _ body: (UnsafePointer<I>?) throws -> R) rethrows -> R {
        guard let a else { return try body(nil) }
        return try a.withUnsafeBufferPointer { try body($0.baseAddress) }
    }

    /// Gradient buffers of a layer's shapes (and token rows for `n` tokens), zeroed.
    struct Buffers {
        var token: [Float], position: [Float], weight: [Float], bias: [Float], rows: [Float]
        init(_ layer: GPTEmbedding, tokens n: Int, fill: Float = 0) {
            token = [Float](repeating: fill, count: layer.tokenEmbedding.weight.count)
            position = [Float](repeating: fill, count: layer.positionalEmbedding?.weight.count ?? 0)
            weight = [Float](repeating: fill, count: layer.embedDim)
            bias = [Float](repeating: fill, count: layer.embedDim)
            rows = [Float](repeating: fill, count: n * layer.embedDim)
        }

        /// Runs `body` with the buffers selected by `want` ("t" token, "p" position, "w" "b"
        /// layer norm, "r" token rows).
        mutating func with(_ want: String, _ body: (CallGradients) throws -> Void) rethrows {
            try token.withUnsafeMutableBufferPointer { t in
                try position.withUnsafeMutableBufferPointer { p in
                    try weight.withUnsafeMutableBufferPointer { w in
                        try bias.withUnsafeMutableBufferPointer { b in
                            try rows.withUnsafeMutableBufferPointer { r in
                                try body(CallGradients(tokenEmbedding: want.contains("t") ? t : nil,
                                                       positionEmbedding: want.contains("p") ? p : nil,
                                                       layerNormWeight: want.contains("w") ? w : nil,
                                                       layerNormBias: want.contains("b") ? b : nil,
                                                       tokenRows: want.contains("r") ? r : nil))
                            }
                        }
                    }
                }
            }
        }
    }

    /// A training call on `ids` at positions 0..<t, running `body` with it (its mean and rstd
    /// live as long as the closure).
    func withCall<R>(_ ids: [Int32], _ b: Int, _ t: Int, ln: Bool, offset: UInt64, seed: UInt64 = 3,
                     _ body: (EmbeddingCall<Int32>) throws -> R) rethrows -> R {
        var mean = [Float](repeating: 0, count: ids.count), rstd = [Float](repeating: 0, count: ids.count)
        return try ids.withUnsafeBufferPointer { i in
            try mean.withUnsafeMutableBufferPointer { m in
                try rstd.withUnsafeMutableBufferPointer { r in
                    try body(EmbeddingCall(ids: i.baseAddress, batch: b, seq: t, training: true, useLayerNorm: ln,
                                           dropoutSeed: seed, dropoutOffset: offset, mean: m.baseAddress, rstd: r.baseAddress))
                }
            }
        }
    }

    /// Runs forward then backward of `call` (the forward writes its statistics) into `want`.
    func gradients(_ layer: GPTEmbedding, _ call: EmbeddingCall<Int32>, _ dy: [Float], _ want: String) throws -> Buffers {
        _ = try layer.forward(call)
        var buffers = Buffers(layer, tokens: call.batch * call.seq)
        try buffers.with(want) { g in try dy.withUnsafeBytes { try layer.backward(call, gradOutput: $0.baseAddress, count: dy.count, into: .buffers(g)) } }
        return buffers
    }

    /// Two forwards, then their backwards in reverse order (each into its own buffers), give
    /// what each forward and backward done alone gives: the calls share no state.
    @Test func forwardsThenBackwardsInReverseOrder() throws {
        let layer = try GPTEmbedding(config: config(Case(layerNorm: true, dropout: 0.3, padding: 2)))
        var rng = TestRandom(9)
        let ids1: [Int32] = [1, 2, 2, 5, 7, 2], ids2: [Int32] = [3, 3, 9, 1]
        let dy1 = rng.floats(6 * 20), dy2 = rng.floats(4 * 20)
        let alone1 = try withCall(ids1, 2, 3, ln: true, offset: 4) { try gradients(layer, $0, dy1, "tpwbr") }
        let alone2 = try withCall(ids2, 1, 4, ln: true, offset: 5) { try gradients(layer, $0, dy2, "tpwbr") }
        try withCall(ids1, 2, 3, ln: true, offset: 4) { c1 in
            try withCall(ids2, 1, 4, ln: true, offset: 5) { c2 in
                let y1 = try layer.forward(c1), y2 = try layer.forward(c2)
                var g1 = Buffers(layer, tokens: 6), g2 = Buffers(layer, tokens: 4)
                try g2.with("tpwbr") { g in try dy2.withUnsafeBytes { try layer.backward(c2, gradOutput: $0.baseAddress, count: dy2.count, into: .buffers(g)) } }
                try g1.with("tpwbr") { g in try dy1.withUnsafeBytes { try layer.backward(c1, gradOutput: $0.baseAddress, count: dy1.count, into: .buffers(g)) } }
                for (x, y) in [(g1, alone1), (g2, alone2)] {
                    #expect(bits(x.token) == bits(y.token) && bits(x.position) == bits(y.position))
                    #expect(bits(x.weight) == bits(y.weight) && bits(x.bias) == bits(y.bias) && bits(x.rows) == bits(y.rows))
                }
                // A forward recomputed later (activation checkpointing) draws the same mask.
                let again1 = try layer.forward(c1), again2 = try layer.forward(c2)
                #expect(bits(again1) == bits(y1) && bits(again2) == bits(y2))
            }
        }
        #expect(!layer.tokenEmbedding.weight.hasGradient && !layer.hasTrainingState)
    }

    /// A backward run twice adds twice, as the stateful backward run twice does.
    @Test func backwardTwiceAddsTwice() throws {
        let cfg = config(Case(layerNorm: true, dropout: 0.3, padding: 2))
        let stateful = try GPTEmbedding(config: cfg), explicit = try GPTEmbedding(config: cfg), own = try GPTEmbedding(config: cfg)
        let ids: [Int32] = [1, 2, 2, 5, 7, 2]
        var rng = TestRandom(2)
        let dy = rng.floats(6 * 20)
        _ = try stateful.forward(ids: ids, batch: 2, seq: 3, training: true, useLayerNorm: true)
        try stateful.backward(gradOutput: dy, batch: 2, seq: 3)
        let once = stateful.parameters.map(\.gradient)
        try stateful.backward(gradOutput: dy, batch: 2, seq: 3)
        try withCall(ids, 2, 3, ln: true, offset: 0, seed: cfg.seed) { call in
            _ = try explicit.forward(call)
            var g = Buffers(explicit, tokens: 6)
            for _ in 0..<2 {
                try g.with("tpwb") { b in try dy.withUnsafeBytes { try explicit.backward(call, gradOutput: $0.baseAddress, count: dy.count, into: .buffers(b)) } }
                try dy.withUnsafeBytes { try own.backward(call, gradOutput: $0.baseAddress, count: dy.count, into: .layer) }
            }
            #expect(bits(g.token) == bits(stateful.tokenEmbedding.weight.gradient))
            #expect(bits(g.position) == bits(stateful.positionalEmbedding!.weight.gradient))
            #expect(bits(g.weight) == bits(stateful.layerNormWeight.gradient) && bits(g.bias) == bits(stateful.layerNormBias.gradient))
        }
        for (p, q) in zip(own.parameters, stateful.parameters) { #expect(bits(p.gradient) == bits(q.gradient)) }
        #expect(stateful.parameters.map(\.gradient) != once)
    }

    /// token_rows summed into a zero table (row r into row ids[r], in token order) gives the
    /// token_embedding buffer bit for bit (distinct ids, and repeated ones), which is the
    /// stateful dwte; padding tokens get rows of zeros.
    @Test(arguments: [false, true])
    func tokenRowsSumToTheTokenGradient(layerNorm: Bool) throws {
        let cfg = config(Case(layerNorm: layerNorm, dropout: 0.3, padding: 4))
        let layer = try GPTEmbedding(config: cfg)
        let d = cfg.embedDim
        for ids in [[Int32]([0, 6, 4, 9, 3, 11, 7, 4]), [5, 5, 4, 1, 5, 2, 1, 8]] {
            let stateful = try GPTEmbedding(config: cfg)  // its first training forward: offset 0
            var rng = TestRandom(UInt64(ids[0]) + 1)
            let dy = rng.floats(8 * d)
            _ = try stateful.forward(ids: ids, batch: 2, seq: 4, training: true, useLayerNorm: layerNorm)
            try stateful.backward(gradOutput: dy, batch: 2, seq: 4)
            let g = try withCall(ids, 2, 4, ln: layerNorm, offset: 0, seed: cfg.seed) { try gradients(layer, $0, dy, "tr") }
            var summed = [Float](repeating: 0, count: g.token.count)
            for r in 0..<ids.count { for c in 0..<d { summed[Int(ids[r]) * d + c] += g.rows[r * d + c] } }
            #expect(bits(summed) == bits(g.token), "\(ids)")
            #expect(bits(g.token) == bits(stateful.tokenEmbedding.weight.gradient), "\(ids)")
            for r in 0..<ids.count where ids[r] == 4 { #expect(g.rows[r * d ..< (r + 1) * d].allSatisfy { $0.bitPattern == 0 }) }
            #expect(g.rows.contains { $0 != 0 })
        }
    }

    /// Each gradient alone gives what it gives among all the others, and buffers not passed
    /// stay untouched; with nothing wanted, backward does nothing.
    @Test(arguments: [false, true])
    func skippedGradientsCostNothingAndStayUntouched(layerNorm: Bool) throws {
        let layer = try GPTEmbedding(config: config(Case(layerNorm: layerNorm, dropout: 0.3, padding: 2)))
        let ids: [Int32] = [1, 2, 2, 5, 7, 2]
        var rng = TestRandom(4)
        let dy = rng.floats(6 * 20)
        try withCall(ids, 2, 3, ln: layerNorm, offset: 1) { call in
            _ = try layer.forward(call)
            var all = Buffers(layer, tokens: 6, fill: 7)
            try all.with("tpwbr") { b in try dy.withUnsafeBytes { try layer.backward(call, gradOutput: $0.baseAddress, count: dy.count, into: .buffers(b)) } }
            for want in ["t", "p", "w", "b", "r", "pr", "wb", ""] {
                var g = Buffers(layer, tokens: 6, fill: 7)
                try g.with(want) { b in try dy.withUnsafeBytes { try layer.backward(call, gradOutput: $0.baseAddress, count: dy.count, into: .buffers(b)) } }
                // Wanted ones: the full run's value (both started from 7; token rows are written).
                func check(_ key: Character, _ got: [Float], _ full: [Float]) {
                    let ln = key == "w" || key == "b"
                    if want.contains(key) && (!ln || layerNorm) {
                        #expect(bits(got) == bits(full), "\(key) of \(want)")
                    } else {
                        #expect(got.allSatisfy { $0 == 7 }, "\(key) of \(want) was written")
                    }
                }
                check("t", g.token, all.token)
                check("p", g.position, all.position)
                check("w", g.weight, all.weight)
                check("b", g.bias, all.bias)
                check("r", g.rows, all.rows)
            }
        }
        #expect(!layer.tokenEmbedding.weight.hasGradient)
    }

    /// A heap buffer of `count` floats set to `value` (freed by the caller).
    func filled(_ count: Int, _ value: Float = 42) -> UnsafeMutableBufferPointer<Float> {
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        b.initialize(repeating: value)
        return b
    }

    /// Every error: the right code, a message naming the problem, and nothing written (the
    /// caller's buffers and the layer).
    @Test func errorsWriteNothing() throws {
        var cfg = config(Case(layerNorm: true, dropout: 0.3))
        cfg.layerNormByDefault = true
        let layer = try GPTEmbedding(config: cfg)
        let before = snapshot(layer)
        let d = cfg.embedDim, n = 6
        let ids = UnsafeMutableBufferPointer<Int32>.allocate(capacity: n), bad = UnsafeMutableBufferPointer<Int32>.allocate(capacity: n)
        _ = ids.initialize(from: [1, 2, 3, 4, 5, 6])
        _ = bad.initialize(from: [1, 2, 40, 4, 5, 6])
        let dy = filled(n * d, 1), out = filled(n * d), mean = filled(n), rstd = filled(n)
        let token = filled(layer.tokenEmbedding.weight.count), position = filled(layer.positionalEmbedding!.weight.count)
        let weight = filled(d), bias = filled(d), rows = filled(n * d)
        defer { for b in [dy, out, mean, rstd, token, position, weight, bias, rows] { b.deallocate() }; ids.deallocate(); bad.deallocate() }
        let all = CallGradients(tokenEmbedding: token, positionEmbedding: position, layerNormWeight: weight, layerNormBias: bias, tokenRows: rows)
        func expectError(_ code: GPTEmbeddingError.Code, _ text: String, _ body: () throws(GPTEmbeddingError) -> Void) {
            do throws(GPTEmbeddingError) { try body(); Issue.record("expected \(code): \(text)") } catch {
                #expect(error.code == code, "\(error.message)")
                #expect(error.message.contains(text), "\(error.message)")
            }
            for b in [out, mean, rstd, token, position, weight, bias, rows] { #expect(b.allSatisfy { $0 == 42 }, "\(text)") }
            #expect(snapshot(layer) == before)
        }
        let call = EmbeddingCall(ids: UnsafePointer(ids.baseAddress), batch: 2, seq: 3, training: true, mean: mean.baseAddress, rstd: rstd.baseAddress)
        let raw = UnsafeMutableRawPointer(out.baseAddress!), gp = UnsafeRawPointer(dy.baseAddress!)
        var badCall = call
        badCall.ids = UnsafePointer(bad.baseAddress)
        expectError(.outOfRange, "token id 40 at [0, 2] is out of range [0, 40)") { () throws(GPTEmbeddingError) in try layer.forward(badCall, into: raw, capacity: out.count) }
        expectError(.bufferTooSmall, "holds 119 floats, needs 120") { () throws(GPTEmbeddingError) in try layer.forward(call, into: raw, capacity: 119) }
        var noIds = call
        noIds.ids = nil
        expectError(.nullPointer, "ids is NULL") { () throws(GPTEmbeddingError) in try layer.forward(noIds, into: raw, capacity: out.count) }
        expectError(.nullPointer, "out is NULL") { () throws(GPTEmbeddingError) in try layer.forward(call, into: nil, capacity: out.count) }
        var negative = call
        negative.batch = -1
        expectError(.invalidArgument, "batch must be >= 0, got -1") { () throws(GPTEmbeddingError) in try layer.forward(negative, into: raw, capacity: out.count) }
        var far = call
        far.startPosition = 14
        expectError(.outOfRange, "position 16 at [0, 2]") { () throws(GPTEmbeddingError) in try layer.forward(far, into: raw, capacity: out.count) }
        expectError(.outOfRange, "token id 40") { () throws(GPTEmbeddingError) in try layer.backward(badCall, gradOutput: gp, count: 120, into: .buffers(all)) }
        expectError(.outOfRange, "token id 40") { () throws(GPTEmbeddingError) in try layer.backward(badCall, gradOutput: gp, count: 120, into: .layer) }
        expectError(.outOfRange, "position 16") { () throws(GPTEmbeddingError) in try layer.backward(far, gradOutput: gp, count: 120, into: .layer) }
        expectError(.invalidArgument, "grad_output has 119 elements") { () throws(GPTEmbeddingError) in try layer.backward(call, gradOutput: gp, count: 119, into: .buffers(all)) }
        expectError(.invalidArgument, "batch must be >= 0") { () throws(GPTEmbeddingError) in try layer.backward(negative, gradOutput: gp, count: 120, into: .layer) }
        expectError(.nullPointer, "grad_output is NULL") { () throws(GPTEmbeddingError) in try layer.backward(call, gradOutput: nil, count: 120, into: .buffers(all)) }
        expectError(.nullPointer, "ids is NULL") { () throws(GPTEmbeddingError) in try layer.backward(noIds, gradOutput: gp, count: 120, into: .layer) }
        var noMean = call
        noMean.mean = nil
        expectError(.nullPointer, "mean is NULL") { () throws(GPTEmbeddingError) in try layer.backward(noMean, gradOutput: gp, count: 120, into: .buffers(all)) }
        var noRstd = call
        noRstd.rstd = nil
        expectError(.nullPointer, "rstd is NULL") { () throws(GPTEmbeddingError) in try layer.backward(noRstd, gradOutput: gp, count: 120, into: .layer) }
        func short(_ b: UnsafeMutableBufferPointer<Float>) -> UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(rebasing: b[1...]) }
        for (name, g) in [("token_embedding", CallGradients(tokenEmbedding: short(token), tokenRows: rows)),
                          ("position_embedding", CallGradients(tokenEmbedding: token, positionEmbedding: short(position))),
                          ("layer_norm_weight", CallGradients(tokenEmbedding: token, layerNormWeight: short(weight))),
                          ("layer_norm_bias", CallGradients(layerNormWeight: weight, layerNormBias: short(bias))),
                          ("token_rows", CallGradients(tokenEmbedding: token, tokenRows: short(rows)))] {
            expectError(.invalidArgument, "the \(name) gradient buffer holds") { () throws(GPTEmbeddingError) in
                try layer.backward(call, gradOutput: gp, count: 120, into: .buffers(g))
            }
        }
        // A position buffer for a layer without learned positions; a shard's calls.
        let sinusoidal = try GPTEmbedding(config: config(Case(positions: .sinusoidal)))
        let plain = EmbeddingCall(ids: UnsafePointer(ids.baseAddress), batch: 2, seq: 3)
        expectError(.invalidArgument, "no learned position table") { () throws(GPTEmbeddingError) in
            try sinusoidal.backward(plain, gradOutput: gp, count: 120, into: .buffers(CallGradients(positionEmbedding: position)))
        }
        var shardConfig = config(Case())
        shardConfig.vocabShard = 0..<20
        let shard = try GPTEmbedding(config: shardConfig)
        expectError(.badState, "holds rows [0, 20)") { () throws(GPTEmbeddingError) in try shard.forward(plain, into: raw, capacity: out.count) }
        expectError(.badState, "holds rows [0, 20)") { () throws(GPTEmbeddingError) in try shard.backward(plain, gradOutput: gp, count: 120, into: .buffers(all)) }
        expectError(.badState, "holds rows [0, 20)") { () throws(GPTEmbeddingError) in try shard.backward(plain, gradOutput: gp, count: 120, into: .layer) }
    }

    /// The error `body` throws, or `nil`.
    func failure(_ body: () throws -> Void) -> GPTEmbeddingError? {
        do { try body() } catch { return error as? GPTEmbeddingError }
        return nil
    }

    /// Explicit calls keep nothing and advance nothing: the stateful forward that follows
    /// draws mask 0, and an explicit forward leaves no state for the stateful backward.
    @Test func explicitCallsLeaveTheLayersStreamAlone() throws {
        let cfg = config(Case(dropout: 0.5))
        let a = try GPTEmbedding(config: cfg), b = try GPTEmbedding(config: cfg)
        let ids: [Int32] = [1, 2, 3, 4]
        try withCall(ids, 1, 4, ln: false, offset: 9) { call in
            _ = try a.forward(call)
            try [Float](repeating: 1, count: 80).withUnsafeBytes { try a.backward(call, gradOutput: $0.baseAddress, count: 80, into: .layer) }
        }
        #expect(!a.hasTrainingState)
        #expect(bits(try a.forward(ids: ids, batch: 1, seq: 4, training: true)) == bits(try b.forward(ids: ids, batch: 1, seq: 4, training: true)))
    }

    /// Borrowed tables: a layer with other weights, given another layer's tables (token,
    /// position, layer norm; f32 and bf16) for the call, computes exactly what that layer
    /// computes with its own, forward and backward; the borrowed memory is never written.
    @Test(arguments: [TensorDType.float32, .bfloat16])
    func borrowedTablesReplaceTheLayers(dtype: TensorDType) throws {
        var cfg = config(Case(dtype: dtype, layerNorm: true, dropout: 0.3, padding: 2))
        let owner = try GPTEmbedding(config: cfg)
        cfg.seed = 99
        let borrower = try GPTEmbedding(config: cfg)
        var rng = TestRandom(21)
        try owner.layerNormWeight.setValues(rng.floats(20))
        try owner.layerNormBias.setValues(rng.floats(20))
        func bytes(_ t: ParameterTensor) -> [UInt8] {
            Array(UnsafeRawBufferPointer(start: t.rawData.pointer, count: t.count * t.dtype.byteCount))
        }
        let wte = bytes(owner.tokenEmbedding.weight), wpe = bytes(owner.positionalEmbedding!.weight)
        let gamma = owner.layerNormWeight.values, beta = owner.layerNormBias.values
        let ids: [Int32] = [1, 2, 2, 5, 7, 2, 0, 11]
        let dy = rng.floats(8 * 20)
        let own = try withCall(ids, 2, 4, ln: true, offset: 3) { call in
            (try owner.forward(call), try gradients(owner, call, dy, "tpwbr"))
        }
        try wte.withUnsafeBytes { t in
            try wpe.withUnsafeBytes { p in
                try gamma.withUnsafeBufferPointer { g in
                    try beta.withUnsafeBufferPointer { b in
                        try withCall(ids, 2, 4, ln: true, offset: 3) { plain in
                            var call = plain
                            call.tokenEmbedding = BorrowedTable(t.baseAddress!, count: owner.tokenEmbedding.weight.count)
                            call.positionEmbedding = BorrowedTable(p.baseAddress!, count: owner.positionalEmbedding!.weight.count)
                            call.layerNormWeight = g
                            call.layerNormBias = b
                            let y = try borrower.forward(call)
                            let grads = try gradients(borrower, call, dy, "tpwbr")
                            #expect(bits(y) == bits(own.0))
                            #expect(bits(grads.token) == bits(own.1.token) && bits(grads.position) == bits(own.1.position))
                            #expect(bits(grads.weight) == bits(own.1.weight) && bits(grads.bias) == bits(own.1.bias))
                            #expect(bits(grads.rows) == bits(own.1.rows))
                            #expect(bits(try borrower.forward(plain)) != bits(own.0), "the borrower's own tables differ")
                            // Wrong shapes and misaligned tables are refused.
                            var short = call
                            short.tokenEmbedding!.count -= 1
                            #expect(failure { _ = try borrower.forward(short) }?.message.contains("the borrowed token_embedding has") == true)
                            var shifted = call
                            shifted.layerNormWeight = UnsafeBufferPointer(start: UnsafePointer<Float>(bitPattern: Int(bitPattern: g.baseAddress!) + 1), count: 20)
                            #expect(failure { _ = try borrower.forward(shifted) }?.message.contains("is not aligned") == true)
                        }
                    }
                }
            }
        }
        #expect(bytes(owner.tokenEmbedding.weight) == wte && owner.layerNormWeight.values == gamma)
        let sinusoidal = try GPTEmbedding(config: config(Case(positions: .sinusoidal)))
        try wpe.withUnsafeBytes { p in
            let call = EmbeddingCall<Int32>(ids: nil, batch: 0, seq: 0)
            var borrowing = call
            borrowing.positionEmbedding = BorrowedTable(p.baseAddress!, count: 16 * 20)
            #expect(failure { _ = try sinusoidal.forward(borrowing) }?.message.contains("no learned position table") == true)
        }
    }

    /// Forward and backward calls into caller buffers only read the layer: several threads
    /// run them at once on one layer (different offsets, their own buffers) and get what
    /// each gets alone.
    @Test func callsIntoBuffersRunConcurrentlyOnOneLayer() throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 300, dim: 64, maxSeqLen: 64, dropout: 0.2, threads: 2))
        var rng = TestRandom(12)
        let ids = (0..<(4 * 64)).map { _ in Int32(rng.int(300)) }
        let dy = rng.floats(ids.count * 64)
        @Sendable func run(_ offset: UInt64) -> [UInt32] {
            var out = [Float](repeating: 0, count: dy.count), rows = [Float](repeating: 0, count: dy.count)
            var dwte = [Float](repeating: 0, count: 300 * 64), dg = [Float](repeating: 0, count: 64)
            var mean = [Float](repeating: 0, count: ids.count), rstd = [Float](repeating: 0, count: ids.count)
            do {
                try ids.withUnsafeBufferPointer { i in
                    try mean.withUnsafeMutableBufferPointer { m in
                        try rstd.withUnsafeMutableBufferPointer { r in
                            let call = EmbeddingCall(ids: i.baseAddress, batch: 4, seq: 64, training: true, useLayerNorm: true,
                                                     dropoutSeed: 1, dropoutOffset: offset, mean: m.baseAddress, rstd: r.baseAddress)
                            try out.withUnsafeMutableBufferPointer { o in
                                try layer.forward(call, into: UnsafeMutableRawPointer(o.baseAddress), capacity: o.count)
                            }
                            try dwte.withUnsafeMutableBufferPointer { t in
                                try dg.withUnsafeMutableBufferPointer { g in
                                    try rows.withUnsafeMutableBufferPointer { rw in
                                        try dy.withUnsafeBytes { y in
                                            try layer.backward(call, gradOutput: y.baseAddress, count: dy.count,
                                                               into: .buffers(CallGradients(tokenEmbedding: t, layerNormWeight: g, tokenRows: rw)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            } catch { return [] }
            return (out + rows + dwte + dg).map(\.bitPattern)
        }
        let alone = (0..<4).map { run(UInt64($0)) }
        #expect(alone.allSatisfy { !$0.isEmpty } && alone[0] != alone[1])
        let same = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for _ in 0..<5 where run(UInt64(i % 4)) == alone[i % 4] { same.withLock { $0 += 1 } }
        }
        #expect(same.withLock { $0 } == 40)
        #expect(!layer.tokenEmbedding.weight.hasGradient)
    }

    /// Empty calls (batch or seq 0): valid, nothing read or written, pointers may be nil; a
    /// training forward of 0 tokens keeps an empty state whose backward adds nothing.
    @Test func emptyCalls() throws {
        let layer = try GPTEmbedding(config: config(Case(layerNorm: true, dropout: 0.3)))
        let before = snapshot(layer)
        for (b, t) in [(0, 3), (2, 0), (0, 0)] {
            #expect(try layer.forward(ids: [Int32](), batch: b, seq: t).isEmpty)
            #expect(try layer.forward(ids: [Int64](), batch: b, seq: t, positions: [], training: true, useLayerNorm: true).isEmpty)
            #expect(layer.hasTrainingState)
            try layer.backward(gradOutput: [Float](), batch: b, seq: t)
            let call = EmbeddingCall<Int32>(ids: nil, batch: b, seq: t, training: true, useLayerNorm: true)
            try layer.forward(call, into: nil, capacity: 0)
            #expect(try layer.forward(call).isEmpty)
            try layer.backward(call, gradOutput: nil, count: 0, into: .layer)
            try layer.backward(call, gradOutput: nil, count: 0, into: .buffers(CallGradients()))
            #expect(try layer.forwardPartial(ids: [Int32](), batch: b, seq: t, training: true).isEmpty)
            var none = [Float]()
            try layer.forwardFinish(batch: b, seq: t, summed: &none)
            try layer.backward(gradOutput: [Float](), batch: b, seq: t)
        }
        #expect(try layer([[Int32]]()).isEmpty)
        // The backward of an empty forward must still match its shape.
        _ = try layer.forward(ids: [Int32](), batch: 0, seq: 5, training: true)
        #expect(throws: GPTEmbeddingError.self) { try layer.backward(gradOutput: [Float](), batch: 5, seq: 0) }
        #expect(throws: GPTEmbeddingError.self) { try layer.forward(ids: [Int32](), batch: -1, seq: 0) }
        #expect(snapshot(layer) == before)
        #expect(!layer.tokenEmbedding.weight.hasGradient)
    }
}
