#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Weights in and out in the safetensors format, compatible with Hugging Face GPT-2.
extension GPTEmbedding {
    /// Names each parameter may have in a file: the library's, then Hugging Face GPT-2's.
    static let tensorAliases: [(Parameter, [String])] = [
        (.tokenEmbedding, ["token_embedding.weight", "wte.weight", "transformer.wte.weight"]),
        (.positionEmbedding, ["position_embedding.weight", "wpe.weight", "transformer.wpe.weight"]),
        (.layerNormWeight, ["layer_norm.weight"]),
        (.layerNormBias, ["layer_norm.bias"]),
    ]

    /// Loads the parameters from a safetensors file in memory (`file` is the whole file).
    ///
    /// The token table is required; the learned position table too when positions are
    /// learned (a position table is ignored otherwise); the layer norm vectors are optional
    /// (a GPT-2 checkpoint has none, so the layer keeps its own). Other tensors are ignored.
    /// F32, F16 and BF16 tensors are converted to the layer's dtypes (exactly when widening,
    /// to nearest even when narrowing). Everything is validated before anything is written:
    /// after an error the layer is unchanged. Gradients are not touched.
    public func loadSafetensors(bytes file: UnsafeRawBufferPointer) throws(GPTEmbeddingError) {
        let header = try SafetensorsHeader(file: file)
        var plan: [(ParameterTensor, SafetensorsHeader.Tensor)] = []
        for (param, names) in Self.tensorAliases {
            let found = header.tensors.filter { names.contains($0.name) }
            if found.count > 1 {
                throw GPTEmbeddingError(.badFile, "\(found.map(\.name).joined(separator: " and ")) are two names for one parameter")
            }
            guard let t = found.first else {
                if param == .tokenEmbedding || (param == .positionEmbedding && config.positionEncoding == .learned) {
                    throw GPTEmbeddingError(.badFile, "missing tensor \(names.joined(separator: " / "))")
                }
                continue
            }
            if param == .positionEmbedding && config.positionEncoding != .learned { continue }
            let target = try tensor(param)
            let expected = param == .layerNormWeight || param == .layerNormBias ? [target.cols] : [target.rows, target.cols]
            guard t.shape == expected else {
                throw GPTEmbeddingError(.badFile, "\(t.name): shape \(t.shape) does not match the layer's \(target.name) \(expected)")
            }
            guard ["F32", "F16", "BF16"].contains(t.dtype) else {
                throw GPTEmbeddingError(.badFile, "\(t.name): dtype \(t.dtype) cannot be loaded (F32, F16 or BF16)")
            }
            plan.append((target, t))
        }
        let optimizerPlan = try optimizerStatePlan(header)
        var dropoutStep: UInt64? = nil
        if let text = header.metadata["dropout.step"] {
            guard let n = UInt64(text) else { throw GPTEmbeddingError(.badFile, "__metadata__ dropout.step is \"\(text)\", not a count") }
            dropoutStep = n
        }
        // Everything the restore needs is allocated before anything is written.
        var states: [ObjectIdentifier: AdamWState] = [:]
        for entry in optimizerPlan where states[ObjectIdentifier(entry.tensor)] == nil {
            if let kept = entry.tensor.adamw {
                states[ObjectIdentifier(entry.tensor)] = kept
            } else {
                states[ObjectIdentifier(entry.tensor)] = try AdamWState(count: entry.tensor.count, name: entry.tensor.name,
                                                                        needsMaster: entry.tensor.dtype != .float32)
            }
        }
        // Validated: nothing below can fail. (safetensors is little-endian, as is every
        // platform this library builds for.)
        guard let base = file.baseAddress else { return }
        for (target, t) in plan {
            guard let dtype = TensorDType(safetensorsName: t.dtype) else { continue }  // checked above
            target.storage.convert(from: base + header.dataOffset + t.begin, dtype: dtype, count: t.count,
                                   kernels: kernels, pool: pool)
            // A 16-bit table's master weights follow the loaded table unless the file has them.
            if let master = target.adamw?.master { target.refreshMaster(master, pool: pool) }
        }
        if let dropoutStep { trainingStep = dropoutStep }
        for entry in optimizerPlan {
            guard let state = states[ObjectIdentifier(entry.tensor)] else { continue }
            entry.tensor.adamw = state
            state.step = entry.step
            for (kind, t) in entry.tensors {
                guard let b = state.buffer(kind) else { continue }
                memcpy(b.base, base + header.dataOffset + t.begin, b.byteCount)
            }
            if state.master != nil, !entry.tensors.contains(where: { $0.0 == .master }), let master = state.master {
                entry.tensor.refreshMaster(master, pool: pool)
            }
        }
    }

