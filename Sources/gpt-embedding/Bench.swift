import ArgumentParser
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

/// `gpt-embedding bench`: times this library on this machine. The side-by-side comparison
/// with a C baseline, PyTorch and the memory bandwidth is `make bench` (bench/run.py).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time forward and backward of the layer (medians of repeated runs).",
        discussion: "For the comparison with a plain C loop, PyTorch and this machine's memory bandwidth, run `make bench` in the repository.")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Batch shapes to time, as BxT (comma-separated).")
    var shapes = "1x1,1x1024,8x1024,64x128"

    @Option(help: "Timed repetitions per case (after two warm-up runs).")
    var repeats = 15

    func run() throws {
        var config = try options.config()
        let shapeList = try shapes.split(separator: ",").map { s -> (Int, Int) in
            let parts = s.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] > 0, parts[1] > 0 else { throw ValidationError("bad shape '\(s)': expected BxT, e.g. 8x1024") }
            return (parts[0], parts[1])
        }
        guard repeats > 0 else { throw ValidationError("--repeats must be > 0") }
        print(Report.configuration(config))
        var rows: [[String]] = []
        do {
            config.dropout = 0
            let plain = try GPTEmbedding(config: config)
            config.dropout = 0.1
            let train = try GPTEmbedding(config: config)
            for (i, (b, t)) in shapeList.enumerated() {
                guard t <= config.maxSeqLen || config.positionEncoding != .learned else {
                    throw ValidationError("seq \(t) is longer than max_seq_len \(config.maxSeqLen)")
                }
                printError("[\(i + 1)/\(shapeList.count)] timing \(b)x\(t) ...")
                rows += try time(plain: plain, train: train, batch: b, seq: t)
            }
        } catch let e as GPTEmbeddingError {
            throw ValidationError(e.message)
        }
        print("")
        print(Report.table(header: ["B×T", "op", "median", "GB/s"], rows: rows))
    }

    private func time(plain: GPTEmbedding, train: GPTEmbedding, batch b: Int, seq t: Int) throws -> [[String]] {
        let d = plain.embedDim, n = b * t
        var rng = SplitMix(seed: 42)
        let ids = (0..<n).map { _ in Int32(rng.next() % UInt64(plain.config.vocabSize)) }
        let dy = (0..<(n * d)).map { _ in Float(rng.normal()) }
        var out = [Float](repeating: 0, count: n * d)
        func forward(_ layer: GPTEmbedding, training: Bool, norm: Bool) throws {
            try ids.withUnsafeBufferPointer { i throws in
                try out.withUnsafeMutableBufferPointer { o throws in
                    try layer.forward(ids: i, batch: b, seq: t, training: training, useLayerNorm: norm, into: o)
                }
            }
        }
        func backward(_ layer: GPTEmbedding) throws {
            try dy.withUnsafeBufferPointer { g throws in try layer.backward(gradOutput: g, batch: b, seq: t) }
        }
        let tokenBytes = Double(n * d * 4)
        let cases: [(String, Double, () throws -> Void, () throws -> Void)] = [
            ("forward (eval)", 2 * tokenBytes, {}, { try forward(plain, training: false, norm: false) }),
            ("forward (train, LN + dropout)", 2 * tokenBytes, {}, { try forward(train, training: true, norm: true) }),
            ("backward", 3 * tokenBytes, { try forward(plain, training: true, norm: false) }, { try backward(plain) }),
            ("backward (LN + dropout)", 4 * tokenBytes, { try forward(train, training: true, norm: true) }, { try backward(train) }),
            ("zero_grad", tokenBytes, { try forward(plain, training: true, norm: false); try backward(plain) }, { plain.zeroGrad() }),
        ]
        return try cases.map { name, bytes, prepare, body in
            var times: [Double] = []
            for k in 0..<(repeats + 2) {
                try prepare()
                var clock = Stopwatch()
                try body()
                let s = clock.lap()
                if k >= 2 { times.append(s) }
            }
            let median = times.sorted()[times.count / 2]
            let shown = median < 1e-4 ? Report.fixed(median * 1e6, 2) + " µs" : Report.fixed(median * 1000, 3) + " ms"
            return ["\(b)×\(t)", name, shown, Report.fixed(bytes / median / 1e9, 1)]
        }
    }

    private func printError(_ s: String) {
        var stderr = StandardError()
        print(s, to: &stderr)
    }
}

/// Progress goes to stderr, so stdout stays the table.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        _ = string.utf8CString.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, $0.count - 1) }
    }
}
