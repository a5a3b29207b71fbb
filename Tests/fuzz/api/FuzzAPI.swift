// Fuzz target: drives the whole C API with configurations, shapes, ids, positions, flags
// and buffer sizes taken from the input, and checks the library's promises on every call:
// a known status code, a message on failure, NULL after success, and on failure nothing
// written (output buffer, parameters and gradients unchanged). Any broken promise aborts.
//
//   Tests/fuzz/run.sh api 60         run libFuzzer for 60 s (see Tests/fuzz/README.md)
//   .build/debug/fuzz-api <corpus>   replay a corpus (a normal build; part of the tests)
import CGPTEmbedding
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// Reads the fuzzer's bytes as a stream of small decisions.
struct Input {
    let data: UnsafePointer<UInt8>
    let count: Int
    var index = 0

    mutating func byte() -> UInt8 {
        guard index < count else { return 0 }
        defer { index += 1 }
        return data[index]
    }

    var exhausted: Bool { index >= count }

    /// Mostly small values, sometimes the edge cases that break size arithmetic.
    mutating func size(_ typical: Int64) -> Int64 {
        let b = byte()
        switch b % 32 {
        case 0: return 0
        case 1: return -1
        case 2: return Int64.max
        case 3: return Int64.min
        case 4: return 1 << 40
        case 5: return 1 << 31
        case 6: return Int64(Int32.max)
        default: return 1 + Int64(b) % typical
        }
    }
}

func fail(_ why: String) -> Never {
    print("fuzz-api: broken promise: \(why)")
    abort()
}

/// Checks the status-code promises of one call and returns the status.
@discardableResult
func checked(_ status: Int32, _ what: String) -> Int32 {
    guard (0...12).contains(status) else { fail("\(what) returned unknown status \(status)") }
    if status == 0, gpt_embedding_last_error() != nil { fail("\(what) succeeded but left an error message") }
    if status != 0, gpt_embedding_last_error() == nil { fail("\(what) failed (\(status)) without a message") }
    return status
}

/// Everything the layer owns, as bytes, to prove failed calls change nothing. Built with
/// bulk copies and compared with memcmp: element loops here run under the fuzzer's
/// comparison tracing and cost more than the library calls they check.
struct Snapshot: Equatable {
    let bytes: [UInt8]

    init(_ h: OpaquePointer?) {
        var all: [UInt8] = []
        for p: Int32 in 0...3 {
            var rows: Int64 = 0, cols: Int64 = 0
            guard gpt_embedding_parameter_shape(h, p, &rows, &cols) == 0 else { continue }
            var buf = [Float](repeating: 0, count: Int(rows * cols))
            guard gpt_embedding_get_parameter(h, p, &buf, Int64(buf.count)) == 0 else { fail("get_parameter") }
            buf.withUnsafeBytes { all.append(contentsOf: $0) }
            guard gpt_embedding_get_gradient(h, p, &buf, Int64(buf.count)) == 0 else { fail("get_gradient") }
            buf.withUnsafeBytes { all.append(contentsOf: $0) }
        }
        bytes = all
    }

    static func == (a: Snapshot, b: Snapshot) -> Bool {
        a.bytes.count == b.bytes.count && a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in
                guard let xa = x.baseAddress, let ya = y.baseAddress else { return true }  // both empty
                return memcmp(xa, ya, x.count) == 0
            }
        }
    }
}

let sentinel = Float(bitPattern: 0x7FC0_1234)

