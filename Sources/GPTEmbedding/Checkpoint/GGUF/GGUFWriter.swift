#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The header of a GGUF v3 file being written: key/values, then tensor infos, then (after
/// padding to the alignment) each tensor's data at an aligned offset. Little-endian, as
/// ggml's `gguf_write_to_buf` and the `gguf` package's `GGUFWriter` write it.
struct GGUFWriter {
    /// A key's value (the GGUF value types this library writes).
    enum Value {
        case uint32(UInt32)
        case float32(Float)
        case string(String)
    }

    /// A tensor's info: ggml's `ne` (fastest-varying first) and element type.
    struct TensorInfo {
        let name: String
        let ne: [Int]
        let type: GGMLType
        /// Bytes of the data.
        let bytes: Int
    }

    let alignment: Int
    private(set) var values: [(String, Value)] = []
    private(set) var tensors: [TensorInfo] = []

    init(alignment: Int = 32) { self.alignment = alignment }

    mutating func add(_ key: String, _ value: Value) { values.append((key, value)) }
    mutating func add(_ tensor: TensorInfo) { tensors.append(tensor) }

    /// `n` rounded up to the alignment.
    func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Each tensor's offset from the start of the data section.
    var offsets: [Int] {
        var at = 0
        return tensors.map { t in
            defer { at = padded(at + t.bytes) }
            return at
        }
    }

    /// The header bytes, padded to the alignment (the data section starts right after).
    func header() -> [UInt8] {
        var b: [UInt8] = []
        func u32(_ x: UInt32) { withUnsafeBytes(of: x.littleEndian) { b.append(contentsOf: $0) } }
        func u64(_ x: UInt64) { withUnsafeBytes(of: x.littleEndian) { b.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); b.append(contentsOf: s.utf8) }
        u32(0x4655_4747)  // "GGUF"
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(values.count))
        for (key, value) in values {
            str(key)
            switch value {
            case .uint32(let x): u32(4); u32(x)
            case .float32(let x): u32(6); u32(x.bitPattern)
            case .string(let s): u32(8); str(s)
            }
        }
        for (t, offset) in zip(tensors, offsets) {
            str(t.name)
            u32(UInt32(t.ne.count))
            for n in t.ne { u64(UInt64(n)) }
            u32(t.type.rawValue)
            u64(UInt64(offset))
        }
        b.append(contentsOf: [UInt8](repeating: 0, count: padded(b.count) - b.count))
        return b
    }
}

/// POSIX `write` (the class below has a method of the same name).
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }

/// A file written through a temporary name and renamed over the target at the end, so that
/// a failure never leaves a partial file (the temporary one is removed).
final class AtomicFile {
    let path: String
    private let tmp: String
    private var fd: Int32
    private var failed = false
    private var errorText = ""

    init(path: String) throws(GPTEmbeddingError) {
        self.path = path
        tmp = path + ".tmp-\(getpid())"
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw GPTEmbeddingError(.io, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(tmp)
        }
    }

    /// Appends `n` bytes at `p` (after a failure, does nothing; ``commit()`` reports it).
    func write(_ p: UnsafeRawPointer, _ n: Int) {
        var done = 0
        while done < n && !failed {
            let w = posixWrite(fd, p + done, n - done)
            if w < 0 && errno == EINTR { continue }
            if w <= 0 {
                failed = true
                errorText = String(cString: strerror(errno))
            } else {
                done += w
            }
        }
    }

    func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { if let p = $0.baseAddress { write(p, $0.count) } } }

    /// `n` zero bytes.
    func zeros(_ n: Int) { if n > 0 { write([UInt8](repeating: 0, count: n)) } }

    /// Closes the file and renames it over `path`; on any failure removes it and throws.
    func commit() throws(GPTEmbeddingError) {
        let closed = close(fd) == 0
        fd = -1
        if !failed && !closed { failed = true; errorText = String(cString: strerror(errno)) }
        if !failed && rename(tmp, path) != 0 { failed = true; errorText = String(cString: strerror(errno)) }
        if failed {
            unlink(tmp)
            throw GPTEmbeddingError(.io, "cannot write \(path): \(errorText)")
        }
    }
}
