import CGPTEmbedding
import GPTEmbedding

// Weights in and out: safetensors files, and GGUF files out.

@c @implementation
public func gpt_embedding_load_safetensors(_ layer: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    api("gpt_embedding_load_safetensors") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        try layer.loadSafetensors(path: String(cString: try required(path, "path")))
    }
}

@c @implementation
public func gpt_embedding_load_safetensors_buffer(_ layer: OpaquePointer?, _ data: UnsafeRawPointer?, _ size: Int64) -> Int32 {
    api("gpt_embedding_load_safetensors_buffer") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let data = try required(data, "data")
        guard size >= 0 else { throw GPTEmbeddingError(.invalidArgument, "size = \(size) must be >= 0") }
        try layer.loadSafetensors(bytes: UnsafeRawBufferPointer(start: data, count: Int(size)))
    }
}

@c @implementation
public func gpt_embedding_save_safetensors(_ layer: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ flags: UInt32) -> Int32 {
    api("gpt_embedding_save_safetensors") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let path = String(cString: try required(path, "path"))
        let known = UInt32(GPT_EMBEDDING_SAVE_GPT2_NAMES) | UInt32(GPT_EMBEDDING_SAVE_OPTIMIZER)
        guard flags & ~known == 0 else {
            throw GPTEmbeddingError(.invalidArgument, "unknown flags 0x\(String(flags, radix: 16)): expected GPT_EMBEDDING_SAVE_GPT2_NAMES and/or GPT_EMBEDDING_SAVE_OPTIMIZER")
        }
        try layer.saveSafetensors(path: path, gpt2Names: flags & UInt32(GPT_EMBEDDING_SAVE_GPT2_NAMES) != 0,
                                  optimizerState: flags & UInt32(GPT_EMBEDDING_SAVE_OPTIMIZER) != 0)
    }
}

// GGUF files out (opening them is gpt_embedding_open's).

@c @implementation
public func gpt_embedding_save_gguf(_ layer: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ tableType: Int32,
                                    _ flags: UInt32) -> Int32 {
    api("gpt_embedding_save_gguf") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let path = String(cString: try required(path, "path"))
        guard flags == 0 else { throw GPTEmbeddingError(.invalidArgument, "unknown flags 0x\(String(flags, radix: 16)): expected 0") }
        let type: GGUFTableType
        if tableType == Int32(GPT_EMBEDDING_GGUF_KEEP) {
            type = .keep
        } else if tableType >= 0, let t = GGMLType(rawValue: UInt32(tableType)), GGUFTableType.writable.contains(t) {
            type = .type(t)
        } else {
            throw GPTEmbeddingError(.invalidArgument, "table_type = \(tableType) is not GPT_EMBEDDING_GGUF_KEEP or a writable type (GPT_EMBEDDING_GGML_ F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)")
        }
        try layer.saveGGUF(path: path, tableType: type)
    }
}
