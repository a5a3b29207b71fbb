import ArgumentParser
import GPTEmbedding

/// `gpt-embedding inspect PATH`: a checkpoint's files, tensors and dtypes, and whether and
/// how the layer opens it.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's files and tensors and show whether and how the layer opens it.")

    @Argument(help: "A .safetensors file, or a folder holding model.safetensors or a sharded checkpoint (model.safetensors.index.json).")
    var path: String

    func run() throws {
        let files: [(path: String, header: SafetensorsHeader)]
        do { files = try GPTEmbedding.checkpointFiles(path: path) } catch { throw ValidationError(error.message) }
        let modelType = GPTEmbedding.modelType(path: path)
        let used = Set(modelType.flatMap { GPTEmbedding.tensorNames(modelType: $0) } ?? GPTEmbedding.recognisedTensorNames)
        print("\(path): \(files.count) file\(files.count == 1 ? "" : "s")")
        if let modelType {
            let known = GPTEmbedding.supportedModelTypes.contains(modelType)
            print("family: \(modelType) (config.json)\(known ? "" : ", not supported: opens by tensor names only with useConfigJSON off")")
        } else {
            print("family: none (no config.json): opened by tensor names (the library's or GPT-2's)")
        }
        for (file, header) in files {
            print("\n\(file): \(header.tensors.count) tensors, data at byte \(header.dataOffset)")
            for (k, v) in header.metadata.sorted(by: { $0.key < $1.key }) { print("  metadata \(k) = \(v)") }
            print(Report.table(header: ["tensor", "dtype", "shape", "bytes", "input stage"],
                               rows: header.tensors.map { t in
                                   [t.name, t.dtype, "\(t.shape)", Report.grouped(t.end - t.begin), used.contains(t.name) ? "used" : "ignored"]
                               }))
        }
        // Mapped mode reads no tensor data, so this costs a few page-table entries.
        var options = OpenOptions()
        options.mmap = true
        do {
            let layer = try GPTEmbedding(contentsOf: path, options: options)
            print("\nopens as a layer: \(Report.configuration(layer.config))")
            for p in layer.parameters {
                let how = p.isMapped ? "mapped (mmap) or read" : "read (not aligned for mapping, or not in the file)"
                print("  \(p.name) [\(p.rows), \(p.cols)] \(p.dtype): \(how)")
            }
        } catch {
            print("\ndoes not open: \(error)")
            throw ExitCode.failure
        }
    }
}
