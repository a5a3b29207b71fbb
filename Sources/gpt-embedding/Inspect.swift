import ArgumentParser
import GPTEmbedding

/// `gpt-embedding inspect PATH`: a checkpoint's files, tensors and dtypes, and whether and
/// how the layer opens it.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's files and tensors and show whether and how the layer opens it.")

    @Argument(help: "A .safetensors or GGUF file, or a folder holding model.safetensors or a sharded checkpoint (model.safetensors.index.json).")
    var path: String

    func run() throws {
        if GPTEmbedding.isGGUF(path: path) || path.hasSuffix(".gguf") {
            try inspectGGUF()
            return
        }
        let files: [(path: String, header: SafetensorsHeader)]
        do { files = try GPTEmbedding.checkpointFiles(path: path) } catch { throw ValidationError(error.message) }
        let modelType = GPTEmbedding.modelType(path: path)
        let used = Set(modelType.flatMap { GPTEmbedding.tensorNames(modelType: $0) } ?? GPTEmbedding.recognisedTensorNames)
        print("\(path): \(files.count) file\(files.count == 1 ? "" : "s")")
        if let modelType {
            let known = GPTEmbedding.supportedModelTypes.contains(modelType)
            print("family: \(modelType) (config.json)\(known ? "" : ", not supported: opens by tensor names only with useConfigJSON off")")
        } else {
            print("family: none (no config.json): opened by tensor names (the library's or GPT-2's, or any family's token-table name as a plain lookup)")
        }
        for (file, header) in files {
            print("\n\(file): \(header.tensors.count) tensors, data at byte \(header.dataOffset)")
            for (k, v) in header.metadata.sorted(by: { $0.key < $1.key }) { print("  metadata \(k) = \(v)") }
            print(Report.table(header: ["tensor", "dtype", "shape", "bytes", "input stage"],
                               rows: header.tensors.map { t in
                                   [t.name, t.dtype, "\(t.shape)", Report.grouped(t.end - t.begin), used.contains(t.name) ? "used" : "ignored"]
                               }))
        }
        try tryOpening()
    }

    /// A GGUF file: version, architecture, the keys that matter, the input-stage tensors.
    func inspectGGUF() throws {
        let g: GGUFFile
        do { g = try GPTEmbedding.ggufFile(path: path) } catch { throw ValidationError(error.message) }
        let arch = g.value("general.architecture")?.stringValue
        print("\(path): GGUF version \(g.version), \(g.tensors.count) tensors, \(g.keyValues.count) keys, data at byte \(g.dataOffset)")
        let stage: String
        switch arch.map(GGUFInputStage.of) {
        case nil: stage = "no general.architecture: opens by tensor names only"
        case .plainLookup?: stage = "plain lookup"
        case .sqrtScale?: stage = "rows x sqrtf(n_embd) in float32"
        case .embeddingScaleKey?: stage = "rows x {arch}.embedding_scale"
        case .fixedScale(let s)?: stage = "rows x \(s)"
        case .learnedPositions?: stage = "rows + learned positions (position_embd.weight)"
        case .layerNorm?: stage = "layer norm token_embd_norm after the lookup"
        case .refused(let why)?: stage = "not supported (\(why)): opens by tensor names only"
        }
        print("architecture: \(arch ?? "(none)"): \(stage)")
        let a = arch ?? "?"
        var rows: [[String]] = []
        func key(_ k: String, _ shown: String? = nil) {
            if let v = g.value(k) { rows.append([shown ?? k, "\(v)"]) }
        }
        key("\(a).embedding_length")
        if case .array(_, let n)? = g.value("tokenizer.ggml.tokens") {
            rows.append(["vocab size (tokenizer.ggml.tokens)", "\(n)"])
        }
        key("\(a).vocab_size")
        key("\(a).context_length")
        key("\(a).embedding_scale")
        key("\(a).attention.layer_norm_epsilon")
        rows.append(["general.alignment", "\(g.alignment)\(g.value("general.alignment") == nil ? " (default)" : "")"])
        key("general.quantization_version")
        key("general.file_type")
        key("general.name")
        print(Report.table(header: ["key", "value"], rows: rows))
        let input = ["token_embd.weight", "position_embd.weight", "token_embd_norm.weight", "token_embd_norm.bias", "output.weight"]
        print("")
        print(Report.table(header: ["tensor", "type", "shape (ne)", "bytes", "file offset"],
                           rows: input.compactMap { g.tensor($0) }.map { t in
                               [t.name, t.type.name, "\(t.ne)", Report.grouped(t.byteCount), "\(t.offset)"]
                           }))
        if g.tensor("output.weight") == nil && g.tensor("token_embd.weight") != nil {
            print("no output.weight: the output head is tied to token_embd.weight")
        }
        try tryOpening()
    }

    /// Opens the checkpoint mapped and prints how, or why it does not open.
    func tryOpening() throws {
        // Mapped mode reads no tensor data, so this costs a few page-table entries.
        var options = OpenOptions()
        options.mmap = true
        do {
            let layer = try GPTEmbedding(contentsOf: path, options: options)
            print("\nopens as a layer: \(Report.configuration(layer.config, tableType: layer.tokenEmbedding.weight.blockType?.name))")
            for p in layer.parameters {
                let how = p.isMapped ? "mapped (mmap) or read" : "read (not aligned for mapping, or not in the file)"
                if let blocks = p.blockType {
                    // A quantized table stays in its blocks: rows are dequantized as they are read.
                    print("  \(p.name) [\(p.rows), \(p.cols)] \(blocks.name) blocks, dequantized to float32 as rows are read, frozen (dtype= converts it to train it): \(how)")
                } else {
                    print("  \(p.name) [\(p.rows), \(p.cols)] \(p.dtype): \(how)")
                }
            }
        } catch {
            print("\ndoes not open: \(error)")
            throw ExitCode.failure
        }
    }
}
