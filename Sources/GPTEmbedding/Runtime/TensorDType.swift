/// The element type of a table or an output: float32, bfloat16 or float16. Raw values are
/// the C header's `GPT_EMBEDDING_DTYPE_*`.
///
/// Arithmetic is always float32: bf16 and f16 rows are widened exactly as they are read, and
/// results are rounded once, to nearest even, when they are stored in a 16-bit type.
public enum TensorDType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    /// IEEE binary32.
    case float32 = 0
    /// bfloat16: float32's sign and exponent with 7 mantissa bits (the format of most model
    /// checkpoints).
    case bfloat16 = 1
    /// IEEE binary16.
    case float16 = 2

    /// Bytes of one element.
    public var byteCount: Int { self == .float32 ? 4 : 2 }

    /// The safetensors name: `F32`, `BF16`, `F16`.
    public var safetensorsName: String {
        switch self {
        case .float32: "F32"
        case .bfloat16: "BF16"
        case .float16: "F16"
        }
    }

    /// The type of a safetensors dtype name, or `nil`.
    public init?(safetensorsName name: String) {
        guard let t = Self.allCases.first(where: { $0.safetensorsName == name }) else { return nil }
        self = t
    }

    /// `float32`, `bfloat16`, `float16` (the names numpy, ml_dtypes and PyTorch use).
    public var description: String {
        switch self {
        case .float32: "float32"
        case .bfloat16: "bfloat16"
        case .float16: "float16"
        }
    }
}