nonisolated(unsafe) let callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32 = { data, size in
    guard let data else { return 0 }
    var input = Input(data: data, count: size)

    var cfg = gpt_embedding_default_config_sized_()
    cfg.vocab_size = input.size(300)
    cfg.embed_dim = input.size(40)
    cfg.max_seq_len = input.size(40)
    cfg.position_encoding = Int32(input.byte() % 4)
    cfg.scale_embeddings = Int32(input.byte() % 3)
    cfg.padding_idx = Int64(input.byte() % 8) - 2
    cfg.dropout = [0, 0.1, 0.5, 1, -0.1, .nan, 2, .infinity][Int(input.byte() % 8)]
    cfg.layer_norm_eps = [1e-5, 1e-12, 0, -1, .nan, .infinity, 1][Int(input.byte() % 7)]
    cfg.init_std = [0.02, 1, 0, -1, .nan][Int(input.byte() % 5)]
    cfg.num_threads = Int32(input.byte() % 4)
    cfg.seed = UInt64(input.byte())
    if input.byte() % 16 == 0 { cfg.struct_size &+= 8 }
    // Keep real allocations small; products that overflow are still passed through.
    if cfg.embed_dim > 4096 && cfg.embed_dim < 1 << 40 { cfg.embed_dim = 16 }
    let (cells, overflow) = cfg.vocab_size.multipliedReportingOverflow(by: cfg.embed_dim)
    if !overflow && cfg.vocab_size > 0 && cfg.embed_dim > 0 && cells > 1 << 20 { cfg.vocab_size = 7 }
    let (pcells, poverflow) = cfg.max_seq_len.multipliedReportingOverflow(by: cfg.embed_dim)
    if !poverflow && cfg.max_seq_len > 0 && cfg.embed_dim > 0 && pcells > 1 << 20 { cfg.max_seq_len = 5 }

    var handle: OpaquePointer? = nil
    if checked(gpt_embedding_create(&cfg, &handle), "create") != 0 {
        if handle != nil { fail("failed create left a handle") }
        return 0
    }
    guard let h = handle else { fail("create succeeded without a handle") }
    let d = Int(cfg.embed_dim)
    var freed = false

    for _ in 0..<24 where !input.exhausted {
        let before = Snapshot(h)
        let op = input.byte() % 15
        switch op {
        case 0, 1:
            let batch = input.byte() % 8 == 0 ? input.size(4) : Int64(1 + input.byte() % 3)
            let seq = input.byte() % 8 == 0 ? input.size(6) : Int64(1 + input.byte() % 5)
            let n = (batch > 0 && seq > 0 && batch <= 64 && seq <= 64) ? Int(batch * seq) : 4
            let ids = (0..<n).map { _ in Int64(input.byte() % UInt8(truncatingIfNeeded: min(cfg.vocab_size + 3, 250))) - 1 }
            let explicit = input.byte() % 3 == 0
            let positions = (0..<n).map { _ in Int64(input.byte() % 50) - 1 }
            let start = input.byte() % 8 == 0 ? input.size(50) : Int64(input.byte() % 8)
            let flags = UInt32(input.byte() % 8)
            let need = n * d
            let capacity = input.byte() % 6 == 0 ? max(0, need - 1) : need
            var out = [Float](repeating: sentinel, count: capacity + 4)
            let status: Int32
            if op == 0 {
                let ids32 = ids.map { Int32(truncatingIfNeeded: $0) }, pos32 = positions.map { Int32(truncatingIfNeeded: $0) }
                status = checked(explicit
                    ? gpt_embedding_forward(h, ids32, batch, seq, pos32, start, flags, &out, Int64(capacity))
                    : gpt_embedding_forward(h, ids32, batch, seq, nil, start, flags, &out, Int64(capacity)), "forward")
            } else {
                status = checked(explicit
                    ? gpt_embedding_forward_i64(h, ids, batch, seq, positions, start, flags, &out, Int64(capacity))
                    : gpt_embedding_forward_i64(h, ids, batch, seq, nil, start, flags, &out, Int64(capacity)), "forward_i64")
            }
            if status != 0 && !out.allSatisfy({ $0.bitPattern == sentinel.bitPattern }) { fail("failed forward wrote its output") }
            if status == 0 && !out[capacity...].allSatisfy({ $0.bitPattern == sentinel.bitPattern }) { fail("forward wrote past out_len") }
            if status != 0 && Snapshot(h) != before { fail("failed forward changed the layer") }
        case 2:
            let batch = Int64(input.byte() % 4), seq = Int64(input.byte() % 6)
            let grad = [Float](repeating: Float(input.byte()) / 16 - 8, count: max(1, Int(batch * seq) * d))
            if checked(gpt_embedding_backward(h, grad, batch, seq), "backward") != 0 && Snapshot(h) != before {
                fail("failed backward changed the layer")
            }
        case 3:
            checked(gpt_embedding_zero_grad(h), "zero_grad")
        case 4, 5, 6:
            let param = Int32(input.byte() % 7) - 2
            let len = input.byte() % 4 == 0 ? input.size(64) : Int64(input.byte())
            var buf = [Float](repeating: 0.5, count: len > 0 && len < 1 << 16 ? Int(len) : 1)
            let claimed = len > 0 && len < 1 << 16 ? len : (len <= 0 ? len : 1)
            let status: Int32
            switch op {
            case 4: status = checked(gpt_embedding_get_parameter(h, param, &buf, claimed), "get_parameter")
            case 5: status = checked(gpt_embedding_set_parameter(h, param, buf, claimed), "set_parameter")
            default: status = checked(gpt_embedding_get_gradient(h, param, &buf, claimed), "get_gradient")
            }
            if status != 0 && Snapshot(h) != before { fail("failed parameter call changed the layer") }
        case 7:
            var p: UnsafeMutablePointer<Float>? = nil
            var len: Int64 = 0
            let param = Int32(input.byte() % 6) - 1
            if checked(input.byte() % 2 == 0 ? gpt_embedding_parameter_data(h, param, &p, &len)
                                            : gpt_embedding_gradient_data(h, param, &p, &len), "data") == 0 {
                if let p, len > 0 { p[Int(len) - 1] += 0 }  // the whole range is ours to touch
            }
        case 8:
            var count: Int64 = 0
            var rows = [Int32](repeating: 0, count: 64)
            if input.byte() % 2 == 0 {
                checked(gpt_embedding_touched_rows(h, nil, Int64(input.byte() % 2), &count), "touched_rows")
            } else {
                checked(gpt_embedding_touched_rows(h, &rows, Int64(input.byte() % 65), &count), "touched_rows")
            }
        case 9:
            var cfgOut = gpt_embedding_config(), n: Int64 = 0, r: Int64 = 0, c: Int64 = 0
            checked(gpt_embedding_layer_config(h, &cfgOut, MemoryLayout<gpt_embedding_config>.size), "get_config")
            checked(gpt_embedding_sizeof(h, &n), "sizeof")
            checked(gpt_embedding_num_parameters(h, &n), "num_parameters")
            checked(gpt_embedding_parameter_shape(h, Int32(input.byte() % 6) - 1, &r, &c), "parameter_shape")
            checked(gpt_embedding_config_num_parameters(&cfg, Int32(input.byte() % 6) - 2, &n), "config_num_parameters")
            if input.byte() % 8 == 0 { saveGGUF(h, &input, before) }
        case 12:
            // The optimizer step with options from the input, some out of range.
            var o = gpt_embedding_adamw_options()
            gpt_embedding_adamw_options_init(&o, MemoryLayout<gpt_embedding_adamw_options>.size)
            let values: [Double] = [1e-3, 0, -1, .nan, .infinity, 0.999, 1, 1e-8, 5]
            o.lr = values[Int(input.byte() % 9)]
            o.beta1 = values[Int(input.byte() % 9)]
            o.beta2 = values[Int(input.byte() % 9)]
            o.eps = values[Int(input.byte() % 9)]
            o.weight_decay = values[Int(input.byte() % 9)]
            o.grad_scale = values[Int(input.byte() % 9)]
            o.params = UInt32(input.byte() % 20)
            o.decay_params = UInt32(input.byte() % 20)
            o.lazy = Int32(input.byte() % 3)
            if input.byte() % 16 == 0 { o.struct_size &+= 8 }
            let useDefaults = input.byte() % 8 == 0
            let status = useDefaults ? gpt_embedding_adamw_step(h, nil) : gpt_embedding_adamw_step(h, &o)
            if checked(status, "adamw_step") != 0 && Snapshot(h) != before {
                fail("failed adamw_step changed the layer")
            }
        case 13:
            var norm = 0.0, step: Int64 = 0, len: Int64 = 0
            var p: UnsafeMutablePointer<Float>? = nil
            let param = Int32(input.byte() % 6) - 1, kind = Int32(input.byte() % 5) - 1
            checked(gpt_embedding_grad_norm_squared(h, &norm), "grad_norm_squared")
            if checked(gpt_embedding_optimizer_state_data(h, param, kind, &p, &len), "optimizer_state_data") == 0 {
                if let p, len > 0 { p[Int(len) - 1] += 0 }  // the whole range is ours to touch
            }
            checked(gpt_embedding_optimizer_get_step(h, param, &step), "optimizer_get_step")
            checked(gpt_embedding_optimizer_set_step(h, param, input.size(8) &- 1), "optimizer_set_step")
            if input.byte() % 8 == 0 { checked(gpt_embedding_optimizer_reset(h), "optimizer_reset") }
        case 14:
            // Calls with explicit state, fields from the input (some invalid, some empty).
            callWithExplicitState(h, d, cfg.vocab_size, &input, before)
        case 10:
            gpt_embedding_free(h)
            gpt_embedding_free(h)  // a double free is a no-op
            if gpt_embedding_zero_grad(h) != 9 { fail("a freed handle was accepted") }
            freed = true
        default:
            let start = input.size(100), count = input.size(8), dim = input.size(16)
            var out = [Float](repeating: sentinel, count: 512)
            let capacity = Int64(input.byte()) * 2
            if checked(gpt_embedding_sinusoidal_table(start, count, dim, &out, capacity), "sinusoidal_table") != 0,
               !out.allSatisfy({ $0.bitPattern == sentinel.bitPattern }) {
                fail("failed sinusoidal_table wrote its output")
            }
        }
        if freed { break }
    }
    if !freed { gpt_embedding_free(h) }
    return 0
}

