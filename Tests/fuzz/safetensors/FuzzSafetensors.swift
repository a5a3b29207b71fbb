// Fuzz target: random bytes as checkpoints.
//
// An input is either
//   - a safetensors file: loaded into a layer with gpt_embedding_load_safetensors_buffer,
//     and written to a temporary folder and opened with gpt_embedding_open, read and mapped;
//     an input that starts with GGUF's magic takes the same way and gpt_embedding_open
//     parses it as GGUF (GGUFFile, the architectures' input stages): the corpus holds
//     seeds from Tests/fixtures/gguf (good files and bad ones);
//   - a sharded checkpoint, when it starts with "INDEX\n":
//         INDEX\n<model.safetensors.index.json bytes>
//         \n@@ <shard file name>\n<shard bytes>        (any number of shards)
//     written to the temporary folder (shard names other than [A-Za-z0-9._-]{1,100} are
//     not written, so an index may name files that do not exist) and opened with
//     gpt_embedding_open, read and mapped: the index parser, the shard-name rule and the
//     shard checks (CheckpointFiles) see fuzzed bytes.
// Promises checked on every input: a known status (for gpt_embedding_open one it documents),
// a message on failure, *out NULL on failure, a rejected file leaves the layer's
// parameters bit for bit unchanged, no file descriptor survives a call, and read and
// mapped mode agree: the same status and, when they open, the same parameters. Any
// broken promise aborts.
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

/// Every parameter of an opened layer, whatever its size, as float32 bits.
func allParameters(_ h: OpaquePointer?) -> [UInt32] {
    var all: [UInt32] = []
    for p: Int32 in 0...3 {
        var rows: Int64 = 0, cols: Int64 = 0
        guard gpt_embedding_parameter_shape(h, p, &rows, &cols) == 0 else { continue }
        var buf = [Float](repeating: 0, count: Int(rows * cols))
        if gpt_embedding_get_parameter(h, p, &buf, rows * cols) != 0 { broken("get_parameter of an opened layer failed") }
        all += buf.map(\.bitPattern)
    }
    return all
}

/// A layer whose tables are small enough for fuzzed files to match: wte [8, 4], wpe [4, 4].
nonisolated(unsafe) let layer: OpaquePointer? = {
    var c = gpt_embedding_default_config_sized_()
    c.vocab_size = 8
    c.embed_dim = 4
    c.max_seq_len = 4
    var h: OpaquePointer? = nil
    guard gpt_embedding_create(&c, &h) == 0 else { broken("create") }
    return h
}()

