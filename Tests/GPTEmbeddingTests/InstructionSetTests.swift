import CKernelDispatch
@testable import GPTEmbedding
import Testing

/// The kernels of every CPU path give the same bits (issue 10): the baseline and the
/// x86-64-v3 kernels, side by side in one process, on the golden cases and on random shapes,
/// at 1 and 2 threads. (Tests/isa/run.sh compares them on emulated CPUs too.)
@Suite struct InstructionSetTests {
    static let baseline = Kernels.load(.baseline)
    static let v3 = Kernels.load(.x86_64_v3)
    /// The v3 kernels are linked into the tests; they load wherever the CPU can run them.
    static let cpuHasV3 = gpte_cpu_supports_x86_64_v3() != 0

    @Test func everyBuildHasTheBaselineAndTheTestsHaveV3WhereTheCPUCanRunIt() {
        #expect(Self.baseline != nil)
        #expect((Self.v3 != nil) == Self.cpuHasV3)
        #expect(InstructionSet.supported.last == .baseline)
        #expect(InstructionSet.supported.first == (Self.cpuHasV3 ? .x86_64_v3 : .baseline))
    }

    @Test func theEnvironmentVariableSelectsOrIsRefusedWithAClearMessage() throws {
        #expect(try Kernels.select(environment: nil).get().isa == InstructionSet.supported[0])
        #expect(try Kernels.select(environment: "").get().isa == InstructionSet.supported[0])
        #expect(try Kernels.select(environment: "auto").get().isa == InstructionSet.supported[0])
        #expect(try Kernels.select(environment: "baseline").get().isa == .baseline)
        switch Kernels.select(environment: "avx512") {
        case .success: Issue.record("an unknown path was accepted")
        case .failure(let e):
            #expect(e.code == .unsupportedCPU)
            #expect(e.message.contains("GPT_EMBEDDING_ISA=avx512 is not a kernel path"))
            #expect(e.message.contains("this CPU supports \(InstructionSet.supported.map(\.rawValue).joined(separator: ", "))"))
        }
        let v3 = Kernels.select(environment: "x86-64-v3")
        if Self.cpuHasV3 {
            #expect(try v3.get().isa == .x86_64_v3)
        } else {
            #expect(throws: GPTEmbeddingError.self) { try v3.get() }
        }
    }

    /// Everything a layer computes in a training step: output, gradients, and the tables
    /// its seed initialised.
    static func run(_ config: GPTEmbeddingConfig, _ kernels: Kernels, ids: [Int32], batch: Int, seq: Int,
                    positions: [Int32]?, start: Int, layerNorm: Bool, setup: (GPTEmbedding) throws -> Void = { _ in })
        throws -> [[UInt32]] {
        let layer = try GPTEmbedding(config: config, kernels: kernels)
        #expect(layer.instructionSet == kernels.isa)
        let initial = layer.parameters.map(\.values)
        try setup(layer)
        var results = initial
        var rng = TestRandom(99)
        for _ in 0..<2 {
            let out = try layer.forward(ids: ids, batch: batch, seq: seq, positions: positions, startPosition: start,
                                        training: true, useLayerNorm: layerNorm)
            let eval = try layer.forward(ids: ids, batch: batch, seq: seq, positions: positions, startPosition: start,
                                         useLayerNorm: layerNorm)
            try layer.backward(gradOutput: rng.floats(out.count), batch: batch, seq: seq)
            results += [out, eval]
        }
        results += layer.parameters.map(\.gradient)
        return results.map { $0.map(\.bitPattern) }
    }

    @Test(.enabled(if: cpuHasV3), arguments: GoldenVectorTests.files, [1, 2])
    func goldenCasesGiveTheSameBitsOnBothPaths(file: GoldenFile, threads: Int) throws {
        let paths = try [Self.baseline, Self.v3].map { kernels in
            let kernels = try #require(kernels)
            var c = file.config(threads: threads)
            c.dropout = 0.25
            return try Self.run(c, kernels, ids: file.ints["ids"]!.map { Int32($0) }, batch: file.int("batch"),
                                seq: file.int("seq"),
                                positions: file.flag("explicit_positions") ? file.ints["positions"]!.map { Int32($0) } : nil,
                                start: file.int("start_position"), layerNorm: file.flag("layer_norm")) { layer in
                try layer.tokenEmbedding.weight.setValues(file.floats["wte"]!)
                if let wpe = layer.positionalEmbedding { try wpe.weight.setValues(file.floats["wpe"]!) }
                try layer.layerNormWeight.setValues(file.floats["ln_weight"]!)
                try layer.layerNormBias.setValues(file.floats["ln_bias"]!)
            }
        }
        #expect(paths[0] == paths[1], "\(file), \(threads) threads: the paths differ")
    }

