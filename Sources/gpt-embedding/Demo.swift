import ArgumentParser
import Dispatch
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

/// `gpt-embedding demo`: the seed's built-in demonstration, on the seed's default
/// configuration (GPT-2 small shapes) unless told otherwise.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the built-in demonstration: shapes, parameter counts, output statistics, a gradient check.")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Sequences per batch.")
    var batch = 2

    @Option(help: "Tokens per sequence.")
    var seq = 10

    @Option(help: "Open this checkpoint instead of a random layer: a .safetensors file or a folder (model.safetensors, or a sharded model.safetensors.index.json). No random initialisation.")
    var checkpoint: String?

    @Flag(help: "With --checkpoint: map the tables from the file (copy-on-write) instead of reading them.")
    var mmap = false

    @Option(help: "With --checkpoint: convert the tables to float32, bfloat16 or float16 (default: keep the file's dtype).")
    var dtype: String?

    func run() throws {
        let config = try options.config()
        do { try demonstrate(config) } catch let e as GPTEmbeddingError {
            throw ValidationError(e.message)
        }
    }

    private func demonstrate(_ requested: GPTEmbeddingConfig) throws {
        print("gpt-embedding demo")
        var clock = Stopwatch()
        let layer: GPTEmbedding
        if let checkpoint {
            var o = OpenOptions()
            o.mmap = mmap
            if let dtype {
                guard let t = TensorDType.allCases.first(where: { $0.description == dtype }) else {
                    throw ValidationError("--dtype \(dtype): expected float32, bfloat16 or float16")
                }
                o.dtype = t
            }
            o.dropout = requested.dropout
            o.numThreads = requested.numThreads
            o.seed = requested.seed
            o.layerNormEps = requested.layerNormEps
            layer = try GPTEmbedding(contentsOf: checkpoint, options: o)
        } else {
            layer = try GPTEmbedding(config: requested)
        }
        let created = clock.lap()
        let config = layer.config
        print(Report.configuration(config))
        print(Report.kernelPath())

        section("Model configurations (token + position parameters; layer norm adds 2 x D)")
        var rows: [[String]] = []
        for name in GPTEmbeddingConfig.presetNames {
            let c = GPTEmbeddingConfig.preset(named: name)!
            let n = try c.parameterCounts()
            rows.append([name, Report.grouped(c.vocabSize), Report.grouped(c.embedDim), Report.grouped(n.embeddingTables), Report.grouped(n.total)])
        }
        print(Report.table(header: ["model", "vocab", "embed dim", "embedding params", "with layer norm"], rows: rows))
        print("(the seed's README lists ~65.1M and ~81.2M for large and xl; the tables hold 65,639,680 and 82,049,600)")

        section(checkpoint == nil ? "Create the layer" : "Open the checkpoint")
        if let checkpoint {
            print("opened \(checkpoint) in \(Report.fixed(created * 1000, 1)) ms (no random initialisation, tables \(mmap ? "mapped where possible" : "read"))")
        } else {
            print("initialised in \(Report.fixed(created * 1000, 1)) ms")
        }
        print("\(Report.grouped(layer.numParameters)) parameters, \(Report.mib(layer.memoryBytes)) MiB in the layer's memory")
        for p in layer.parameters {
            print("  \(p.name) [\(p.rows), \(p.cols)] \(p.dtype)\(p.isMapped ? " (mapped)" : ""): \(Report.describe(p.values))")
        }

        section("Forward (eval)")
        var rng = SplitMix(seed: config.seed &+ 1)
        let ids = (0..<(batch * seq)).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
        print("input_ids [\(batch), \(seq)]: \(ids.prefix(min(seq, 10)).map(String.init).joined(separator: " "))\(seq > 10 ? " ..." : "")")
        let out = try layer.forward(ids: ids, batch: batch, seq: seq)
        print("output shape [\(batch), \(seq), \(config.embedDim)]: \(Report.describe(out))")

        section("Forward (training: layer norm + dropout \(config.dropout))")
        let train = try layer.forward(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: true)
        let zeros = train.filter { $0 == 0 }.count
        print("output: \(Report.describe(train))")
        print("dropped \(Report.fixed(100 * Double(zeros) / Double(train.count), 2)) % of elements (expected \(Report.fixed(100 * Double(config.dropout), 2)) %)")

        section("Backward (grad_output = random normal)")
        let g = (0..<train.count).map { _ in Float(rng.normal()) }
        try layer.backward(gradOutput: g, batch: batch, seq: seq)
        for p in layer.parameters {
            let gr = p.gradient
            let norm = gr.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let touched = stride(from: 0, to: gr.count, by: p.cols).filter { r in (r..<(r + p.cols)).contains { gr[$0] != 0 } }.count
            print("  d \(p.name): norm \(Report.fixed(norm, 4)), rows touched \(touched) of \(p.rows)")
        }

        section("Gradient check (central differences, dropout off, layer norm on)")
        try gradientCheck(config, ids: ids, rng: &rng)

        section("Speed (eval forward, 8 x \(Self.speedSeq(config)) tokens, median of 5)")
        try speed(layer, config)
    }

    /// Compares d/dw sum(out * g) from backward with central differences for a few
    /// parameter entries that the input uses.
    private func gradientCheck(_ base: GPTEmbeddingConfig, ids: [Int32], rng: inout SplitMix) throws {
        var c = base
        c.dropout = 0
        c.weightDType = .float32  // finite differences need float32 steps
        let layer = try GPTEmbedding(config: c)
        let g = (0..<(ids.count * c.embedDim)).map { _ in Float(rng.normal()) }
        _ = try layer.forward(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: true)
        try layer.backward(gradOutput: g, batch: batch, seq: seq)

        func loss() throws -> Double {
            let y = try layer.forward(ids: ids, batch: batch, seq: seq, useLayerNorm: true)
            return zip(y, g).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var worst = 0.0
        var checks: [(ParameterTensor, Int)] = [(layer.tokenEmbedding.weight, Int(ids[0]) * c.embedDim + 3),
                                                (layer.layerNormWeight, 5), (layer.layerNormBias, 7)]
        if let wpe = layer.positionalEmbedding?.weight { checks.append((wpe, 1 * c.embedDim + 2)) }
        for (tensor, index) in checks {
            let data = tensor.data
            let saved = data[index]
            let h: Float = 1e-2
            data[index] = saved + h
            let up = try loss()
            data[index] = saved - h
            let down = try loss()
            data[index] = saved
            let numeric = (up - down) / (Double(h) * 2)
            let analytic = Double(tensor.gradient[index])
            let rel = abs(numeric - analytic) / max(abs(analytic), 1e-3)
            worst = max(worst, rel)
            print("  \(tensor.name)[\(index)]: backward \(Report.sci(analytic)), finite difference \(Report.sci(numeric)), relative error \(Report.sci(rel))")
        }
        print(worst < 2e-2 ? "gradient check passed (worst relative error \(Report.sci(worst)))" : "GRADIENT CHECK FAILED (worst relative error \(Report.sci(worst)))")
        if worst >= 2e-2 { throw ExitCode.failure }
    }

    /// The speed section's sequence length. Learned positions cap it (their rows less OPT's
    /// position offset: positions run over [-offset, max_seq_len - offset)); sinusoidal and
    /// no positions do not.
    private static func speedSeq(_ c: GPTEmbeddingConfig) -> Int {
        c.positionEncoding == .learned ? max(1, min(1024, c.maxSeqLen - c.positionOffset)) : 1024
    }

    private func speed(_ layer: GPTEmbedding, _ c: GPTEmbeddingConfig) throws {
        let b = 8, t = Self.speedSeq(c)
        var rng = SplitMix(seed: 7)
        let ids = (0..<(b * t)).map { _ in Int32(rng.next() % UInt64(c.vocabSize)) }
        var out = [Float](repeating: 0, count: b * t * c.embedDim)
        var times: [Double] = []
        for _ in 0..<6 {
            var clock = Stopwatch()
            try ids.withUnsafeBufferPointer { i in
                try out.withUnsafeMutableBufferPointer { o in try layer.forward(ids: i, batch: b, seq: t, into: o) }
            }
            times.append(clock.lap())
        }
        let median = times.dropFirst().sorted()[2]
        let bytes = Double(b * t * c.embedDim * 4 * 3)  // read token rows and position rows, write the output
        print("\(Report.fixed(median * 1000, 2)) ms, \(Report.fixed(bytes / median / 1e9, 1)) GB/s moved (see the benchmark for the full table)")
    }

    private func section(_ title: String) {
        print("")
        print("== \(title)")
    }
}

/// Wall-clock time for the demo's own timing.
struct Stopwatch {
    private var start = DispatchTime.now().uptimeNanoseconds
    /// Seconds since the previous lap (or creation).
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { start = now }
        return Double(now - start) / 1e9
    }
}

/// A small seeded generator for the demo's inputs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) * 0x1p-53 }
    mutating func normal() -> Double {
        let r = (-2 * log(uniform())).squareRoot()
        return r * cos(2 * Double.pi * uniform())
    }
}
