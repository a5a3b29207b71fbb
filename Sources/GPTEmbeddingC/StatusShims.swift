import CGPTEmbedding
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

// Version, status names and the last-error message.

/// The version string from the header's macro, as a C string that lives forever.
nonisolated(unsafe) private let versionCString: UnsafePointer<CChar> = UnsafePointer(strdup(GPT_EMBEDDING_VERSION_STRING)!)

@c @implementation
public func gpt_embedding_version_number() -> UInt32 {
    UInt32(GPT_EMBEDDING_VERSION_MAJOR * 10000 + GPT_EMBEDDING_VERSION_MINOR * 100 + GPT_EMBEDDING_VERSION_PATCH)
}

@c @implementation
public func gpt_embedding_version_string() -> UnsafePointer<CChar>? {
    versionCString
}

@c @implementation
public func gpt_embedding_status_string(_ status: Int32) -> UnsafePointer<CChar>? {
    let text: StaticString = switch status {
    case 0: "GPT_EMBEDDING_OK: success"
    case 1: "GPT_EMBEDDING_ERROR_NULL_POINTER: a required pointer argument was NULL"
    case 2: "GPT_EMBEDDING_ERROR_INVALID_ARGUMENT: a size, flag or selector is invalid"
    case 3: "GPT_EMBEDDING_ERROR_INVALID_CONFIG: a configuration field is invalid"
    case 4: "GPT_EMBEDDING_ERROR_OUT_OF_RANGE: a token id or position is outside its table"
    case 5: "GPT_EMBEDDING_ERROR_SIZE_OVERFLOW: a size computation overflows"
    case 6: "GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL: an output buffer is too short"
    case 7: "GPT_EMBEDDING_ERROR_BAD_STATE: the call is not valid in the layer's current state"
    case 8: "GPT_EMBEDDING_ERROR_OUT_OF_MEMORY: an allocation failed"
    case 9: "GPT_EMBEDDING_ERROR_INVALID_HANDLE: not a live layer handle"
    case 10: "GPT_EMBEDDING_ERROR_VERSION_MISMATCH: config.struct_size is not one this library knows"
    case 11: "GPT_EMBEDDING_ERROR_IO: a file could not be read or written"
    case 12: "GPT_EMBEDDING_ERROR_BAD_FILE: a file is malformed"
    case 13: "GPT_EMBEDDING_ERROR_UNSUPPORTED_CPU: GPT_EMBEDDING_ISA names an unknown kernel path or one this CPU cannot run"
    default: "unknown gpt_embedding status code"
    }
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

@c @implementation
public func gpt_embedding_last_error() -> UnsafePointer<CChar>? {
    LastError.current
}