/// The temporary folder the checkpoints are written to, removed at exit.
let folder: String = {
    var template = Array("/tmp/gpt-embedding-fuzz-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { broken("mkdtemp") }
    let path = String(cString: p)
    atexit { removeFolderContents(); rmdir(folder) }
    return path
}()

nonisolated(unsafe) var written: [String] = []

func removeFolderContents() {
    for name in written { unlink(folder + "/" + name) }
    written.removeAll(keepingCapacity: true)
}

func write(_ name: String, _ bytes: UnsafeRawBufferPointer) {
    let fd = open(folder + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { broken("cannot write \(folder)/\(name)") }
    var done = 0
    while done < bytes.count {
        let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
        guard n > 0 else { broken("short write") }
        done += n
    }
    close(fd)
    written.append(name)
}

/// The lowest free file descriptor: equal before and after a call that leaks none.
func lowestFreeDescriptor() -> Int32 {
    let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
    close(fd)
    return fd
}

/// Opens `path` read and mapped and checks the promises; both modes must agree.
func openBothWays(_ path: String) {
    var results: [(Int32, [UInt32])] = []
    for mmap: Int32 in [0, 1] {
        var o = gpt_embedding_open_options()
        guard gpt_embedding_open_options_init(&o, MemoryLayout<gpt_embedding_open_options>.size) == 0 else { broken("options_init") }
        o.mmap = mmap
        o.num_threads = 1
        let fdBefore = lowestFreeDescriptor()
        var h = OpaquePointer(bitPattern: 0x10)  // must come back NULL on failure
        let status = gpt_embedding_open(path, &o, &h)
        var values: [UInt32] = []
        switch status {
        case 0:
            if h == nil || gpt_embedding_last_error() != nil { broken("open succeeded without a handle or with a message") }
            values = allParameters(h)
            var id: Int32 = 0
            var out = [Float](repeating: 0, count: 1 << 16)
            var cfg = gpt_embedding_config()
            if gpt_embedding_layer_config(h, &cfg, MemoryLayout<gpt_embedding_config>.size) != 0 { broken("get_config of an opened layer") }
            if cfg.embed_dim <= 1 << 16 && gpt_embedding_forward(h, &id, 1, 1, nil, 0, 0, &out, Int64(out.count)) != 0 {
                broken("forward of token 0 on an opened layer failed: \(String(cString: gpt_embedding_last_error()))")
            }
            gpt_embedding_free(h)
        case 8, 11, 12:  // _OUT_OF_MEMORY, _IO, _BAD_FILE
            if h != nil { broken("a failed open left *out set") }
            if gpt_embedding_last_error() == nil { broken("open failed (\(status)) without a message") }
        default:
            broken("gpt_embedding_open returned \(status) (\(gpt_embedding_last_error().map { String(cString: $0) } ?? "")), not a status it documents")
        }
        if lowestFreeDescriptor() != fdBefore { broken("gpt_embedding_open (mmap \(mmap), status \(status)) left a file descriptor open") }
        results.append((status, values))
    }
    if results[0].0 != results[1].0 { broken("read mode gives status \(results[0].0), mapped mode \(results[1].0)") }
    if results[0].1 != results[1].1 { broken("read and mapped mode open different values") }
}

let indexMagic = Array("INDEX\n".utf8)
let shardMarker = Array("\n@@ ".utf8)

/// A file name the harness may create in its folder.
func safeName(_ bytes: ArraySlice<UInt8>) -> String? {
    guard (1...100).contains(bytes.count), bytes.allSatisfy({ b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
    }) else { return nil }
    let name = String(decoding: bytes, as: UTF8.self)
    return name == "." || name == ".." || name == "model.safetensors.index.json" ? nil : name
}

/// Writes an INDEX input's index and shards into the folder.
func writeSharded(_ data: UnsafeBufferPointer<UInt8>) {
    let body = Array(data[indexMagic.count...])
    // Split at every marker.
    var parts: [ArraySlice<UInt8>] = []
    var start = 0, i = 0
    while i + shardMarker.count <= body.count {
        if body[i..<(i + shardMarker.count)].elementsEqual(shardMarker) {
            parts.append(body[start..<i])
            i += shardMarker.count
            start = i
        } else {
            i += 1
        }
    }
    parts.append(body[start...])
    parts[0].withUnsafeBytes { write("model.safetensors.index.json", $0) }
    for part in parts.dropFirst() {
        let newline = part.firstIndex(of: 0x0A) ?? part.endIndex
        guard let name = safeName(part[part.startIndex..<newline]), !written.contains(name) else { continue }
        let bytes = newline < part.endIndex ? part[(newline + 1)...] : []
        bytes.withUnsafeBytes { write(name, $0) }
    }
}

nonisolated(unsafe) let callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32 = { data, size in
    let input = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    if size >= indexMagic.count && input.prefix(indexMagic.count).elementsEqual(indexMagic) {
        writeSharded(input)
        openBothWays(folder)
        removeFolderContents()
        return 0
    }
    let before = parameters(layer)
    let status = gpt_embedding_load_safetensors_buffer(layer, data.map(UnsafeRawPointer.init) ?? UnsafeRawPointer(bitPattern: 8), Int64(size))
    guard (0...12).contains(status) else { broken("unknown status \(status)") }
    if status != 0 {
        if gpt_embedding_last_error() == nil { broken("failure without a message") }
        if parameters(layer) != before { broken("a rejected file changed the layer") }
    }
    write("raw.safetensors", UnsafeRawBufferPointer(input))
    openBothWays(folder + "/raw.safetensors")
    removeFolderContents()
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
