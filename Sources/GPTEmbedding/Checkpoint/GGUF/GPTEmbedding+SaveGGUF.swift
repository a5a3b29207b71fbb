/// How ``GPTEmbedding/saveGGUF(path:tableType:)`` writes the token table.
public enum GGUFTableType: Sendable, Equatable, CustomStringConvertible {
    /// As the layer holds it: f32, f16 or bf16 elements, or a block-format table's blocks
    /// copied unchanged.
    case keep
    /// Elements of a float type (`.f32`, `.f16`, `.bf16`) or blocks of one of the types
    /// this library quantizes to (`.q8_0`, `.q4_0`, `.q4_1`, `.q5_0`, `.q5_1`), byte for byte
    /// as `gguf.quants.quantize` writes them.
    case type(GGMLType)

    /// The types a table can be written in.
    public static let writable: [GGMLType] = [.f32, .f16, .bf16] + GGMLQuantize.writable

    /// `"keep"` or the type's name (`"q8_0"`).
    public var description: String {
        switch self {
        case .keep: "keep"
        case .type(let t): t.name
        }
    }

    /// Parses `"keep"` or a writable type's name.
    public init?(name: String) {
        if name == "keep" { self = .keep; return }
        guard let t = Self.writable.first(where: { $0.name == name }) else { return nil }
        self = .type(t)
    }
}

extension GPTEmbedding {
    /// The GGUF architecture whose input stage (as llama.cpp computes it) is this layer's,
    /// with the keys that stage reads; or an error naming what no architecture expresses.
    ///
    /// - learned positions, no scale: `gpt2` (`position_embd.weight` added)
    /// - the layer norm applied by default, no scale: `bloom` (`token_embd_norm`, epsilon)
    /// - a scale of `sqrtf(D)`: `gemma`; another scale: `granite` (`granite.embedding_scale`)
    /// - none of these: `llama` (a plain lookup)
    func ggufArchitecture() throws(GPTEmbeddingError) -> (name: String, values: [(String, GGUFWriter.Value)]) {
        let c = config, d = c.embedDim
        let scale = c.resolvedTokenScale
        func refuse(_ what: String) -> GPTEmbeddingError {
            GPTEmbeddingError(.invalidArgument, "no GGUF architecture computes this layer's input stage (\(what)): llama.cpp would read the file differently")
        }
        if let shard = c.vocabShard {
            throw GPTEmbeddingError(.invalidArgument, "a shard of the token table (rows \(shard)) cannot be saved as a GGUF file: save the whole table")
        }
        if c.positionEncoding == .sinusoidal { throw refuse("sinusoidal positions") }
        if c.positionOffset != 0 { throw refuse("position offset \(c.positionOffset)") }
        var values: [(String, GGUFWriter.Value)] = []
        let arch: String
        if c.positionEncoding == .learned {
            guard scale == 1 else { throw refuse("learned positions with token rows scaled by \(scale)") }
            guard !c.layerNormByDefault else { throw refuse("learned positions with a layer norm") }
            arch = "gpt2"
            values.append(("gpt2.context_length", .uint32(UInt32(clamping: c.maxSeqLen))))
        } else if c.layerNormByDefault {
            guard scale == 1 else { throw refuse("a layer norm with token rows scaled by \(scale)") }
            arch = "bloom"
            values.append(("bloom.attention.layer_norm_epsilon", .float32(c.layerNormEps)))
        } else if scale == 1 {
            arch = "llama"
        } else if scale == Float(d).squareRoot() {
            arch = "gemma"
        } else {
            arch = "granite"
            values.append(("granite.embedding_scale", .float32(scale)))
        }
        values.insert(("\(arch).embedding_length", .uint32(UInt32(clamping: d))), at: 0)
        return (arch, values)
    }

