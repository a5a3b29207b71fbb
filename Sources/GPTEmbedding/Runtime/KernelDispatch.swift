import CKernelDispatch
import GPTEmbeddingKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A CPU level the kernels are compiled for (after simdjson's implementations and
/// PyTorch's `ATEN_CPU_CAPABILITY`). Raw values are the names `GPT_EMBEDDING_ISA` takes.
public enum InstructionSet: String, Sendable, CaseIterable, CustomStringConvertible {
    /// x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE (Intel Haswell, AMD Excavator and
    /// newer). Present in the shared library, the tool and the tests; a Swift package build
    /// (no unsafe flags) has the baseline alone.
    case x86_64_v3 = "x86-64-v3"
    /// The architecture's baseline (SSE2 on x86-64): runs on every CPU.
    case baseline

    public var description: String { rawValue }

    /// The environment variable that forces a path: `baseline`, `x86-64-v3`, or `auto`
    /// (the default: the best this CPU supports).
    public static let environmentVariable = "GPT_EMBEDDING_ISA"

    /// The paths this build contains and this CPU (and its operating system) can run, best
    /// first. Always ends with `.baseline`.
    public static let supported: [InstructionSet] = allCases.filter { Kernels.load($0) != nil }

    /// The path every layer uses, chosen once at first use: `GPT_EMBEDDING_ISA` when set,
    /// else the best of ``supported``. Throws (`unsupportedCPU`) when the variable names an
    /// unknown path or one this CPU or build cannot run; layers cannot be created then.
    public static func active() throws(GPTEmbeddingError) -> InstructionSet {
        try Kernels.active().isa
    }
}

/// The kernels of one instruction set, from its table of C function pointers
/// (`Sources/CKernelDispatch/include/kernel_interface.h`).
struct Kernels: @unchecked Sendable {
    let isa: InstructionSet
    let forwardRows: @convention(c) (UnsafePointer<gpte_kernel_args>?, Int64, Int64, UnsafeMutablePointer<Float>?) -> Void
    let scatterRows: @convention(c) (UnsafePointer<gpte_kernel_args>?, Int64, Int64, UnsafeRawPointer?, Int32, Int64, Int32,
                                     Int64, Int64) -> Void
    let layerNormBackwardRows: @convention(c) (UnsafePointer<gpte_kernel_args>?, Int64, Int64, UnsafeMutablePointer<Float>?,
                                               UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
                                               UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) -> Void
    let addColumns: @convention(c) (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, Int64, Int64) -> Void
    let fillNormal: @convention(c) (UnsafeMutableRawPointer?, Int32, Int64, Int64, Float, UInt64) -> Void
    let convert: @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeRawPointer?, Int32, Int64) -> Void
    let adamwRows: @convention(c) (UnsafePointer<gpte_adamw_args>?, Int64, Int64) -> Void
    let sumSquaresRows: @convention(c) (UnsafePointer<Float>?, Int64, UnsafePointer<Int32>?, Int64, Int64, UnsafeMutablePointer<Double>?) -> Void
    let dequantizeRow: @convention(c) (Int32, UnsafeRawPointer?, Int64, UnsafeMutablePointer<Float>?) -> Int32
    let scatterOwnedRows: @convention(c) (UnsafePointer<gpte_kernel_args>?, UnsafePointer<UInt8>?, Int32, UnsafeRawPointer?,
                                          Int32, Int32, Int64, Int64) -> Void

    /// `nil` when the table lacks an entry (it never does).
    private init?(_ isa: InstructionSet, _ t: gpte_kernel_table) {
        guard let f = t.forward_rows, let s = t.scatter_rows, let l = t.layer_norm_backward_rows,
              let a = t.add_columns, let n = t.fill_normal, let c = t.convert,
              let adam = t.adamw_rows, let sq = t.sum_squares_rows,
              let dq = t.dequantize_row, let so = t.scatter_owned_rows else { return nil }
        self.isa = isa
        forwardRows = f
        scatterRows = s
        layerNormBackwardRows = l
        addColumns = a
        fillNormal = n
        convert = c
        adamwRows = adam
        sumSquaresRows = sq
        dequantizeRow = dq
        scatterOwnedRows = so
    }

    /// The kernels of `isa`, or `nil` when this build lacks them or this CPU cannot run them.
    static func load(_ isa: InstructionSet) -> Kernels? {
        var table = gpte_kernel_table()
        switch isa {
        case .baseline:
            gpte_kernels_baseline(&table)
        case .x86_64_v3:
            guard gpte_cpu_supports_x86_64_v3() != 0, gpte_kernels_x86_64_v3_linked(&table) != 0 else { return nil }
        }
        return Kernels(isa, table)
    }

    /// The choice made at first use (a `static let` is initialised once, thread-safely).
    private static let selection: Result<Kernels, GPTEmbeddingError> = select(environment: environmentValue())

    /// The kernels every layer uses; see ``InstructionSet/active()``.
    static func active() throws(GPTEmbeddingError) -> Kernels { try selection.get() }

    private static func environmentValue() -> String? {
        getenv(InstructionSet.environmentVariable).map { String(cString: $0) }
    }

    /// The kernels named by `value` (the environment variable's value), or the best.
    static func select(environment value: String?) -> Result<Kernels, GPTEmbeddingError> {
        let supported = InstructionSet.supported.map(\.rawValue).joined(separator: ", ")
        let name = InstructionSet.environmentVariable
        guard let value, !value.isEmpty, value != "auto" else {
            if let best = InstructionSet.supported.lazy.compactMap(load).first { return .success(best) }
            return .failure(GPTEmbeddingError(.unsupportedCPU, "no kernel path loads (the baseline table is incomplete)"))
        }
        guard let isa = InstructionSet(rawValue: value) else {
            return .failure(GPTEmbeddingError(.unsupportedCPU, "\(name)=\(value) is not a kernel path: use one of \(InstructionSet.allCases.map(\.rawValue).joined(separator: ", ")) or auto; this CPU supports \(supported)"))
        }
        guard let kernels = load(isa) else {
            let why = gpte_cpu_supports_x86_64_v3() == 0
                ? "this CPU or its operating system lacks AVX2, FMA, BMI2, F16C, LZCNT, MOVBE or YMM state"
                : "this build has the baseline kernels only (a Swift package build carries no CPU flags; the shared library has both)"
            return .failure(GPTEmbeddingError(.unsupportedCPU, "\(name)=\(value) cannot run here: \(why); this CPU supports \(supported)"))
        }
        return .success(kernels)
    }
}
