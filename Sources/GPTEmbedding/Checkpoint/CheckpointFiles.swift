#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The safetensors files of a checkpoint, open, with their validated headers, and which file
/// holds which tensor. A checkpoint is a `.safetensors` file, or a folder holding
/// `model.safetensors`, or a folder holding a sharded checkpoint: Hugging Face's
/// `model.safetensors.index.json`, whose `weight_map` names the shard file of every tensor.
///
/// Only headers are read here (a few kilobytes per file, with `pread`); the tensors are read
/// or mapped by the caller. Every rule is checked before anything is allocated: shard paths
/// stay inside the folder, every shard exists and is a valid safetensors file (not
/// truncated), each tensor the index names is in its shard, and no tensor is in two shards.
final class CheckpointFiles {
    /// One open safetensors file.
    struct Shard {
        let path: String
        let fd: Int32
        let size: Int
        let header: SafetensorsHeader
    }

    /// Where a tensor is.
    struct Location {
        let shard: Int
        let tensor: SafetensorsHeader.Tensor
        /// Offset of its data in the file.
        let offset: Int
    }

    private(set) var shards: [Shard] = []
    /// Mappings made by ``mapping(of:)``, by shard.
    fileprivate var mappings: [Int: MappedFile] = [:]
    /// Every tensor of every shard, by name.
    private(set) var tensors: [String: Location] = [:]
    /// What was opened, for messages: the file, or the folder and its index.
    let description: String
    /// The folder, when the path was one (its config.json may name the model family).
    private(set) var folder: String? = nil

