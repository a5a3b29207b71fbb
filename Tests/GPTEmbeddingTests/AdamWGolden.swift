import Foundation
import Testing

/// One AdamW golden file of `Tests/golden/adamw/` (format `adamw-1`, described in that
/// folder's README), produced from PyTorch by `Tests/golden/adamw/generate_adamw.py`:
/// a flat map from key to a typed array. Keys of step `k` (1-based) end in `.k`.
///
///     let g = try AdamWGolden.named("lazy")
///     g.floats("wte", step: 3)          // == g.floats("wte.3"): [Float]?
///     g.scalar("lr", step: 3)           // Double? (one-value entries and numeric header scalars)
///     g.has("master.wte.1")             // the bf16 case's masters
struct AdamWGolden: CustomStringConvertible, Sendable {
    let path: String
    /// Header scalars (`key value`), as written.
    private(set) var texts: [String: String] = [:]
    private(set) var intArrays: [String: [Int64]] = [:]
    private(set) var floatArrays: [String: [Float]] = [:]
    private(set) var doubleArrays: [String: [Double]] = [:]
    /// Every key, in file order.
    private(set) var keys: [String] = []

    var description: String { texts["name"] ?? path }

    /// `Tests/golden/adamw`, found from this source file's location.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("golden").appendingPathComponent("adamw")

    /// The case files, sorted by name.
    static func paths() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".txt") }.sorted()
            .map { directory.appendingPathComponent($0).path }
    }

    static func all() throws -> [AdamWGolden] { try paths().map { try AdamWGolden(path: $0) } }

    static func named(_ name: String) throws -> AdamWGolden {
        try AdamWGolden(path: directory.appendingPathComponent("\(name).txt").path)
    }

    init(path: String) throws {
        self.path = path
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        // Tokens of the lines that do not start with '#'.
        var tokens: [String] = []
        tokens.reserveCapacity(bytes.count / 8)
        var i = 0, lineStart = true
        while i < bytes.count {
            let c = bytes[i]
            if lineStart && c == UInt8(ascii: "#") {
                while i < bytes.count && bytes[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            }
            if c == UInt8(ascii: "\n") { lineStart = true; i += 1; continue }
            lineStart = false
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") { i += 1; continue }
            let start = i
            while i < bytes.count, bytes[i] > UInt8(ascii: " ") { i += 1 }  // no control characters in the format
            tokens.append(String(decoding: bytes[start..<i], as: UTF8.self))
        }
        var next = 0
        func take() throws -> String {
            guard next < tokens.count else { throw GoldenError.malformed(path, "unexpected end") }
            next += 1
            return tokens[next - 1]
        }
        guard try take() == "format", try take() == "adamw-1" else { throw GoldenError.malformed(path, "not format adamw-1") }
        texts["format"] = "adamw-1"
        keys.append("format")
        while true {
            let kind = try take()
            if kind == "end" { break }
            let key: String
            switch kind {
            case "int", "float", "double":
                key = try take()
                guard let count = Int(try take()), count >= 0 else { throw GoldenError.malformed(path, "bad count for \(key)") }
                guard !has(key) else { throw GoldenError.malformed(path, "duplicate key \(key)") }
                guard next + count <= tokens.count else { throw GoldenError.malformed(path, "\(key): truncated") }
                let values = tokens[next..<next + count]
                next += count
                switch kind {
                case "int": intArrays[key] = try values.map {
                    guard let v = Int64($0) else { throw GoldenError.malformed(path, "bad int in \(key)") }
                    return v
                }
                case "float": floatArrays[key] = try values.map {
                    guard let v = Float($0) else { throw GoldenError.malformed(path, "bad float in \(key)") }
                    return v
                }
                default: doubleArrays[key] = try values.map {
                    guard let v = Double($0) else { throw GoldenError.malformed(path, "bad double in \(key)") }
                    return v
                }
                }
            default:
                key = kind
                guard !has(key) else { throw GoldenError.malformed(path, "duplicate key \(key)") }
                texts[key] = try take()
            }
            keys.append(key)
        }
        guard next == tokens.count else { throw GoldenError.malformed(path, "tokens after end") }
        for key in ["name", "vocab_size", "embed_dim", "max_seq_len", "position_encoding", "padding_idx", "layer_norm",
                    "layer_norm_eps", "weight_dtype", "batch", "seq", "steps"] where texts[key] == nil {
            throw GoldenError.malformed(path, "no header \(key)")
        }
        for key in ["vocab_size", "embed_dim", "max_seq_len", "padding_idx", "layer_norm", "batch", "seq", "steps"]
            where Int(texts[key]!) == nil {
            throw GoldenError.malformed(path, "header \(key) is not an integer")
        }
    }

    // MARK: lookups (nil when there is no entry of that key and kind)

    func has(_ key: String) -> Bool {
        texts[key] != nil || intArrays[key] != nil || floatArrays[key] != nil || doubleArrays[key] != nil
    }
    func floats(_ key: String) -> [Float]? { floatArrays[key] }
    func ints(_ key: String) -> [Int64]? { intArrays[key] }
    func doubles(_ key: String) -> [Double]? { doubleArrays[key] }
    func text(_ key: String) -> String? { texts[key] }
    /// A one-value int/float/double entry, or a numeric header scalar.
    func scalar(_ key: String) -> Double? {
        if let v = doubleArrays[key] { return v.count == 1 ? v[0] : nil }
        if let v = floatArrays[key] { return v.count == 1 ? Double(v[0]) : nil }
        if let v = intArrays[key] { return v.count == 1 ? Double(v[0]) : nil }
        return texts[key].flatMap { Double($0) }
    }
    func floats(_ key: String, step: Int) -> [Float]? { floats("\(key).\(step)") }
    func ints(_ key: String, step: Int) -> [Int64]? { ints("\(key).\(step)") }
    func doubles(_ key: String, step: Int) -> [Double]? { doubles("\(key).\(step)") }
    func scalar(_ key: String, step: Int) -> Double? { scalar("\(key).\(step)") }

    // MARK: the header

    var name: String { texts["name"]! }
    var vocabSize: Int { Int(texts["vocab_size"]!)! }
    var embedDim: Int { Int(texts["embed_dim"]!)! }
    var maxSeqLen: Int { Int(texts["max_seq_len"]!)! }
    var positionEncoding: String { texts["position_encoding"]! }
    var hasPositionTable: Bool { positionEncoding == "learned" }
    /// nil when the file says -1.
    var paddingIdx: Int? { Int(texts["padding_idx"]!)! >= 0 ? Int(texts["padding_idx"]!)! : nil }
    var layerNorm: Bool { texts["layer_norm"] == "1" }
    var layerNormEps: Float { Float(texts["layer_norm_eps"]!)! }
    var weightDtype: String { texts["weight_dtype"]! }
    var isBF16: Bool { weightDtype == "bf16" }
    var batch: Int { Int(texts["batch"]!)! }
    var seq: Int { Int(texts["seq"]!)! }
    var steps: Int { Int(texts["steps"]!)! }

    /// The optimized parameters in decay-mask bit order (wte 1, wpe 2, ln_weight 4, ln_bias 8)
    /// with their element counts; no wpe without a position table.
    var parameters: [(name: String, bit: Int, count: Int)] {
        [("wte", 1, vocabSize * embedDim)] + (hasPositionTable ? [("wpe", 2, maxSeqLen * embedDim)] : [])
            + [("ln_weight", 4, embedDim), ("ln_bias", 8, embedDim)]
    }

    /// Throws unless every entry the format requires is there with its size.
    func validate() throws {
        func need<T>(_ v: [T]?, _ count: Int, _ key: String) throws {
            guard let v, v.count == count else {
                throw GoldenError.malformed(path, "\(key): expected \(count) values, found \(v.map { "\($0.count)" } ?? "none")")
            }
        }
        guard ["f32", "bf16"].contains(weightDtype), ["learned", "none"].contains(positionEncoding),
              hasPositionTable ? maxSeqLen >= seq : maxSeqLen == 0 && !has("wpe"), steps > 0 else {
            throw GoldenError.malformed(path, "inconsistent header")
        }
        for p in parameters { try need(floats(p.name), p.count, p.name) }
        for k in 1...steps {
            for key in ["lr", "beta1", "beta2", "eps", "weight_decay", "grad_scale", "grad_norm_sq"] {
                try need(doubles(key, step: k), 1, "\(key).\(k)")
            }
            try need(ints("decay_mask", step: k), 1, "decay_mask.\(k)")
            try need(ints("lazy", step: k), 1, "lazy.\(k)")
            try need(ints("ids", step: k), batch * seq, "ids.\(k)")
            guard ints("ids", step: k)!.allSatisfy({ $0 >= 0 && $0 < vocabSize }) else {
                throw GoldenError.malformed(path, "ids.\(k) out of range")
            }
            try need(floats("grad_output", step: k), batch * seq * embedDim, "grad_output.\(k)")
            let lazy = ints("lazy", step: k)![0] == 1
            for p in parameters {
                for prefix in ["grad.", "", "exp_avg.", "exp_avg_sq."] {
                    try need(floats(prefix + p.name, step: k), p.count, "\(prefix)\(p.name).\(k)")
                }
                guard p.bit <= 2 else { continue }
                if isBF16 { try need(floats("master." + p.name, step: k), p.count, "master.\(p.name).\(k)") }
                guard has("master.\(p.name).\(k)") == isBF16, has("touched.\(p.name).\(k)") == lazy else {
                    throw GoldenError.malformed(path, "step \(k): master/touched entries of \(p.name) do not fit the case")
                }
                if let rows = ints("touched.\(p.name)", step: k),
                   !rows.allSatisfy({ $0 >= 0 && Int($0) < p.count / embedDim }) {
                    throw GoldenError.malformed(path, "touched.\(p.name).\(k) out of range")
                }
            }
        }
    }
}

