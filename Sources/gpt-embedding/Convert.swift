import ArgumentParser
import GPTEmbedding

/// `gpt-embedding convert IN OUT [--type T]`: opens a checkpoint (safetensors file or folder,
/// or GGUF) as the library does and writes it as GGUF (OUT ending in `.gguf`) or safetensors.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint between safetensors and GGUF, optionally quantizing the token table.",
        discussion: """
            IN is opened as gpt_embedding_open opens it (a .safetensors file, a Hugging Face folder, \
            or a GGUF file). OUT is written as GGUF when it ends in .gguf (the architecture whose \
            input stage is the layer's: gpt2, bloom, gemma, granite or llama), else as safetensors \
            (each table in its stored dtype; a quantized table is dequantized to float32 first).

            Examples:
              gpt-embedding convert model.safetensors model-q8_0.gguf --type q8_0
              gpt-embedding convert model-q4_k.gguf table.safetensors
            """)

    @Argument(help: "The checkpoint to read: a .safetensors file, a folder, or a GGUF file.")
    var input: String

    @Argument(help: "The file to write: GGUF when it ends in .gguf, else safetensors.")
    var output: String

    @Option(name: .long, help: "GGUF table type: keep, f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1 (default keep).")
    var type: String?

    func run() throws {
        let gguf = output.hasSuffix(".gguf")
        if let type, !gguf {
            throw ValidationError("--type \(type) applies to GGUF output only: name the output file *.gguf")
        }
        let tableType: GGUFTableType
        if let type {
            guard let t = GGUFTableType(name: type) else {
                throw ValidationError("--type \(type): expected keep, \(GGUFTableType.writable.map(\.name).joined(separator: ", "))")
            }
            tableType = t
        } else {
            tableType = .keep
        }
        do { try convert(gguf: gguf, tableType: tableType) } catch { throw ValidationError(error.message) }
    }

    private func convert(gguf: Bool, tableType: GGUFTableType) throws(GPTEmbeddingError) {
        // Safetensors holds float tables only: saveSafetensors writes a quantized table
        // dequantized, as float32.
        let layer = try GPTEmbedding(contentsOf: input, options: OpenOptions())
        if gguf {
            try layer.saveGGUF(path: output, tableType: tableType)
        } else {
            try layer.saveSafetensors(path: output)
        }
        let t = layer.parameters[0]
        let written = gguf ? "\(tableType)" : t.blockType == nil ? t.dtype.description : "float32, dequantized"
        print("\(input) -> \(output): token table \(t.rows) x \(t.cols) (\(written))")
    }
}
