import CGPTEmbedding
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

// The CPU path of the kernels (Runtime/KernelDispatch.swift in the core).

/// The supported paths as a C string that lives forever.
nonisolated(unsafe) private let supportedCString: UnsafePointer<CChar>? =
    UnsafePointer(strdup(InstructionSet.supported.map(\.rawValue).joined(separator: ",")))

/// A static C string of a path's name.
private func name(_ isa: InstructionSet) -> UnsafePointer<CChar> {
    let text: StaticString = switch isa {
    case .baseline: "baseline"
    case .x86_64_v3: "x86-64-v3"
    }
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

@c @implementation
public func gpt_embedding_isa() -> UnsafePointer<CChar>? {
    var active: InstructionSet? = nil
    _ = api("gpt_embedding_isa") { () throws(GPTEmbeddingError) in active = try InstructionSet.active() }
    return active.map(name)
}

@c @implementation
public func gpt_embedding_isa_supported() -> UnsafePointer<CChar>? {
    supportedCString ?? name(.baseline)
}