    /// One parameter's optimizer state in a file.
    private struct StateEntry {
        let tensor: ParameterTensor
        let step: Int64
        let tensors: [(AdamWState.Kind, SafetensorsHeader.Tensor)]
    }

    /// The optimizer state a file holds (written by `saveSafetensors(optimizerState: true)`),
    /// validated: F32 tensors of the parameter's size, both moments, a master only for a
    /// 16-bit table, and a step count in the metadata.
    private func optimizerStatePlan(_ header: SafetensorsHeader) throws(GPTEmbeddingError) -> [StateEntry] {
        func bad(_ s: String) -> GPTEmbeddingError { GPTEmbeddingError(.badFile, s) }
        var entries: [StateEntry] = []
        let names = Set(parameters.map(\.name))
        for t in header.tensors where t.name.hasPrefix("optimizer.") {
            guard let kind = AdamWState.Kind.allCases.first(where: { t.name.hasSuffix(".\($0.name)") }),
                  names.contains(String(t.name.dropFirst("optimizer.".count).dropLast(kind.name.count + 1))) else {
                throw bad("\(t.name): not an optimizer state tensor of this layer (optimizer.<parameter>.exp_avg, .exp_avg_sq or .master)")
            }
        }
        for p in parameters {
            let found = AdamWState.Kind.allCases.compactMap { kind in
                header.tensors.first { $0.name == "optimizer.\(p.name).\(kind.name)" }.map { (kind, $0) }
            }
            let stepText = header.metadata["optimizer.\(p.name).step"]
            if found.isEmpty && stepText == nil { continue }
            for (kind, t) in found {
                guard t.dtype == "F32", t.count == p.count else {
                    throw bad("\(t.name): \(t.dtype) \(t.shape) does not match \(p.name) (F32, \(p.count) elements)")
                }
                if kind == .master && p.dtype == .float32 {
                    throw bad("\(t.name): \(p.name) is float32 and has no master weights")
                }
            }
            guard found.contains(where: { $0.0 == .expAvg }), found.contains(where: { $0.0 == .expAvgSq }) else {
                throw bad("optimizer state of \(p.name) is incomplete: both exp_avg and exp_avg_sq are needed")
            }
            guard let stepText, let step = Int64(stepText), step >= 0 else {
                throw bad("__metadata__ optimizer.\(p.name).step is \(stepText.map { "\"\($0)\"" } ?? "missing"): a step count >= 0 is needed")
            }
            entries.append(StateEntry(tensor: p, step: step, tensors: found))
        }
        return entries
    }

    /// Loads the parameters from a safetensors file; the file is memory-mapped, so no copy
    /// of it is made (see ``loadSafetensors(bytes:)``).
    public func loadSafetensors(path: String) throws(GPTEmbeddingError) {
        try Self.withMappedFile(path) { (bytes) throws(GPTEmbeddingError) in try loadSafetensors(bytes: bytes) }
    }

    /// The validated header of a safetensors file (for inspecting checkpoints).
    public static func safetensorsHeader(path: String) throws(GPTEmbeddingError) -> SafetensorsHeader {
        try withMappedFile(path) { (bytes) throws(GPTEmbeddingError) in try SafetensorsHeader(file: bytes) }
    }

    /// Calls `body` with the file at `path` memory-mapped read-only.
    static func withMappedFile<R>(_ path: String, _ body: (UnsafeRawBufferPointer) throws(GPTEmbeddingError) -> R) throws(GPTEmbeddingError) -> R {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GPTEmbeddingError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GPTEmbeddingError(.io, "cannot stat \(path)") }
        let size = Int(st.st_size)
        guard size > 0 else { throw GPTEmbeddingError(.badFile, "\(path) is empty") }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw GPTEmbeddingError(.io, "cannot map \(path): \(String(cString: strerror(errno)))")
        }
        defer { munmap(map, size) }
        return try body(UnsafeRawBufferPointer(start: map, count: size))
    }

    /// Saves the parameters as safetensors in their stored dtypes (a bf16 table stays bf16;
    /// the layer norm vectors are F32): the library's names, or with `gpt2Names`
    /// `wte.weight` / `wpe.weight` for the tables. With `optimizerState`, each parameter's
    /// AdamW state goes along (`optimizer.<name>.exp_avg`, `.exp_avg_sq`, `.master`, F32;
    /// the step counts in `__metadata__` as `optimizer.<name>.step`), so that
    /// ``loadSafetensors(path:)`` resumes training bit for bit. Written to a temporary file
    /// that is renamed over `path`, so a failure never leaves a partial file.
    public func saveSafetensors(path: String, gpt2Names: Bool = false, optimizerState: Bool = false) throws(GPTEmbeddingError) {
        var entries: [(name: String, dtype: String, shape: String, base: UnsafeRawPointer, bytes: Int)] = []
        var metadata: [String] = []
        // A table in a block format (GGUF) has no safetensors dtype: it is written
        // dequantized, as float32 (the values the layer computes with).
        var dequantized: [FloatBuffer] = []
        for t in parameters {
            var name = t.name
            if gpt2Names && t === tokenEmbedding.weight { name = "wte.weight" }
            if gpt2Names && t === positionalEmbedding?.weight { name = "wpe.weight" }
            let shape = t.name.hasPrefix("layer_norm") ? "[\(t.cols)]" : "[\(t.rows),\(t.cols)]"
            if t.blockType != nil {
                let b = try FloatBuffer(count: t.count, zeroed: false, what: "\(t.name) dequantized for safetensors")
                t.widen(into: b.base, from: 0, count: t.count)
                dequantized.append(b)
                entries.append((name, "F32", shape, UnsafeRawPointer(b.base), t.count * 4))
            } else {
                entries.append((name, t.dtype.safetensorsName, shape, UnsafeRawPointer(t.storage.base), t.storage.byteCount))
            }
        }
        defer { withExtendedLifetime(dequantized) {} }
        if optimizerState {
            for t in parameters {
                guard let state = t.adamw else { continue }
                let shape = t.name.hasPrefix("layer_norm") ? "[\(t.cols)]" : "[\(t.rows),\(t.cols)]"
                for kind in AdamWState.Kind.allCases {
                    guard let b = state.buffer(kind) else { continue }
                    entries.append(("optimizer.\(t.name).\(kind.name)", "F32", shape, UnsafeRawPointer(b.base), b.byteCount))
                }
                metadata.append("\"optimizer.\(t.name).step\":\"\(state.step)\"")
            }
            // Where the dropout masks' stream is, so that resumed training draws the same.
            metadata.append("\"dropout.step\":\"\(trainingStep)\"")
        }
        var header = "{"
        if !metadata.isEmpty { header += "\"__metadata__\":{" + metadata.joined(separator: ",") + "}," }
        var offset = 0
        for (k, e) in entries.enumerated() {
            header += (k > 0 ? "," : "") + "\"\(e.name)\":{\"dtype\":\"\(e.dtype)\",\"shape\":\(e.shape),\"data_offsets\":[\(offset),\(offset + e.bytes)]}"
            offset += e.bytes
        }
        header += "}"
        while header.utf8.count % 8 != 0 { header += " " }  // aligns the data, as the reference writer does
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw GPTEmbeddingError(.io, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        func writeAll(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
            var done = 0
            while done < n {
                let w = write(fd, p + done, n - done)
                if w <= 0 { return false }
                done += w
            }
            return true
        }
        var length = UInt64(header.utf8.count).littleEndian
        var ok = withUnsafeBytes(of: &length) { writeAll($0.baseAddress!, 8) }
        ok = ok && header.utf8CString.withUnsafeBytes { writeAll($0.baseAddress!, header.utf8.count) }
        for e in entries where ok { ok = writeAll(e.base, e.bytes) }
        ok = close(fd) == 0 && ok
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw GPTEmbeddingError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