    /// Saves the layer as a GGUF v3 file that llama.cpp and the `gguf` package read:
    /// `token_embd.weight` (in `tableType`), `position_embd.weight` for learned positions,
    /// `token_embd_norm.weight/.bias` when the layer applies its layer norm by default, and
    /// `general.architecture` naming the architecture whose input stage is this layer's
    /// (see below), with the keys that stage reads. Dropout, the padding row and optimizer
    /// state are not part of a GGUF file and are not written.
    ///
    /// Architectures: learned positions → `gpt2`; the layer norm by default → `bloom`;
    /// token rows times `sqrtf(D)` → `gemma`; times another scale → `granite`
    /// (`granite.embedding_scale`); a plain lookup → `llama`. A layer no architecture
    /// describes (sinusoidal positions, a position offset, a scale with positions or a layer
    /// norm) is refused rather than written with an input stage llama.cpp would compute
    /// differently; so is a shard of a table.
    ///
    /// `tableType`: ``GGUFTableType/keep`` (the stored dtype, or a block table's blocks
    /// unchanged), a float type, or Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 quantized byte for byte
    /// as `gguf.quants.quantize` (ggml's reference quantizers) does, which needs `D` a
    /// multiple of 32 and finite values. The position table is written as the table's float
    /// type (float32 when the table is quantized), the layer norm vectors as float32.
    /// Written to a temporary file renamed over `path`: a failure leaves no partial file.
    /// - Throws: `invalidArgument` (a layer or type that cannot be written, naming it),
    ///   `io`.
    public func saveGGUF(path: String, tableType: GGUFTableType = .keep) throws(GPTEmbeddingError) {
        let (arch, archValues) = try ggufArchitecture()
        let token = tokenEmbedding.weight
        let d = config.embedDim
        // The token table's GGUF type.
        let tableGGML: GGMLType
        switch tableType {
        case .keep:
            tableGGML = token.blockType ?? Self.ggml(token.dtype)
        case .type(let t):
            guard GGUFTableType.writable.contains(t) else {
                throw GPTEmbeddingError(.invalidArgument, "table type \(t.name) cannot be written: expected keep or one of \(GGUFTableType.writable.map(\.name).joined(separator: ", "))")
            }
            tableGGML = t
        }
        let copiesBlocks = token.blockType != nil && token.blockType == tableGGML
        guard let tableRowBytes = tableGGML.rowBytes(d) else {
            throw GPTEmbeddingError(.invalidArgument, "table type \(tableGGML.name) needs rows of a multiple of \(tableGGML.blockSize) elements: D = \(d) is not")
        }
        let quantizes = GGMLQuantize.writable.contains(tableGGML) && !copiesBlocks
        // The float type of the other tables: the table's, or float32 next to blocks.
        let positionGGML: GGMLType = tableGGML.blockSize == 1 ? tableGGML : .f32

        var w = GGUFWriter(alignment: 32)
        w.add("general.architecture", .string(arch))
        w.add("general.alignment", .uint32(32))
        for (k, v) in archValues { w.add(k, v) }
        if tableGGML.blockSize > 1 { w.add("general.quantization_version", .uint32(2)) }
        w.add(GGUFWriter.TensorInfo(name: "token_embd.weight", ne: [d, token.rows], type: tableGGML,
                                    bytes: try Checked.multiply(tableRowBytes, token.rows, "token_embd.weight size")))
        let position = config.positionEncoding == .learned ? positionalEmbedding?.weight : nil
        if let p = position {
            w.add(GGUFWriter.TensorInfo(name: "position_embd.weight", ne: [d, p.rows], type: positionGGML,
                                        bytes: p.rows * d * positionGGML.blockBytes))
        }
        let norm = config.layerNormByDefault
        if norm {
            for name in ["token_embd_norm.weight", "token_embd_norm.bias"] {
                w.add(GGUFWriter.TensorInfo(name: name, ne: [d], type: .f32, bytes: d * 4))
            }
        }

        // Quantizing needs finite values: checked before the file is created.
        let rowChunk = max(1, min(token.rows, (1 << 22) / max(d, 1)))
        let chunk = try FloatBuffer(count: Checked.multiply(rowChunk, d, "GGUF row scratch"), zeroed: false, what: "GGUF row scratch")
        if quantizes {
            var r0 = 0
            while r0 < token.rows {
                let n = min(rowChunk, token.rows - r0)
                token.widen(into: chunk.base, from: r0 * d, count: n * d)
                for i in 0..<(n * d) where !chunk.base[i].isFinite {
                    throw GPTEmbeddingError(.invalidArgument, "token_embd.weight row \(r0 + i / d), column \(i % d) is \(chunk.base[i]): \(tableGGML.name) quantizes finite values only")
                }
                r0 += n
            }
        }

        let out = try FloatBuffer(count: Checked.multiply(rowChunk, max(tableRowBytes, d * 4) / 4 + 1, "GGUF output scratch"),
                                  zeroed: false, what: "GGUF output scratch")
        let file = try AtomicFile(path: path)
        let header = w.header()
        file.write(header)
        var written = 0
        func pad() { file.zeros(w.padded(written) - written); written = w.padded(written) }

        // token_embd.weight, a chunk of rows at a time.
        var r0 = 0
        while r0 < token.rows {
            let n = min(rowChunk, token.rows - r0)
            let bytes = n * tableRowBytes
            if copiesBlocks {
                file.write(UnsafeRawPointer(token.storage.base + r0 * tableRowBytes), bytes)
            } else if tableGGML.blockSize == 1 && token.blockType == nil && Self.ggml(token.dtype) == tableGGML {
                file.write(UnsafeRawPointer(token.storage.base + r0 * d * token.dtype.byteCount), bytes)
            } else {
                token.widen(into: chunk.base, from: r0 * d, count: n * d)
                let dst = UnsafeMutableRawPointer(out.base)
                if quantizes {
                    let rows = SendableConstPointer(UnsafePointer(chunk.base)), o = SendablePointer(dst.assumingMemoryBound(to: UInt8.self))
                    let type = tableGGML, rowBytes = tableRowBytes
                    pool.parallelFor(count: n, grain: WorkerPool.computeGrain(elementsPerItem: d * 8)) { _, range in
                        for r in range { GGMLQuantize.quantizeRow(type, rows.pointer + r * d, d, o.pointer + r * rowBytes) }
                    }
                } else {
                    kernels.convert(dst, Self.dtype(tableGGML).rawValue, UnsafeRawPointer(chunk.base), TensorDType.float32.rawValue, Int64(n * d))
                }
                file.write(UnsafeRawPointer(dst), bytes)
            }
            written += bytes
            r0 += n
        }
        pad()
        if let p = position {
            let count = p.rows * d
            let tmp = try FloatBuffer(count: count, zeroed: false, what: "position table scratch")
            p.widen(into: tmp.base, from: 0, count: count)
            if positionGGML == .f32 {
                file.write(UnsafeRawPointer(tmp.base), count * 4)
            } else {
                let h = try FloatBuffer(count: (count + 1) / 2, zeroed: false, what: "position table scratch")
                kernels.convert(UnsafeMutableRawPointer(h.base), Self.dtype(positionGGML).rawValue, UnsafeRawPointer(tmp.base),
                                TensorDType.float32.rawValue, Int64(count))
                file.write(UnsafeRawPointer(h.base), count * 2)
            }
            written += count * positionGGML.blockBytes
            pad()
        }
        if norm {
            for t in [layerNormWeight, layerNormBias] {
                file.write(UnsafeRawPointer(t.storage.base), d * 4)
                written += d * 4
                pad()
            }
        }
        try file.commit()
    }

    /// The GGUF type of a float dtype.
    static func ggml(_ dtype: TensorDType) -> GGMLType {
        switch dtype {
        case .float32: .f32
        case .bfloat16: .bf16
        case .float16: .f16
        }
    }

    /// The dtype of a float GGUF type (`.f32`, `.f16`, `.bf16`).
    static func dtype(_ type: GGMLType) -> TensorDType {
        switch type {
        case .bf16: .bfloat16
        case .f16: .float16
        default: .float32
        }
    }
}
