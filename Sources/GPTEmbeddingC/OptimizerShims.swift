import CGPTEmbedding
import GPTEmbedding

// The training step: AdamW options, the step, the gradient norm and the optimizer state.

/// Sizes of `gpt_embedding_adamw_options` this library knows (only the current one yet).
private let adamwOptionsSize = MemoryLayout<gpt_embedding_adamw_options>.size

/// The parameters of a C bit mask; unknown bits are an error naming the field.
private func parameterSet(_ mask: UInt32, _ field: StaticString) throws(GPTEmbeddingError) -> Set<GPTEmbedding.Parameter> {
    guard mask & ~UInt32(GPT_EMBEDDING_PARAMS_ALL) == 0 else {
        throw GPTEmbeddingError(.invalidArgument, "options.\(field) = 0x\(String(mask, radix: 16)) has unknown bits: the parameters are bits 0 to 3 (GPT_EMBEDDING_PARAMS_ALL = 0xf)")
    }
    return Set(GPTEmbedding.Parameter.allCases.filter { mask & (1 << UInt32($0.rawValue)) != 0 })
}

/// The mask of a parameter set.
private func mask(_ set: Set<GPTEmbedding.Parameter>) -> UInt32 {
    set.reduce(0) { $0 | (1 << UInt32($1.rawValue)) }
}

extension AdamW {
    /// The options of a C struct, checked: its size first (before any other field is read),
    /// then the masks and the flag; the values are checked by the step.
    init(_ p: UnsafePointer<gpt_embedding_adamw_options>) throws(GPTEmbeddingError) {
        let size = Int(UnsafeRawPointer(p).load(as: UInt32.self))
        guard size == adamwOptionsSize else {
            throw GPTEmbeddingError(.versionMismatch, "options.struct_size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) knows \(adamwOptionsSize): fill the options with gpt_embedding_adamw_options_init")
        }
        let o = p.pointee
        guard o.lazy == 0 || o.lazy == 1 else {
            throw GPTEmbeddingError(.invalidArgument, "options.lazy = \(o.lazy) must be 0 or 1")
        }
        self.init(lr: o.lr, betas: (o.beta1, o.beta2), eps: o.eps, weightDecay: o.weight_decay,
                  decayed: try parameterSet(o.decay_params, "decay_params"),
                  parameters: try parameterSet(o.params, "params"), gradScale: o.grad_scale, lazy: o.lazy == 1)
    }
}

/// The parameter selected by a C `param` value.
private func parameter(_ param: Int32) throws(GPTEmbeddingError) -> GPTEmbedding.Parameter {
    guard let p = GPTEmbedding.Parameter(rawValue: param) else {
        throw GPTEmbeddingError(.invalidArgument, "unknown parameter selector \(param): expected 0 (token), 1 (position), 2 (layer norm weight) or 3 (layer norm bias)")
    }
    return p
}

@c @implementation
public func gpt_embedding_adamw_options_init(_ options: UnsafeMutablePointer<gpt_embedding_adamw_options>?, _ size: Int) -> Int32 {
    api("gpt_embedding_adamw_options_init") { () throws(GPTEmbeddingError) in
        let out = try required(options, "options")
        guard size == adamwOptionsSize else {
            throw GPTEmbeddingError(.versionMismatch, "size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) knows \(adamwOptionsSize) (sizeof(gpt_embedding_adamw_options))")
        }
        let d = AdamW()
        out.pointee = gpt_embedding_adamw_options(
            struct_size: UInt32(adamwOptionsSize), params: mask(d.parameters), lr: d.lr, beta1: d.betas.0,
            beta2: d.betas.1, eps: d.eps, weight_decay: d.weightDecay, grad_scale: d.gradScale,
            decay_params: mask(d.decayed), lazy: d.lazy ? 1 : 0)
    }
}

@c @implementation
public func gpt_embedding_adamw_step(_ layer: OpaquePointer?, _ options: UnsafePointer<gpt_embedding_adamw_options>?) -> Int32 {
    api("gpt_embedding_adamw_step") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        try layer.step(options.map { (o) throws(GPTEmbeddingError) in try AdamW(o) } ?? AdamW())
    }
}

@c @implementation
public func gpt_embedding_grad_norm_squared(_ layer: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
    api("gpt_embedding_grad_norm_squared") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        try required(out, "out").pointee = layer.gradNormSquared()
    }
}

@c @implementation
public func gpt_embedding_optimizer_state_data(_ layer: OpaquePointer?, _ param: Int32, _ kind: Int32,
                                               _ outData: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
                                               _ outLen: UnsafeMutablePointer<Int64>?) -> Int32 {
    outData?.pointee = nil
    return api("gpt_embedding_optimizer_state_data") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let data = try required(outData, "out_data"), len = try required(outLen, "out_len")
        guard let k = AdamWState.Kind(rawValue: kind) else {
            throw GPTEmbeddingError(.invalidArgument, "unknown state kind \(kind): expected 0 (exp_avg), 1 (exp_avg_sq) or 2 (master)")
        }
        let p = try parameter(param)
        let t = try layer.tensor(p)
        if k == .master && t.dtype == .float32 {
            throw GPTEmbeddingError(.invalidArgument, "\(t.name) is float32: it has no master weights (only bf16 and f16 tables do)")
        }
        let buffer = try layer.optimizerState(p).tensor(k)
        data.pointee = buffer?.baseAddress
        len.pointee = Int64(buffer?.count ?? 0)
    }
}

@c @implementation
public func gpt_embedding_optimizer_get_step(_ layer: OpaquePointer?, _ param: Int32, _ outStep: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_optimizer_get_step") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let out = try required(outStep, "out_step")
        out.pointee = try layer.tensor(parameter(param)).adamw?.step ?? 0
    }
}

@c @implementation
public func gpt_embedding_optimizer_set_step(_ layer: OpaquePointer?, _ param: Int32, _ step: Int64) -> Int32 {
    api("gpt_embedding_optimizer_set_step") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        guard step >= 0 else { throw GPTEmbeddingError(.invalidArgument, "step = \(step) must be >= 0") }
        try layer.optimizerState(parameter(param)).step = step
    }
}

@c @implementation
public func gpt_embedding_optimizer_reset(_ layer: OpaquePointer?) -> Int32 {
    api("gpt_embedding_optimizer_reset") { () throws(GPTEmbeddingError) in
        try HandleRegistry.layer(layer).resetOptimizer()
    }
}
