import ArgumentParser
import GPTEmbedding

/// `gpt-embedding`: the command-line tool of the library.
@main
struct GPTEmbeddingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-embedding",
        abstract: "The input layer of a GPT model (token + position embedding, layer norm, dropout), forward and backward.",
        subcommands: [Demo.self, Info.self, Bench.self, Inspect.self, Convert.self],
        defaultSubcommand: Demo.self)
}

/// Options that pick a configuration: a preset or the seed's defaults, plus overrides.
struct ConfigOptions: ParsableArguments {
    @Option(help: "A Hugging Face GPT-2 preset: gpt2, gpt2-medium, gpt2-large or gpt2-xl. Default: the seed's configuration.")
    var preset: String?

    @Option(help: "Vocabulary size (overrides the preset).")
    var vocabSize: Int?

    @Option(help: "Embedding width D (overrides the preset).")
    var embedDim: Int?

    @Option(help: "Rows of the position table (overrides the preset).")
    var maxSeqLen: Int?

    @Flag(help: "Use the fixed sinusoidal position table instead of a learned one.")
    var sinusoidal = false

    @Option(help: "Worker threads (0 = all cores).")
    var threads = 0

    @Option(help: "Seed of the initialisation and dropout.")
    var seed: UInt64 = 0

    func config() throws -> GPTEmbeddingConfig {
        var c = GPTEmbeddingConfig()
        if let preset {
            guard let p = GPTEmbeddingConfig.preset(named: preset) else {
                throw ValidationError("unknown preset '\(preset)': expected one of \(GPTEmbeddingConfig.presetNames.joined(separator: ", "))")
            }
            c = p
        }
        if let vocabSize { c.vocabSize = vocabSize }
        if let embedDim { c.embedDim = embedDim }
        if let maxSeqLen { c.maxSeqLen = maxSeqLen }
        if sinusoidal { c.positionEncoding = .sinusoidal }
        c.numThreads = threads
        c.seed = seed
        do { try c.validate() } catch { throw ValidationError(error.message) }
        return c
    }
}
