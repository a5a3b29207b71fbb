import ArgumentParser
import GPTEmbedding

/// `gpt-embedding info`: parameters and memory of a configuration, without allocating it.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the parameter counts and memory of a configuration (nothing is allocated).")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Tokens per batch (batch * seq) for the activation figures.")
    var tokens = 8 * 1024

    func run() throws {
        let c = try options.config()
        let counts = try c.parameterCounts()
        print(Report.configuration(c))
        print("")
        print(Report.table(
            header: ["component", "shape", "parameters", "MiB (float32)"],
            rows: [
                ["token_embedding.weight", "[\(c.vocabSize), \(c.embedDim)]", Report.grouped(counts.tokenEmbedding), Report.mib(counts.tokenEmbedding * 4)],
                ["position_embedding.weight", c.positionEncoding == .learned ? "[\(c.maxSeqLen), \(c.embedDim)]" : "(\(c.positionEncoding), none)", Report.grouped(counts.positionEmbedding), Report.mib(counts.positionEmbedding * 4)],
                ["layer_norm.weight + bias", "2 x [\(c.embedDim)]", Report.grouped(counts.layerNorm), Report.mib(counts.layerNorm * 4)],
                ["total", "", Report.grouped(counts.total), Report.mib(counts.total * 4)],
            ]))
        print("")
        let perToken = 4 + 8  // ids (int32) + layer norm mean and rstd
        print("memory: weights \(Report.mib(counts.total * 4)) MiB; gradients (allocated on first backward) \(Report.mib(counts.total * 4)) MiB")
        print("        output of \(tokens) tokens \(Report.mib(tokens * c.embedDim * 4)) MiB; kept for backward \(perToken) bytes/token = \(Report.mib(tokens * perToken)) MiB")
        print("")
        print(Report.kernelPath())
    }
}
