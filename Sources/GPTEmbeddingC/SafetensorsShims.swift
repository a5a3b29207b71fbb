import CGPTEmbedding
import GPTEmbedding

// Weights in and out: safetensors files.

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