    @Test(.enabled(if: cpuHasV3), arguments: 0..<24)
    func randomShapesGiveTheSameBitsOnBothPaths(seed: Int) throws {
        var rng = TestRandom(UInt64(1000 + seed))
        var c = GPTEmbeddingConfig()
        c.vocabSize = 1 + rng.int(300)
        c.embedDim = [1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 129, 768][rng.int(13)]
        c.positionEncoding = [.learned, .sinusoidal, .none][rng.int(3)]
        c.maxSeqLen = c.positionEncoding == .none ? 0 : 1 + rng.int(40)
        c.dropout = [0, 0.1, 0.5, 1][rng.int(4)]
        c.scaleEmbeddings = rng.int(2) == 1
        c.paddingIdx = rng.int(3) == 0 ? rng.int(c.vocabSize) : nil
        c.initStd = 0.3
        c.seed = UInt64(seed)
        let batch = 1 + rng.int(4), seq = 1 + rng.int(c.positionEncoding == .learned ? c.maxSeqLen : 60)
        let ids = (0..<batch * seq).map { _ in Int32(rng.int(c.vocabSize)) }
        let explicit = rng.int(3) == 0
        let limit = c.positionEncoding == .learned ? c.maxSeqLen : 100
        let positions = explicit ? (0..<batch * seq).map { _ in Int32(rng.int(limit)) } : nil
        // Sinusoidal and no positions may start past the cached rows.
        let start = explicit || c.positionEncoding == .learned ? 0 : rng.int(50)
        let layerNorm = rng.int(3) != 0
        for threads in [1, 2] {
            c.numThreads = threads
            let a = try Self.run(c, #require(Self.baseline), ids: ids, batch: batch, seq: seq, positions: positions,
                                 start: start, layerNorm: layerNorm)
            let b = try Self.run(c, #require(Self.v3), ids: ids, batch: batch, seq: seq, positions: positions,
                                 start: start, layerNorm: layerNorm)
            #expect(a == b, "seed \(seed), \(threads) threads, \(c): the paths differ")
        }
    }

    /// Outputs written with streaming stores (2M floats or more; here the layers' threshold
    /// is lowered so that a small call streams) give the same bits on both paths.
    @Test(.enabled(if: cpuHasV3), arguments: [1, 2])
    func streamingOutputsGiveTheSameBitsOnBothPaths(threads: Int) throws {
        var c = GPTEmbeddingConfig()
        c.vocabSize = 300
        c.embedDim = 136
        c.maxSeqLen = 96
        c.dropout = 0.1
        c.numThreads = threads
        var rng = TestRandom(5)
        let ids = (0..<4 * 96).map { _ in Int32(rng.int(300)) }
        let streams: (GPTEmbedding) -> Void = { $0.streamingThreshold = 1024 }
        let a = try Self.run(c, #require(Self.baseline), ids: ids, batch: 4, seq: 96, positions: nil, start: 0, layerNorm: true,
                             setup: streams)
        let b = try Self.run(c, #require(Self.v3), ids: ids, batch: 4, seq: 96, positions: nil, start: 0, layerNorm: true,
                             setup: streams)
        #expect(a == b)
    }

    /// The v3 kernels convert f16 with F16C where it is exact and with integers elsewhere
    /// (NaNs, subnormals): every f16 value widens, and every rounding edge narrows, to the
    /// same bits on both paths, in vectors mixing special and ordinary lanes.
    @Test(.enabled(if: cpuHasV3)) func bothPathsConvertF16Alike() throws {
        let b = try #require(Self.baseline), v = try #require(Self.v3)
        let f16 = Int32(TensorDType.float16.rawValue), f32 = Int32(TensorDType.float32.rawValue)
        // Every f16 bit pattern, in order and shuffled (so that NaNs and subnormals share
        // vectors with normal values), plus an odd tail.
        var bits = (0...UInt16.max).map { $0 }
        bits += bits.enumerated().map { bits[($0.offset &* 40503) & 0xFFFF] } + [0x7E01, 0x0001, 0x3C00]
        var wb = [Float](repeating: 0, count: bits.count), wv = wb
        b.convert(&wb, f32, bits, f16, Int64(bits.count))
        v.convert(&wv, f32, bits, f16, Int64(bits.count))
        let wrong = bits.indices.first { wb[$0].bitPattern != wv[$0].bitPattern }
        #expect(wrong == nil, "f16 \(wrong.map { String(bits[$0], radix: 16) } ?? "") widens differently on the two paths")
        // Floats around every f16 boundary: halfway points, subnormal results, overflow,
        // NaNs with payloads, signed zeros, float subnormals.
        var floats: [Float] = [0, -0, .infinity, -.infinity, .nan, Float(bitPattern: 0x7FA0_0001), Float(bitPattern: 0xFFC1_2345),
                               65504, 65519.99, 65520, 1e-45, -1e-40, 6.1e-5, 5.9e-8, 2.98e-8, 3e-8]
        for h in stride(from: 0, through: 0x7BFF, by: 7) {
            let lo = Float(Float16(bitPattern: UInt16(h))), hi = Float(Float16(bitPattern: UInt16(h + 1)))
            let mid = (lo + hi) / 2
            floats += [lo, mid, mid.nextUp, mid.nextDown, -mid, -mid.nextUp]
        }
        floats += floats.enumerated().map { floats[($0.offset &* 7919) % floats.count] }
        var nb = [UInt16](repeating: 0, count: floats.count), nv = nb
        b.convert(&nb, f16, floats, f32, Int64(floats.count))
        v.convert(&nv, f16, floats, f32, Int64(floats.count))
        let differs = floats.indices.first { nb[$0] != nv[$0] }
        #expect(differs == nil, "\(differs.map { floats[$0] } ?? 0) rounds to f16 differently on the two paths")
    }
}
