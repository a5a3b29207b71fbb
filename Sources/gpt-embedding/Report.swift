#if canImport(Glibc)
import Glibc
#endif
import GPTEmbedding

/// Text formatting for the command's output (no Foundation in this package).
enum Report {
    /// `39383808` as `39,383,808`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return n < 0 ? "-" + out : out
    }

    /// Bytes as MiB with one decimal.
    static func mib(_ bytes: Int) -> String { fixed(Double(bytes) / 1_048_576, 1) }

    /// `x` with `digits` decimals.
    static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return "\(x)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (abs(x) * scale).rounded()
        let whole = Int(r / scale), frac = Int(r.truncatingRemainder(dividingBy: scale))
        var f = String(frac)
        while f.count < digits { f = "0" + f }
        return (x < 0 && r != 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + f : "")
    }

    /// `x` in scientific notation with 2 significant decimals, e.g. `3.1e-06`.
    static func sci(_ x: Double) -> String {
        guard x != 0, x.isFinite else { return x == 0 ? "0" : "\(x)" }
        var e = 0
        var m = abs(x)
        while m >= 10 { m /= 10; e += 1 }
        while m < 1 { m *= 10; e -= 1 }
        return (x < 0 ? "-" : "") + fixed(m, 1) + "e" + (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
    }

    /// A Markdown table with right-aligned numeric columns.
    static func table(header: [String], rows: [[String]]) -> String {
        let widths = header.indices.map { c in max(header[c].count, rows.map { $0[c].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            "| " + cells.indices.map { c in
                let pad = String(repeating: " ", count: widths[c] - cells[c].count)
                return c == 0 ? cells[c] + pad : pad + cells[c]
            }.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.indices.map { c in c == 0 ? String(repeating: "-", count: widths[c] + 2) : String(repeating: "-", count: widths[c] + 1) + ":" }.joined(separator: "|") + "|"
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }

    /// One line describing a configuration.
    /// `tableType` names a token table kept in a ggml block format (the config's
    /// `weightDType` then describes the other tables only).
    static func configuration(_ c: GPTEmbeddingConfig, tableType: String? = nil) -> String {
        "config: vocab_size \(c.vocabSize), embed_dim \(c.embedDim), weight_dtype \(tableType ?? "\(c.weightDType)"), max_seq_len \(c.maxSeqLen), dropout \(c.dropout), "
            + "positions \(c.positionEncoding), scale_embeddings \(c.scaleEmbeddings), layer_norm_eps \(c.layerNormEps), "
            + "init_std \(c.initStd), token_scale \(c.tokenScale.map { "\($0)" } ?? "derived"), layer_norm by default \(c.layerNormByDefault), position_offset \(c.positionOffset), padding_idx \(c.paddingIdx.map(String.init) ?? "none"), seed \(c.seed), threads \(c.numThreads == 0 ? "all cores" : String(c.numThreads))"
    }

    /// Mean, standard deviation, minimum and maximum.
    static func statistics(_ x: [Float]) -> (mean: Double, std: Double, min: Float, max: Float) {
        var s = 0.0, s2 = 0.0
        for v in x { s += Double(v); s2 += Double(v) * Double(v) }
        let n = Double(max(x.count, 1))
        let mean = s / n
        return (mean, max(0, s2 / n - mean * mean).squareRoot(), x.min() ?? 0, x.max() ?? 0)
    }

    static func describe(_ x: [Float]) -> String {
        let s = statistics(x)
        return "mean \(fixed(s.mean, 4)), std \(fixed(s.std, 4)), min \(fixed(Double(s.min), 4)), max \(fixed(Double(s.max), 4))"
    }

    /// The CPU path of the kernels, as `info` and `demo` print it.
    static func kernelPath() -> String {
        let supported = InstructionSet.supported.map(\.rawValue).joined(separator: ", ")
        do {
            let active = try InstructionSet.active()
            let forced = getenv(InstructionSet.environmentVariable).map { " (\(InstructionSet.environmentVariable)=\(String(cString: $0)))" } ?? ""
            return "kernels: \(active)\(forced); this CPU supports \(supported)"
        } catch {
            return "kernels: none: \(error.message)"
        }
    }
}
