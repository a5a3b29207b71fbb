/// The validated header of a safetensors file (huggingface/safetensors format): an
/// 8-byte little-endian header length, a JSON header, then the tensor bytes.
///
/// Validation follows the format's rules and its reference reader: header length capped at
/// 100,000,000 bytes and inside the file; UTF-8 JSON starting with `{`; known dtypes;
/// non-negative integer shapes and offsets; element counts computed with checked
/// arithmetic and equal to each tensor's byte range; ranges contiguous from 0, not
/// overlapping, no holes, ending exactly at the end of the file.
public struct SafetensorsHeader: Sendable {
    /// One tensor of the file.
    public struct Tensor: Sendable, Equatable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        /// Byte range relative to the data section.
        public let begin: Int
        public let end: Int
        /// Number of elements.
        public var count: Int { shape.reduce(1, *) }
    }

    /// Every tensor, in file order.
    public let tensors: [Tensor]
    /// The `__metadata__` map, if any.
    public let metadata: [String: String]
    /// Offset of the data section in the file.
    public let dataOffset: Int

    /// The header length cap of the reference reader.
    public static let maxHeaderLength = 100_000_000

    /// Bits per element of each dtype the format defines.
    static let dtypeBits: [String: Int] = [
        "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
        "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
    ]

    /// Parses and validates the header of a whole file held in `file`.
    public init(file: UnsafeRawBufferPointer) throws(GPTEmbeddingError) {
        try self.init(prefix: file, fileSize: file.count)
    }

    /// The header length a file starts with (its first 8 bytes, little-endian), checked
    /// against the cap and the file size: the header occupies bytes `8 ..< 8 + length`.
    static func headerLength(_ first8: UnsafeRawBufferPointer, fileSize: Int) throws(GPTEmbeddingError) -> Int {
        func bad(_ s: String) -> GPTEmbeddingError { GPTEmbeddingError(.badFile, s) }
        guard fileSize >= 8, first8.count >= 8 else { throw bad("file is \(fileSize) bytes, shorter than the 8-byte header length") }
        var n64: UInt64 = 0
        for k in 0..<8 { n64 |= UInt64(first8[k]) << (8 * UInt64(k)) }
        guard n64 <= UInt64(Self.maxHeaderLength) else {
            throw bad("header length \(n64) exceeds the limit of \(Self.maxHeaderLength) bytes")
        }
        let n = Int(n64)
        guard n <= fileSize - 8 else { throw bad("header length \(n) goes past the end of the file (\(fileSize) bytes)") }
        return n
    }

    /// Parses and validates the header of a file of `fileSize` bytes whose first bytes
    /// (at least the 8-byte length and the header itself) are `prefix`: for reading a
    /// checkpoint without mapping or reading the whole file.
    init(prefix file: UnsafeRawBufferPointer, fileSize: Int) throws(GPTEmbeddingError) {
        func bad(_ s: String) -> GPTEmbeddingError { GPTEmbeddingError(.badFile, s) }
        let n = try Self.headerLength(file, fileSize: fileSize)
        guard 8 + n <= file.count else { throw bad("header length \(n) goes past the bytes read (\(file.count))") }
        guard n > 0, file[8] == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[8..<(8 + n)])
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw bad("header is not valid UTF-8") }
        guard case .object(let members) = try JSONValue.parse(headerBytes) else { throw bad("header is not a JSON object") }

        var tensors: [Tensor] = []
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else { throw bad("__metadata__ is not an object") }
                for (k, v) in pairs {
                    guard case .string(let s) = v else { throw bad("__metadata__: value of \"\(k)\" is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard case .object(let fields) = value else { throw bad("\(name): entry is not an object") }
            func field(_ key: String) -> JSONValue? { fields.first { $0.0 == key }?.1 }
            guard case .string(let dtype)? = field("dtype") else { throw bad("\(name): missing or non-string dtype") }
            guard let bits = Self.dtypeBits[dtype] else { throw bad("\(name): unknown dtype \"\(dtype)\"") }
            guard case .array(let dims)? = field("shape") else { throw bad("\(name): missing shape") }
            var shape: [Int] = []
            var elements = 1
            for d in dims {
                guard case .integer(let v) = d, v >= 0 else { throw bad("\(name): shape must hold non-negative integers") }
                shape.append(v)
                let (e, o) = elements.multipliedReportingOverflow(by: v)
                guard !o else { throw bad("\(name): element count of shape \(shape) overflows") }
                elements = e
            }
            guard case .array(let offsets)? = field("data_offsets"), offsets.count == 2,
                  case .integer(let begin) = offsets[0], case .integer(let end) = offsets[1], begin >= 0, end >= begin else {
                throw bad("\(name): data_offsets must be [begin, end] with 0 <= begin <= end")
            }
            let (totalBits, o) = elements.multipliedReportingOverflow(by: bits)
            guard !o else { throw bad("\(name): byte size of shape \(shape) overflows") }
            guard totalBits % 8 == 0 else { throw bad("\(name): \(elements) \(dtype) elements are not a whole number of bytes") }
            guard end - begin == totalBits / 8 else {
                throw bad("\(name): data_offsets [\(begin), \(end)] hold \(end - begin) bytes, shape \(shape) of \(dtype) needs \(totalBits / 8)")
            }
            tensors.append(Tensor(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        // Contiguous from 0, no overlap, no hole, and the buffer fills the rest of the file.
        var position = 0
        for t in tensors.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard t.begin == position else {
                throw bad(t.begin < position ? "\(t.name): data_offsets overlap another tensor" : "\(t.name): a hole of \(t.begin - position) bytes precedes it")
            }
            position = t.end
        }
        guard position == fileSize - 8 - n else {
            let available = fileSize - 8 - n
            // The first tensor the end of the file cuts, named for the message.
            let cut = tensors.filter { $0.end > available }.min { $0.begin < $1.begin }
            throw bad((position > available ? "truncated: " : "")
                + "the tensors cover \(position) bytes but the file has \(available) bytes after the header"
                + (cut.map { ": tensor \"\($0.name)\" (bytes \($0.begin) to \($0.end)) is cut short" } ?? ""))
        }
        self.tensors = tensors
        self.metadata = metadata
        self.dataOffset = 8 + n
    }
}
