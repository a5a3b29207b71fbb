/// A parsed GGUF file (llama.cpp's format, versions 2 and 3): its key/values and tensor infos,
/// validated at least as strictly as ggml's own reader (`gguf_init_from_file_impl`).
///
/// Parsing reads from a buffer holding the whole file (a mapping) with bounds-checked
/// little-endian reads. Every count and length is checked against the bytes left in the file
/// before anything is allocated; arrays are walked, never materialised (only their element
/// type and count are kept). The rules:
/// - magic `GGUF`; version 2 or 3 (1 and anything above 3 refused; a byte-swapped version is
///   a big-endian file, refused);
/// - keys: no duplicates, value types 0...12, arrays not nested, string and array lengths
///   at most 2^30 and within the file;
/// - `general.alignment`: a UINT32, a non-zero power of two (default 32);
/// - tensors: names shorter than 64 bytes and unique, at most 4 dims, every `ne` in
///   `0 ..< 2^63` with a product that does not overflow, a known ggml type, `ne[0]` a
///   multiple of the type's block size, offsets multiples of the alignment, data inside the
///   file and no two tensors overlapping.
public struct GGUFFile: Sendable {
    /// A key's value. Arrays keep their element type and count only.
    public enum Value: Sendable, Equatable, CustomStringConvertible {
        case uint(UInt64)
        case int(Int64)
        case float(Double)
        case bool(Bool)
        case string(String)
        /// An array of `count` elements of GGUF value type `elementType` (0...12, not 9).
        case array(elementType: UInt32, count: Int)

        /// The value as an integer, when it is an integer that fits.
        public var intValue: Int? {
            switch self {
            case .uint(let u): return u <= UInt64(Int.max) ? Int(u) : nil
            case .int(let i): return Int(exactly: i)
            default: return nil
            }
        }

        /// The value as a number, when it is one.
        public var doubleValue: Double? {
            switch self {
            case .uint(let u): return Double(u)
            case .int(let i): return Double(i)
            case .float(let f): return f
            default: return nil
            }
        }

        /// The value as a string, when it is one.
        public var stringValue: String? {
            if case .string(let s) = self { return s }
            return nil
        }

        public var description: String {
            switch self {
            case .uint(let u): return "\(u)"
            case .int(let i): return "\(i)"
            case .float(let f): return "\(f)"
            case .bool(let b): return "\(b)"
            case .string(let s): return "\"\(s)\""
            case .array(let t, let n): return "[\(n) x \(GGUFFile.typeName(t))]"
            }
        }
    }

    /// A tensor's info.
    public struct Tensor: Sendable, Equatable {
        /// The name (`token_embd.weight`).
        public let name: String
        /// `ne`, fastest-varying dimension first (a `[n_vocab, n_embd]` table is
        /// `[n_embd, n_vocab]`).
        public let ne: [Int]
        /// The element type.
        public let type: GGMLType
        /// The offset of its data from the start of the file (data start + its offset).
        public let offset: Int
        /// Its bytes.
        public let byteCount: Int
    }

    /// The format version (2 or 3).
    public let version: UInt32
    /// The key/values in file order.
    public let keyValues: [(key: String, value: Value)]
    /// The tensor infos in file order.
    public let tensors: [Tensor]
    /// `general.alignment` (32 when absent).
    public let alignment: Int
    /// Offset of the data section in the file.
    public let dataOffset: Int

    /// The value of `key`, if the file has it.
    public func value(_ key: String) -> Value? { keyValues.first { $0.key == key }?.value }

