/// Eight-float vector loads and stores at any alignment, for the row loops of the kernels.
/// Written out by hand because the compiler cannot vectorise loops over pointers that may
/// alias, nor reorder strict-IEEE reductions.
typealias Vec = SIMD8<Float>

@inline(__always)
func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

@inline(__always)
func load(_ p: UnsafeMutablePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

@inline(__always)
func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

/// The dropout keep-masks of one row, eight columns at a time from column `c0` on: the
/// vector form of ``DropoutMask/keep(rowKey:column:)`` (same hash, same result). The hash
/// input of each lane advances by a constant, so a step costs the mixing only.
struct MaskStream {
    private var input: SIMD8<UInt32>
    private let threshold: SIMD8<UInt32>

    @inline(__always)
    init(_ mask: DropoutMask, rowKey: UInt32, column c0: Int) {
        let lanes = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7) &+ UInt32(truncatingIfNeeded: c0)
        input = SIMD8<UInt32>(repeating: rowKey) &+ lanes &* DropoutMask.columnStride
        threshold = SIMD8<UInt32>(repeating: mask.threshold)
    }

    /// Whether each of the next eight columns is kept.
    @inline(__always)
    mutating func next() -> SIMDMask<SIMD8<Int32>> {
        var h = input
        input &+= SIMD8<UInt32>(repeating: 8 &* DropoutMask.columnStride)
        h ^= h &>> 16
        h &*= 0x85EB_CA6B
        h ^= h &>> 13
        h &*= 0xC2B2_AE35
        h ^= h &>> 16
        return h .>= threshold
    }
}
