import CKernelDispatch

/// This module's kernels as a table of C function pointers: the only way the layer reaches
/// them. The module is compiled twice from the same files (Package.swift): as
/// `GPTEmbeddingKernels` for the x86-64 baseline, exported as `gpte_kernels_baseline`, and
/// as `GPTEmbeddingKernelsV3` with `-target-cpu x86-64-v3` and `GPTE_KERNELS_X86_64_V3`
/// defined, exported as `gpte_kernels_x86_64_v3`. Everything below the table is internal
/// and `@inline(__always)`, so no code of one copy can stand in for the other's.
@inline(__always)
private func makeTable() -> gpte_kernel_table {
    gpte_kernel_table(
        forward_rows: { a, r0, r1, spill in forwardRows(a!, Int(r0), Int(r1), spill) },
        scatter_rows: { a, r0, r1, dy, dyType, first, masked, c0, c1 in
            scatterRows(a!, Int(r0), Int(r1), dy!, dyType, Int(first), masked != 0, Int(c0), Int(c1))
        },
        layer_norm_backward_rows: { a, r0, r1, dx, sdx, sdy, xhat, dy in
            layerNormBackwardRows(a!, Int(r0), Int(r1), dx!, sdx!, sdy!, xhat!, dy!)
        },
        add_columns: { dst, src, c0, c1 in addColumns(dst!, src!, Int(c0), Int(c1)) },
        fill_normal: { out, dtype, begin, end, std, key in
            fillNormal(out!, dtype: dtype, from: Int(begin), to: Int(end), std: std, key: key)
        },
        convert: { dst, dstType, src, srcType, count in convert(dst!, dstType, src!, srcType, Int(count)) },
        adamw_rows: { a, i0, i1 in adamwRows(a!, Int(i0), Int(i1)) },
        sum_squares_rows: { x, cols, rows, i0, i1, out in sumSquaresRows(x!, Int(cols), rows, Int(i0), Int(i1), out!) },
        dequantize_row: { type, row, cols, dst in dequantizeRow(type, row!, Int(cols), dst!) ? 1 : 0 },
        scatter_owned_rows: { a, owners, worker, dy, dyType, masked, c0, c1 in
            scatterOwnedRows(a!, owners!, Int(worker), dy!, dyType, masked != 0, Int(c0), Int(c1))
        }
    )
}

#if GPTE_KERNELS_X86_64_V3
/// Fills `out` with the x86-64-v3 kernels.
@_cdecl("gpte_kernels_x86_64_v3")
public func kernelTable(_ out: UnsafeMutablePointer<gpte_kernel_table>) { out.pointee = makeTable() }
#else
/// Fills `out` with the baseline kernels.
@_cdecl("gpte_kernels_baseline")
public func kernelTable(_ out: UnsafeMutablePointer<gpte_kernel_table>) { out.pointee = makeTable() }
#endif
