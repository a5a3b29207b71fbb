import ArgumentParser
import GPTEmbedding

/// `gpt-embedding inspect FILE`: a safetensors checkpoint's tensors and what the layer
/// would load from it.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a safetensors checkpoint's tensors and what the layer would load from it.")

    @Argument(help: "A .safetensors file (the library's names or Hugging Face GPT-2's).")
    var file: String

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let header: SafetensorsHeader
        do { header = try GPTEmbedding.safetensorsHeader(path: file) } catch { throw ValidationError(error.message) }
        let aliases = ["token_embedding.weight", "wte.weight", "transformer.wte.weight", "position_embedding.weight",
                       "wpe.weight", "transformer.wpe.weight", "layer_norm.weight", "layer_norm.bias"]
        print("\(file): \(header.tensors.count) tensors, data at byte \(header.dataOffset)")
        for (k, v) in header.metadata.sorted(by: { $0.key < $1.key }) { print("  metadata \(k) = \(v)") }
        print(Report.table(header: ["tensor", "dtype", "shape", "bytes", "used by the layer"],
                           rows: header.tensors.map { t in
                               [t.name, t.dtype, "\(t.shape)", Report.grouped(t.end - t.begin), aliases.contains(t.name) ? "yes" : ""]
                           }))
        let config = try options.config()
        do {
            let layer = try GPTEmbedding(config: config)
            try layer.loadSafetensors(path: file)
            print("loads into a layer with \(Report.configuration(config))")
        } catch {
            print("would not load with \(Report.configuration(config)):\n  \(error)")
            throw ExitCode.failure
        }
    }
}