/// The reader against every file of Tests/golden/adamw (the optimizer's tests use them).
@Suite struct AdamWGoldenReaderTests {
    @Test func everyFileParsesWithConsistentSizes() throws {
        let files = try AdamWGolden.all()
        #expect(files.count >= 6, "expected the AdamW golden files in \(AdamWGolden.directory.path)")
        for g in files {
            do { try g.validate() } catch { Issue.record("\(g): \(error)") }
            #expect(g.path.hasSuffix("/\(g.name).txt"))
            #expect(g.scalar("vocab_size") == Double(g.vocabSize))
            #expect(g.floats("wte", step: g.steps) == g.floats("wte.\(g.steps)"))
            #expect(g.floats("no.such.key") == nil && g.ints("wte") == nil && g.scalar("wte") == nil)
        }
        let bf16 = try AdamWGolden.named("bf16_master")
        #expect(bf16.isBF16 && bf16.has("master.wte.1"))
        // bf16 tables hold bf16 values (low 16 bits zero), the masters do not have to.
        #expect(bf16.floats("wte", step: 1)!.allSatisfy { $0.bitPattern & 0xFFFF == 0 })
        let lazy = try AdamWGolden.named("lazy")
        #expect(lazy.paddingIdx == 2 && lazy.ints("touched.wte", step: 1) != nil)
    }
}
