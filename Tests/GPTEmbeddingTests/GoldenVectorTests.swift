import GPTEmbedding
import Testing

/// The Swift API against the PyTorch golden vectors, at 1 and 2 threads.
@Suite struct GoldenVectorTests {
    static let files: [GoldenFile] = (try? GoldenFile.all()) ?? []

    @Test func goldenFilesExist() {
        #expect(Self.files.count >= 10, "expected the golden files in \(GoldenFile.directory.path)")
    }

    @Test(arguments: files, [1, 2])
    func forwardAndBackwardMatchPyTorch(file: GoldenFile, threads: Int) throws {
        let layer = try file.makeLayer(threads: threads)
        let b = file.int("batch"), t = file.int("seq")
        let ids64 = file.ints["ids"]!
        let ids32 = ids64.map { Int32($0) }
        let explicit = file.flag("explicit_positions")
        let positions = file.ints["positions"]!
        let start = file.int("start_position")
        let ln = file.flag("layer_norm")

        // Eval and training (dropout 0) forwards, int64 and int32 ids.
        let eval = try layer.forward(ids: ids64, batch: b, seq: t, positions: explicit ? positions : nil,
                                     startPosition: start, useLayerNorm: ln)
        #expect(firstMismatch(eval, file.floats["out"]!) == nil, "\(file) eval: \(firstMismatch(eval, file.floats["out"]!) ?? "")")
        let train = try layer.forward(ids: ids32, batch: b, seq: t, positions: explicit ? positions.map { Int32($0) } : nil,
                                      startPosition: start, training: true, useLayerNorm: ln)
        #expect(train == eval, "\(file): training forward with dropout 0 must equal eval")

        try layer.backward(gradOutput: file.floats["grad_output"]!, batch: b, seq: t)
        let expected: [(ParameterTensor, String)] = [(layer.tokenEmbedding.weight, "grad_wte"),
                                                     (layer.layerNormWeight, "grad_ln_weight"),
                                                     (layer.layerNormBias, "grad_ln_bias")]
            + (layer.positionalEmbedding.map { [($0.weight, "grad_wpe")] } ?? [])
        for (tensor, key) in expected {
            let mismatch = firstMismatch(tensor.gradient, file.floats[key]!)
            #expect(mismatch == nil, "\(file) \(key): \(mismatch ?? "")")
        }
    }

    @Test(arguments: files.filter { $0.scalars["position_encoding"] == "sinusoidal" })
    func sinusoidalTableMatchesPyTorch(file: GoldenFile) throws {
        let d = file.int("embed_dim")
        let table = file.floats["pos_table"]!
        let table2 = try SinusoidalPositionalEmbedding(maxSeqLen: file.int("max_seq_len"), embedDim: d)
            .forward(seqLen: table.count / d)
        #expect(firstMismatch(table2, table) == nil)
    }

    /// Results must not depend on the thread count, to the bit.
    @Test(arguments: files)
    func bitIdenticalAcrossThreadCounts(file: GoldenFile) throws {
        var results: [[[Float]]] = []
        for threads in [1, 2, 3] {
            let layer = try file.makeLayer(threads: threads)
            let b = file.int("batch"), t = file.int("seq")
            let out = try layer.forward(ids: file.ints["ids"]!, batch: b, seq: t, startPosition: 0,
                                        training: true, useLayerNorm: true)
            try layer.backward(gradOutput: file.floats["grad_output"]!, batch: b, seq: t)
            results.append([out] + layer.parameters.map(\.gradient))
        }
        #expect(results[0] == results[1])
        #expect(results[0] == results[2])
    }
}