    /// Opens the checkpoint at `path`.
    init(path: String) throws(GPTEmbeddingError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw GPTEmbeddingError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let folder = path.hasSuffix("/") ? String(path.dropLast()) : path
            self.folder = folder
            let index = folder + "/model.safetensors.index.json"
            if access(index, F_OK) == 0 {
                description = index
                try openSharded(folder: folder, index: index)
                return
            }
            let single = folder + "/model.safetensors"
            guard access(single, F_OK) == 0 else {
                throw GPTEmbeddingError(.io, "\(folder): no model.safetensors or model.safetensors.index.json in this folder")
            }
            description = single
            try add(shard: single, expected: nil)
            return
        }
        description = path
        try add(shard: path, expected: nil)
    }

    deinit { for s in shards { close(s.fd) } }

    /// The tensor named `name`, if any file holds it.
    func location(_ name: String) -> Location? { tensors[name] }

    /// The path of a tensor's file, for messages.
    func file(of location: Location) -> String { shards[location.shard].path }

    // MARK: Sharded folders

    /// The index's largest accepted size: real indexes are a few hundred kilobytes.
    static let maxIndexBytes = 64 << 20

    private func openSharded(folder: String, index: String) throws(GPTEmbeddingError) {
        let bytes = try Self.readWhole(index, limit: Self.maxIndexBytes)
        let weightMap = try bytes.withUnsafeBufferPointer { (buf) throws(GPTEmbeddingError) in
            try Self.parseIndex(UnsafeRawBufferPointer(buf), path: index)
        }
        // Shards in the order the index first names them.
        var order: [String] = []
        var wanted: [String: [String]] = [:]
        for (tensor, file) in weightMap {
            if wanted[file] == nil { order.append(file) }
            wanted[file, default: []].append(tensor)
        }
        for file in order {
            try add(shard: folder + "/" + file, expected: wanted[file] ?? [])
        }
    }

    /// The `weight_map` of an index file: tensor name to shard file name, each checked to
    /// stay inside the folder. Duplicate names are rejected by the JSON parser.
    static func parseIndex(_ raw: UnsafeRawBufferPointer, path: String) throws(GPTEmbeddingError) -> [(String, String)] {
        func bad(_ s: String) -> GPTEmbeddingError { GPTEmbeddingError(.badFile, "\(path): \(s)") }
        let value: JSONValue
        do { value = try JSONValue.parse(raw, what: "the index") } catch { throw bad(error.message) }
        guard case .object(let members) = value else { throw bad("not a JSON object") }
        guard case .object(let map)? = members.first(where: { $0.0 == "weight_map" })?.1 else {
            throw bad("no \"weight_map\" object")
        }
        var result: [(String, String)] = []
        for (tensor, file) in map {
            guard case .string(let name) = file else { throw bad("weight_map: the shard of \"\(tensor)\" is not a string") }
            try checkShardName(name, tensor: tensor, index: path)
            result.append((tensor, name))
        }
        guard !result.isEmpty else { throw bad("weight_map is empty") }
        return result
    }

    /// A shard's file name must stay inside the index's folder: relative, no `..`.
    static func checkShardName(_ name: String, tensor: String, index: String) throws(GPTEmbeddingError) {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !name.hasPrefix("/"), !parts.contains(".."), !parts.contains(""), !name.utf8.contains(0) else {
            throw GPTEmbeddingError(.badFile, "\(index): the shard \"\(name)\" of tensor \"\(tensor)\" leaves the folder (absolute, empty or with ..)")
        }
    }

    // MARK: Files

    /// Opens `path`, reads and validates its header and records its tensors; `expected`
    /// are the tensors an index says it holds.
    private func add(shard path: String, expected: [String]?) throws(GPTEmbeddingError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno))
            throw GPTEmbeddingError(expected == nil ? .io : .badFile,
                                    expected == nil ? "cannot open \(path): \(why)"
                                        : "\(description) names the shard \(path) (for \(expected!.map { "\"\($0)\"" }.joined(separator: ", "))), which cannot be opened: \(why)")
        }
        var keep = false
        defer { if !keep { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GPTEmbeddingError(.io, "cannot stat \(path)") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GPTEmbeddingError(.io, "\(path) is not a regular file") }
        let size = Int(st.st_size)
        let header: SafetensorsHeader
        do {
            var first8 = [UInt8](repeating: 0, count: 8)
            try Self.readExactly(fd, into: &first8, at: 0, path: path, fileSize: size)
            let n = try first8.withUnsafeBufferPointer { (b) throws(GPTEmbeddingError) in
                try SafetensorsHeader.headerLength(UnsafeRawBufferPointer(b), fileSize: size)
            }
            var prefix = [UInt8](repeating: 0, count: 8 + n)
            try Self.readExactly(fd, into: &prefix, at: 0, path: path, fileSize: size)
            header = try prefix.withUnsafeBufferPointer { (b) throws(GPTEmbeddingError) in
                try SafetensorsHeader(prefix: UnsafeRawBufferPointer(b), fileSize: size)
            }
        } catch {
            throw GPTEmbeddingError(error.code, "\(path): \(error.message)")
        }
        let index = shards.count
        for t in header.tensors {
            if let other = tensors[t.name] {
                throw GPTEmbeddingError(.badFile, "tensor \"\(t.name)\" is in two shards: \(shards[other.shard].path) and \(path)")
            }
            tensors[t.name] = Location(shard: index, tensor: t, offset: header.dataOffset + t.begin)
        }
        for name in expected ?? [] where !header.tensors.contains(where: { $0.name == name }) {
            throw GPTEmbeddingError(.badFile, "\(description) puts tensor \"\(name)\" in \(path), which does not hold it")
        }
        shards.append(Shard(path: path, fd: fd, size: size, header: header))
        keep = true
    }

    /// Reads `buffer.count` bytes at `offset`; a short file is a bad (truncated) file.
    static func readExactly(_ fd: Int32, into buffer: inout [UInt8], at offset: Int, path: String, fileSize: Int) throws(GPTEmbeddingError) {
        let ok = buffer.withUnsafeMutableBytes { readFully(fd, $0.baseAddress, $0.count, at: offset) }
        guard ok else { throw GPTEmbeddingError(.badFile, "\(path): truncated or unreadable (\(fileSize) bytes)") }
    }

    /// `pread` until `count` bytes arrived (retrying interrupted and short reads); `false`
    /// at end of file or on an error.
    static func readFully(_ fd: Int32, _ p: UnsafeMutableRawPointer?, _ count: Int, at offset: Int) -> Bool {
        guard let p else { return count == 0 }
        var done = 0
        while done < count {
            let n = pread(fd, p + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// A whole (small) file.
    static func readWhole(_ path: String, limit: Int) throws(GPTEmbeddingError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GPTEmbeddingError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GPTEmbeddingError(.io, "cannot stat \(path)") }
        let size = Int(st.st_size)
        guard size <= limit else { throw GPTEmbeddingError(.badFile, "\(path) is \(size) bytes, more than the \(limit) accepted") }
        var bytes = [UInt8](repeating: 0, count: size)
        try readExactly(fd, into: &bytes, at: 0, path: path, fileSize: size)
        return bytes
    }
}

extension CheckpointFiles {
    /// A private mapping of shard `index`, made once and shared by its tables.
    func mapping(of index: Int) throws(GPTEmbeddingError) -> MappedFile {
        if let m = mappings[index] { return m }
        let s = shards[index]
        let m = try MappedFile(fd: s.fd, byteCount: s.size, path: s.path)
        mappings[index] = m
        return m
    }
}
