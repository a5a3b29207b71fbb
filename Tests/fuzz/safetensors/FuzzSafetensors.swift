// Fuzz target: random bytes as a safetensors file for gpt_embedding_load_safetensors_buffer.
// Promises checked on every input: a known status, a message on failure, and a rejected
// file leaves the layer's parameters bit for bit unchanged. Any broken promise aborts.
import CGPTEmbedding
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

func broken(_ why: String) -> Never {
    print("fuzz-safetensors: broken promise: \(why)")
    abort()
}

func parameters(_ h: OpaquePointer?) -> [UInt32] {
    var all: [UInt32] = []
    for p: Int32 in 0...3 {
        var buf = [Float](repeating: 0, count: 64)
        if gpt_embedding_get_parameter(h, p, &buf, 64) == 0 { all += buf.map(\.bitPattern) }
    }
    return all
}

/// A layer whose tables are small enough for fuzzed files to match: wte [8, 4], wpe [4, 4].
nonisolated(unsafe) let layer: OpaquePointer? = {
    var c = gpt_embedding_default_config()
    c.vocab_size = 8
    c.embed_dim = 4
    c.max_seq_len = 4
    var h: OpaquePointer? = nil
    guard gpt_embedding_create(&c, &h) == 0 else { broken("create") }
    return h
}()

nonisolated(unsafe) let callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32 = { data, size in
    let before = parameters(layer)
    let status = gpt_embedding_load_safetensors_buffer(layer, data.map(UnsafeRawPointer.init) ?? UnsafeRawPointer(bitPattern: 8), Int64(size))
    guard (0...12).contains(status) else { broken("unknown status \(status)") }
    if status != 0 {
        if gpt_embedding_last_error() == nil { broken("failure without a message") }
        if parameters(layer) != before { broken("a rejected file changed the layer") }
    }
    return 0
}

#if GPT_EMBEDDING_FUZZING
/// libFuzzer's entry point (libFuzzer provides main).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { callback(data, size) }
#else
/// Without libFuzzer: replay the files and directories named on the command line.
@main
enum FuzzSafetensors {
    static func main() {
        exit(replay_inputs(CommandLine.argc, CommandLine.unsafeArgv, callback))
    }
}
#endif
