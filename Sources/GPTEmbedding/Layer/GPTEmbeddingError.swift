/// An error from the embedding layer: a stable code and a message that names the bad
/// value and where it is.
///
/// The codes have the same values as the C header's `GPT_EMBEDDING_ERROR_*` constants, so
/// the C shims pass them through unchanged.
public struct GPTEmbeddingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Raw values are the C status codes and never change.
    public enum Code: Int32, Sendable, CaseIterable {
        /// A required pointer was NULL (C API only).
        case nullPointer = 1
        /// A size, flag or selector is invalid.
        case invalidArgument = 2
        /// A configuration field is invalid.
        case invalidConfig = 3
        /// A token id or position lies outside its table.
        case outOfRange = 4
        /// A size computation overflows.
        case sizeOverflow = 5
        /// An output buffer is too short.
        case bufferTooSmall = 6
        /// The call is not valid in the layer's current state.
        case badState = 7
        /// An allocation failed.
        case outOfMemory = 8
        /// A handle is not live (C API only).
        case invalidHandle = 9
        /// A configuration struct of an unknown size (C API only).
        case versionMismatch = 10
        /// A file could not be read or written.
        case io = 11
        /// A file is malformed.
        case badFile = 12
        /// The kernel path named by `GPT_EMBEDDING_ISA` is unknown, or this CPU (or this
        /// build) cannot run it.
        case unsupportedCPU = 13
    }

    /// The kind of failure.
    public let code: Code
    /// A readable message, e.g. `token id 50300 at [1, 7] is out of range [0, 50257)`.
    public let message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