    /// The tensor named `name`, if any.
    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// True when `bytes` starts with GGUF's magic.
    public static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x47 && bytes[1] == 0x47 && bytes[2] == 0x55 && bytes[3] == 0x46
    }

    /// ggml's `GGML_MAX_NAME`: names are shorter.
    public static let maxNameBytes = 64
    /// ggml's `GGML_MAX_DIMS`.
    public static let maxDims = 4
    /// ggml's cap on string and array lengths.
    public static let maxLength = 1 << 30

    /// The name of a GGUF value type.
    public static func typeName(_ t: UInt32) -> String {
        let names = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
                     "uint64", "int64", "float64"]
        return t < names.count ? names[Int(t)] : "type \(t)"
    }

    /// Bytes of a fixed-size value type, `nil` for string and array (and unknown types).
    static func fixedSize(_ t: UInt32) -> Int? {
        switch t {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 10, 11, 12: 8
        default: nil
        }
    }

    /// Parses the whole file in `file`; `path` names it in messages.
    /// - Throws: `badFile` naming the file, the key or tensor, and the problem.
    public init(file: UnsafeRawBufferPointer, path: String) throws(GPTEmbeddingError) {
        var r = Reader(buffer: file, path: path)
        guard Self.hasMagic(file) else {
            throw GPTEmbeddingError(.badFile, "\(path): not a GGUF file (no GGUF magic)")
        }
        r.position = 4
        let version = try r.u32("the version")
        if version == 0 || version & 0xFFFF == 0 {
            throw GPTEmbeddingError(.badFile, "\(path): GGUF version \(version) \(version == 0 ? "is invalid" : "looks byte-swapped: big-endian GGUF files are not supported")")
        }
        if version == 1 { throw GPTEmbeddingError(.badFile, "\(path): GGUF version 1 is no longer supported (as in ggml); convert the file to version 3") }
        guard version <= 3 else { throw GPTEmbeddingError(.badFile, "\(path): GGUF version \(version) is not supported (2 and 3 are)") }
        self.version = version
        let tensorCount64 = try r.u64("the tensor count")
        let kvCount64 = try r.u64("the key/value count")
        // Every key/value takes at least 13 bytes (length, type, one byte); every tensor info
        // at least 24 (length, n_dims, type, offset).
        guard kvCount64 <= UInt64(r.remaining / 13) else {
            throw GPTEmbeddingError(.badFile, "\(path): \(kvCount64) key/values cannot fit in the \(r.remaining) bytes left in the file")
        }
        guard tensorCount64 <= UInt64(r.remaining / 24) else {
            throw GPTEmbeddingError(.badFile, "\(path): \(tensorCount64) tensors cannot fit in the \(r.remaining) bytes left in the file")
        }
        let kvCount = Int(kvCount64), tensorCount = Int(tensorCount64)

        var kvs: [(key: String, value: Value)] = []
        kvs.reserveCapacity(kvCount)
        var seenKeys = Set<String>()
        for i in 0..<kvCount {
            let key = try r.string("the name of key/value \(i)")
            guard seenKeys.insert(key).inserted else { throw GPTEmbeddingError(.badFile, "\(path): key \"\(key)\" appears twice") }
            let type = try r.u32("the type of key \"\(key)\"")
            let value = try r.value(type: type, key: key)
            kvs.append((key, value))
        }
        keyValues = kvs

        var alignment = 32
        if let a = kvs.first(where: { $0.key == "general.alignment" })?.value {
            // general.alignment must be a UINT32 (ggml), read as .uint; other unsigned types
            // are refused by the check of its type below.
            guard case .uint(let u) = a, r.alignmentWasU32 else {
                throw GPTEmbeddingError(.badFile, "\(path): key \"general.alignment\" must be a uint32, it is \(a)")
            }
            guard u != 0, u & (u - 1) == 0 else {
                throw GPTEmbeddingError(.badFile, "\(path): key \"general.alignment\" = \(u) is not a power of two")
            }
            alignment = Int(u)
        }
        self.alignment = alignment

        var infos: [(name: String, ne: [Int], type: GGMLType, offset: Int, bytes: Int)] = []
        infos.reserveCapacity(tensorCount)
        var seenNames = Set<String>()
        for i in 0..<tensorCount {
            let name = try r.string("the name of tensor \(i)")
            func bad(_ s: String) -> GPTEmbeddingError { GPTEmbeddingError(.badFile, "\(path): tensor \"\(name)\": \(s)") }
            guard name.utf8.count < Self.maxNameBytes else { throw bad("name of \(name.utf8.count) bytes, the limit is \(Self.maxNameBytes - 1)") }
            guard seenNames.insert(name).inserted else { throw bad("appears twice") }
            let nDims = try r.u32("the dims of tensor \"\(name)\"")
            guard nDims <= UInt32(Self.maxDims) else { throw bad("\(nDims) dims, at most \(Self.maxDims) are allowed") }
            var ne: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let n = try r.u64("dim \(d) of tensor \"\(name)\"")
                guard n <= UInt64(Int64.max) else { throw bad("dim \(d) is \(n), negative as ggml's int64") }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(n))
                guard !overflow else { throw bad("shape \(ne + [Int(n)])... has more elements than fit in 64 bits") }
                elements = product
                ne.append(Int(n))
            }
            let rawType = try r.u32("the type of tensor \"\(name)\"")
            guard let type = GGMLType(rawValue: rawType) else { throw bad("unknown ggml type id \(rawType)") }
            let offset64 = try r.u64("the offset of tensor \"\(name)\"")
            let ne0 = ne.first ?? 1
            guard ne0 % type.blockSize == 0 else {
                throw bad("ne[0] = \(ne0) is not a multiple of \(type.name)'s block size \(type.blockSize)")
            }
            guard let rowBytes = type.rowBytes(ne0) else { throw bad("row size overflows") }
            var bytes = rowBytes
            for n in ne.dropFirst() {
                let (b, o) = bytes.multipliedReportingOverflow(by: n)
                guard !o else { throw bad("byte size overflows") }
                bytes = b
            }
            guard offset64 <= UInt64(Int.max), Int(offset64) % alignment == 0 else {
                throw bad("offset \(offset64) is not a multiple of the alignment \(alignment)")
            }
            infos.append((name, ne, type, Int(offset64), bytes))
        }
        // The data section starts at the next multiple of the alignment.
        let end = r.position
        let (padded, o) = end.addingReportingOverflow(alignment - 1)
        guard !o else { throw GPTEmbeddingError(.badFile, "\(path): data offset overflows") }
        let dataOffset = padded / alignment * alignment
        if tensorCount > 0 && dataOffset > file.count {
            throw GPTEmbeddingError(.badFile, "\(path): truncated: the data section starts at byte \(dataOffset), past the end of the \(file.count)-byte file")
        }
        self.dataOffset = dataOffset
        var tensors: [Tensor] = []
        tensors.reserveCapacity(tensorCount)
        for t in infos {
            let (begin, o1) = dataOffset.addingReportingOverflow(t.offset)
            let (stop, o2) = begin.addingReportingOverflow(t.bytes)
            guard !o1, !o2, stop <= file.count else {
                throw GPTEmbeddingError(.badFile, "\(path): tensor \"\(t.name)\": its \(t.bytes) bytes at offset \(t.offset) of the data section (byte \(o1 ? "?" : "\(begin)")) end past the end of the \(file.count)-byte file (truncated?)")
            }
            tensors.append(Tensor(name: t.name, ne: t.ne, type: t.type, offset: begin, byteCount: t.bytes))
        }
        // No two tensors share a byte.
        let sorted = tensors.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw GPTEmbeddingError(.badFile, "\(path): tensors \"\(a.name)\" (bytes \(a.offset)..<\(a.offset + a.byteCount)) and \"\(b.name)\" (from byte \(b.offset)) overlap")
        }
        self.tensors = tensors
    }

    /// Bounds-checked little-endian reads.
    struct Reader {
        let buffer: UnsafeRawBufferPointer
        let path: String
        var position = 0
        /// Whether the last `general.alignment` read was a UINT32.
        var alignmentWasU32 = false

        var remaining: Int { buffer.count - position }

        mutating func bytes(_ n: Int, _ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> UnsafeRawBufferPointer {
            guard n >= 0, n <= remaining else {
                throw GPTEmbeddingError(.badFile, "\(path): truncated: \(what()) needs \(n) bytes at byte \(position), the file has \(remaining) left")
            }
            let slice = UnsafeRawBufferPointer(rebasing: buffer[position..<(position + n)])
            position += n
            return slice
        }

        mutating func u8(_ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> UInt8 {
            try bytes(1, what())[0]
        }
        mutating func u16(_ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> UInt16 {
            let b = try bytes(2, what())
            return UInt16(b[0]) | UInt16(b[1]) << 8
        }
        mutating func u32(_ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> UInt32 {
            let b = try bytes(4, what())
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(b[k]) << (8 * UInt32(k)) }
            return v
        }
        mutating func u64(_ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> UInt64 {
            let b = try bytes(8, what())
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(b[k]) << (8 * UInt64(k)) }
            return v
        }

        /// A length (u64) of `unit`-byte elements, checked against ggml's cap and the bytes
        /// left.
        mutating func length(unit: Int, _ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> Int {
            let n = try u64(what())
            guard n <= UInt64(GGUFFile.maxLength) else {
                throw GPTEmbeddingError(.badFile, "\(path): \(what()) has length \(n), more than ggml's limit of 2^30")
            }
            guard Int(n) <= remaining / unit else {
                throw GPTEmbeddingError(.badFile, "\(path): truncated: \(what()) has length \(n), past the \(remaining) bytes left in the file")
            }
            return Int(n)
        }

        mutating func string(_ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> String {
            let n = try length(unit: 1, what())
            return String(decoding: try bytes(n, what()), as: UTF8.self)
        }

        /// Skips a string (inside arrays).
        mutating func skipString(_ what: @autoclosure () -> String) throws(GPTEmbeddingError) {
            let n = try length(unit: 1, what())
            _ = try bytes(n, what())
        }

        mutating func value(type: UInt32, key: String) throws(GPTEmbeddingError) -> Value {
            let what = "the value of key \"\(key)\""
            if key == "general.alignment" { alignmentWasU32 = type == 4 }
            switch type {
            case 0: return .uint(UInt64(try u8(what)))
            case 1: return .int(Int64(Int8(bitPattern: try u8(what))))
            case 2: return .uint(UInt64(try u16(what)))
            case 3: return .int(Int64(Int16(bitPattern: try u16(what))))
            case 4: return .uint(UInt64(try u32(what)))
            case 5: return .int(Int64(Int32(bitPattern: try u32(what))))
            case 6: return .float(Double(Float(bitPattern: try u32(what))))
            case 7: return .bool(try u8(what) != 0)
            case 8: return .string(try string(what))
            case 10: return .uint(try u64(what))
            case 11: return .int(Int64(bitPattern: try u64(what)))
            case 12: return .float(Double(bitPattern: try u64(what)))
            case 9:
                let elementType = try u32("the element type of key \"\(key)\"")
                if elementType == 9 {
                    throw GPTEmbeddingError(.badFile, "\(path): key \"\(key)\": nested arrays are not supported (as in ggml)")
                }
                guard elementType <= 12 else {
                    throw GPTEmbeddingError(.badFile, "\(path): key \"\(key)\": unknown array element type \(elementType)")
                }
                if let size = GGUFFile.fixedSize(elementType) {
                    let n = try length(unit: size, "the array of key \"\(key)\"")
                    _ = try bytes(n * size, "the array of key \"\(key)\"")
                    return .array(elementType: elementType, count: n)
                }
                // Strings: at least 8 bytes (their length) each.
                let n = try length(unit: 8, "the array of key \"\(key)\"")
                for i in 0..<n { try skipString("string \(i) of key \"\(key)\"") }
                return .array(elementType: elementType, count: n)
            default:
                throw GPTEmbeddingError(.badFile, "\(path): key \"\(key)\" has unknown value type \(type)")
            }
        }
    }
}