/// gpt_embedding_save_gguf with a table type and flags from the input (some invalid): it
/// only reads the layer, and a failure leaves no file.
func saveGGUF(_ h: OpaquePointer, _ input: inout Input, _ before: Snapshot) {
    let path = "/tmp/fuzz-api-\(getpid()).gguf"
    let types: [Int32] = [-1, 0, 1, 30, 8, 2, 3, 6, 7, -2, 12, 99]
    let type = types[Int(input.byte()) % types.count]
    let flags: UInt32 = input.byte() % 8 == 0 ? 1 : 0
    let status = checked(gpt_embedding_save_gguf(h, input.byte() % 16 == 0 ? nil : path, type, flags), "save_gguf")
    let exists = access(path, F_OK) == 0
    unlink(path)
    if status != 0 && exists { fail("failed save_gguf left a file") }
    if status == 0 && !exists { fail("save_gguf succeeded without a file") }
    if Snapshot(h) != before { fail("save_gguf changed the layer") }
}

/// One forward_call and one backward_call (into caller buffers or the layer's own
/// gradients) with fields from the input; a failure must write nothing.
func callWithExplicitState(_ h: OpaquePointer, _ d: Int, _ vocab: Int64, _ input: inout Input, _ before: Snapshot) {
    let batch = Int64(input.byte() % 4) - (input.byte() % 16 == 0 ? 1 : 0), seq = Int64(input.byte() % 5)
    let n = batch > 0 ? Int(batch * seq) : 0
    let wide = input.byte() % 2 == 1
    let ids32 = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1), ids64 = UnsafeMutablePointer<Int64>.allocate(capacity: n + 1)
    let pos32 = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1), pos64 = UnsafeMutablePointer<Int64>.allocate(capacity: n + 1)
    for r in 0...n {
        ids64[r] = Int64(input.byte() % UInt8(truncatingIfNeeded: min(vocab + 3, 250))) - 1
        ids32[r] = Int32(truncatingIfNeeded: ids64[r])
        pos64[r] = Int64(input.byte() % 50) - 1
        pos32[r] = Int32(truncatingIfNeeded: pos64[r])
    }
    var call = gpt_embedding_call()
    gpt_embedding_call_init(&call, MemoryLayout<gpt_embedding_call>.size)
    call.flags = UInt32(input.byte() % 8) | (input.byte() % 32 == 0 ? 16 : 0)
    call.index_dtype = input.byte() % 16 == 0 ? 2 : (wide ? 1 : 0)
    call.reserved = input.byte() % 16 == 0 ? 1 : 0
    if input.byte() % 16 == 0 { call.struct_size &+= 8 }
    let explicit = input.byte() % 3 == 0
    call.ids = input.byte() % 16 == 0 ? nil : (wide ? UnsafeRawPointer(ids64) : UnsafeRawPointer(ids32))
    call.positions = explicit ? (wide ? UnsafeRawPointer(pos64) : UnsafeRawPointer(pos32)) : nil
    call.batch = batch
    call.seq = seq
    call.start_position = Int64(input.byte() % 8) - 1
    call.dropout_seed = UInt64(input.byte())
    call.dropout_offset = UInt64(input.byte())
    // Buffers of the layer's shapes (and token rows), each with 4 sentinel floats past its length.
    var sizes: [Int] = []
    for p: Int32 in 0...3 {
        var rows: Int64 = 0, cols: Int64 = 0
        sizes.append(gpt_embedding_parameter_shape(h, p, &rows, &cols) == 0 ? Int(rows * cols) : 0)
    }
    sizes.append(n * d)
    let stats = [UnsafeMutablePointer<Float>.allocate(capacity: n + 1), UnsafeMutablePointer<Float>.allocate(capacity: n + 1)]
    let out = UnsafeMutablePointer<Float>.allocate(capacity: n * d + 4)
    let buffers = sizes.map { UnsafeMutablePointer<Float>.allocate(capacity: $0 + 4) }
    let grad = UnsafeMutablePointer<Float>.allocate(capacity: n * d + 1)
    defer {
        for p in stats + buffers + [out, grad] { p.deallocate() }
        ids32.deallocate(); ids64.deallocate(); pos32.deallocate(); pos64.deallocate()
    }
    func reset() {
        for p in stats { p.initialize(repeating: sentinel, count: n + 1) }
        out.initialize(repeating: sentinel, count: n * d + 4)
        for (p, count) in zip(buffers, sizes) { p.initialize(repeating: sentinel, count: count + 4) }
    }
    func untouched() -> Bool {
        let all = stats.map { ($0, n + 1) } + [(out, n * d + 4)] + zip(buffers, sizes).map { ($0, $1 + 4) }
        return all.allSatisfy { p, count in (0..<count).allSatisfy { p[$0].bitPattern == sentinel.bitPattern } }
    }
    // Sometimes borrow a copy of the layer's token table (float32 here), sometimes of a wrong length.
    let borrowed = UnsafeMutablePointer<Float>.allocate(capacity: sizes[0] + 1)
    defer { borrowed.deallocate() }
    if input.byte() % 4 == 0, gpt_embedding_get_parameter(h, 0, borrowed, Int64(sizes[0])) == 0 {
        call.token_embedding = UnsafeRawPointer(borrowed)
        call.token_embedding_len = Int64(input.byte() % 8 == 0 ? sizes[0] + 1 : sizes[0])
    }
    reset()
    grad.initialize(repeating: Float(input.byte()) / 16 - 8, count: n * d + 1)
    if input.byte() % 2 == 0 { call.mean = stats[0]; call.rstd = stats[1] }
    let capacity = Int64(input.byte() % 6 == 0 ? max(0, n * d - 1) : n * d)
    let outDType = Int32(input.byte() % 4)
    if checked(gpt_embedding_forward_call(h, &call, outDType, input.byte() % 32 == 0 ? nil : out, capacity), "forward_call") != 0 {
        if !untouched() { fail("failed forward_call wrote a buffer") }
    } else if !(Int(capacity)..<(n * d + 4)).allSatisfy({ out[$0].bitPattern == sentinel.bitPattern }) {
        fail("forward_call wrote past out_len")
    }
    if Snapshot(h) != before { fail("forward_call changed the layer") }
    reset()
    var grads = gpt_embedding_grads()
    gpt_embedding_grads_init(&grads, MemoryLayout<gpt_embedding_grads>.size)
    let want = input.byte()
    func length(_ i: Int) -> Int64 { Int64(input.byte() % 8 == 0 ? sizes[i] - 1 : sizes[i]) }
    if want & 1 != 0 { grads.token_embedding = buffers[0]; grads.token_embedding_len = length(0) }
    if want & 2 != 0 { grads.position_embedding = buffers[1]; grads.position_embedding_len = length(1) }
    if want & 4 != 0 { grads.layer_norm_weight = buffers[2]; grads.layer_norm_weight_len = length(2) }
    if want & 8 != 0 { grads.layer_norm_bias = buffers[3]; grads.layer_norm_bias_len = length(3) }
    if want & 16 != 0 { grads.token_rows = buffers[4]; grads.token_rows_len = length(4) }
    if want & 32 != 0 { grads.reserved = 1 }
    let gradLen = Int64(input.byte() % 8 == 0 ? n * d + 1 : n * d)
    let status = want & 64 != 0
        ? gpt_embedding_backward_call(h, &call, Int32(input.byte() % 4), grad, gradLen, nil)
        : gpt_embedding_backward_call(h, &call, Int32(input.byte() % 4), grad, gradLen, &grads)
    if checked(status, "backward_call") != 0 {
        if !untouched() { fail("failed backward_call wrote a buffer") }
        if Snapshot(h) != before { fail("failed backward_call changed the layer") }
    } else {
        if want & 64 == 0 && Snapshot(h) != before { fail("backward_call into buffers changed the layer") }
        for (p, count) in zip(buffers, sizes) where !(count..<(count + 4)).allSatisfy({ p[$0].bitPattern == sentinel.bitPattern }) {
            fail("backward_call wrote past a buffer")
        }
    }
}

#if GPT_EMBEDDING_FUZZING
/// libFuzzer's entry point (libFuzzer provides main).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { callback(data, size) }
#else
/// Without libFuzzer: replay the files and directories named on the command line.
@main
enum FuzzAPI {
    static func main() {
        exit(replay_inputs(CommandLine.argc, CommandLine.unsafeArgv, callback))
    }
}
#endif
