import CMemoryHints

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

/// The sum of the eight lanes in a fixed order, the same on every CPU path: halves first
/// (as a 256-bit register splits into two 128-bit ones), then again, then the last pair.
/// (The standard library's `sum()` leaves the order to the compiler.)
@inline(__always)
func hsum(_ v: Vec) -> Float {
    let q = v.lowHalf + v.highHalf
    let h = q.lowHalf + q.highHalf
    return h[0] + h[1]
}

/// The dropout keep-masks of one row, eight columns at a time from column `c0` on: the
/// vector form of ``CounterHash/keep(rowKey:column:threshold:)`` (same hash, same result).
/// The hash input of each lane advances by a constant, so a step costs the mixing only.
struct MaskStream {
    private var input: SIMD8<UInt32>
    private let threshold: SIMD8<UInt32>

    @inline(__always)
    init(threshold t: UInt32, rowKey: UInt32, column c0: Int) {
        let lanes = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7) &+ UInt32(truncatingIfNeeded: c0)
        input = SIMD8<UInt32>(repeating: rowKey) &+ lanes &* CounterHash.columnStride
        threshold = SIMD8<UInt32>(repeating: t)
    }

    /// Whether each of the next eight columns is kept.
    @inline(__always)
    mutating func next() -> SIMDMask<SIMD8<Int32>> {
        var h = input
        input &+= SIMD8<UInt32>(repeating: 8 &* CounterHash.columnStride)
        h ^= h &>> 16
        h &*= 0x85EB_CA6B
        h ^= h &>> 13
        h &*= 0xC2B2_AE35
        h ^= h &>> 16
        return h .>= threshold
    }
}

// MARK: - Cache hints

/// Tokens between the row a kernel works on and the row it asks the memory system for.
/// Rows start at random places of a table far larger than the caches, so no hardware
/// prefetcher can guess them; asking a few tokens ahead keeps that many misses in flight.
/// The kernels ask for one line per 16 columns inside their row loops: a whole row asked
/// for at once fills the core's miss buffers and stalls it (measured 10-20 % slower).
/// Token rows that are read (the forwards, the layer-norm backward's x and dout) are asked
/// into L2 only (`gpte_prefetch_l2`): the L1's two dozen miss buffers filled even so, and the
/// forward and layer-norm backward stalled on the prefetch instructions (`perf annotate`);
/// into L2 they ran 4-15 % faster. Rows to be written (the scatter's gradient rows, the
/// lazy AdamW step's p, m, v) went the same way on 2026-12-04: into L2 the backwards ran
/// 0.78-0.90x as long and the lazy step 0.80x (their comments). With the
/// L2's larger share of misses in flight, 8 rows ahead beat 4 by 2-5 % at 8 x 1024 (forwards,
/// backwards) and changed nothing at 64 x 128; with L1 prefetches 8 had changed nothing.
let prefetchDistance = 8

/// Asks for every cache line of the `bytes` bytes at `p`, to be read soon.
@inline(__always)
func prefetchRow(_ p: UnsafeRawPointer, _ bytes: Int) {
    var c = 0
    while c < bytes { gpte_prefetch(p + c); c &+= 64 }
}

/// How a kernel writes one output row (`GPTE_STORE_*` and the output dtype), as a type: a
/// loop generic over it is compiled once per kind, with no branch on the kind inside (a
/// run-time switch per store kept the compiler from using whole 32-byte vectors in the
/// loop). One value writes a worker's rows in order: for each row ``next(row:)`` (the first
/// row comes with `init`), ``put(_:column:)`` for consecutive groups of eight columns from
/// column 0, ``put1(_:column:)`` for the tail columns, ``endRow()``; at the end ``finish()``.
protocol RowStore {
    /// Bytes of one output element.
    static var elementBytes: Int { get }
    init(row: UnsafeMutableRawPointer)
    /// Moves on to the next row of a worker's range (the row after the previous one).
    mutating func next(row: UnsafeMutableRawPointer)
    mutating func put(_ v: Vec, column c: Int)
    mutating func put1(_ x: Float, column c: Int)
    /// The end of a row.
    mutating func endRow()
    /// The end of the worker's range.
    mutating func finish()
}

extension RowStore {
    @inline(__always) mutating func next(row: UnsafeMutableRawPointer) { self = Self(row: row) }
    @inline(__always) mutating func endRow() {}
    @inline(__always) mutating func finish() {}
}

/// Float32 output, normal stores: the rows stay in cache for whoever reads them next.
struct CachedStore: RowStore {
    static var elementBytes: Int { 4 }
    private let row: UnsafeMutablePointer<Float>
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: Float.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) { store(v, row + c) }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = x }
}

/// Float32 output, streaming stores of 16 bytes (rows 16-byte aligned).
struct Stream16Store: RowStore {
    static var elementBytes: Int { 4 }
    private let row: UnsafeMutablePointer<Float>
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: Float.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) {
        gpte_stream_store4(row + c, v.lowHalf)
        gpte_stream_store4(row + c + 4, v.highHalf)
    }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = x }
}

/// Float32 output, streaming stores of 32 bytes (rows 32-byte aligned): measured faster
/// than pairs of 16-byte ones on this project's machines.
struct Stream32Store: RowStore {
    static var elementBytes: Int { 4 }
    private let row: UnsafeMutablePointer<Float>
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: Float.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) { gpte_stream_store8(row + c, v) }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = x }
}

/// Float32 output, 32-byte streaming stores for rows that start 16 bytes past a 32-byte
/// boundary (numpy's arrays are only 16-byte aligned): each 32-byte store joins the previous
/// group's high half to this group's low half. The carry runs on across the worker's
/// consecutive rows, which are contiguous in the output, so only the first and the last four
/// floats of the worker's whole range go out in 16-byte stores (``finish()``): no cache line
/// in between is written in part.
struct Stream32ShiftedStore: RowStore {
    static var elementBytes: Int { 4 }
    private var row: UnsafeMutablePointer<Float>
    private var carry = SIMD4<Float>()
    /// Where the carried four floats go, or `nil` before the first store.
    private var tail: UnsafeMutablePointer<Float>? = nil

    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: Float.self) }

    @inline(__always) mutating func next(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: Float.self) }

    @inline(__always) mutating func put(_ v: Vec, column c: Int) {
        if let tail {
            gpte_stream_store8(tail, Vec(lowHalf: carry, highHalf: v.lowHalf))
        } else {
            gpte_stream_store4(row + c, v.lowHalf)
        }
        carry = v.highHalf
        tail = row + c + 4
    }

    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = x }

    /// Rows end on a whole group (dim % 8 == 0): the carry waits for the next row.
    @inline(__always) mutating func endRow() {}

    @inline(__always) mutating func finish() {
        if let tail { gpte_stream_store4(tail, carry) }
        tail = nil
    }
}

/// Eight 16-bit values as the four floats' worth of bytes a 16-byte store takes.
@inline(__always)
func asFloat4(_ h: U16x8) -> SIMD4<Float> { unsafeBitCast(h, to: SIMD4<Float>.self) }

/// Stores eight 16-bit values at `p`, any alignment.
@inline(__always)
func store16(_ h: U16x8, _ p: UnsafeMutableRawPointer) { p.storeBytes(of: h, as: U16x8.self) }

/// bf16 output, normal stores, rounded to nearest even.
struct BF16Store: RowStore {
    static var elementBytes: Int { 2 }
    private let row: UnsafeMutablePointer<UInt16>
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: UInt16.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) { store16(narrowBF16(v), UnsafeMutableRawPointer(row + c)) }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = narrowBF16(x) }
}

/// bf16 output, 16-byte streaming stores (rows 16-byte aligned, dim % 8 == 0).
struct BF16StreamStore: RowStore {
    static var elementBytes: Int { 2 }
    private let row: UnsafeMutablePointer<UInt16>
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: UInt16.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) {
        gpte_stream_store4(UnsafeMutableRawPointer(row + c).assumingMemoryBound(to: Float.self), asFloat4(narrowBF16(v)))
    }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = narrowBF16(x) }
}

/// 16-bit output, 32-byte streaming stores (rows 32-byte aligned, dim % 16 == 0): the groups
/// of eight columns come in pairs (columns c and c + 8, c % 16 == 0), rounded and written
/// together, one whole 32-byte half of a cache line per store instead of two 16-byte pieces.
struct Pair16StreamStore<Format: SixteenBitFormat>: RowStore {
    static var elementBytes: Int { 2 }
    private let row: UnsafeMutablePointer<UInt16>
    /// The group of columns `c - 8 ..< c` waiting for its partner.
    private var first = Vec()
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: UInt16.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) {
        if c & 8 == 0 {
            first = v
        } else {
            gpte_stream_store8(UnsafeMutableRawPointer(row + (c &- 8)).assumingMemoryBound(to: Float.self),
                               unsafeBitCast(Format.narrow(first, v), to: Vec.self))
        }
    }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = Format.narrow(x) }
}

/// bf16 or f16, for ``Pair16StreamStore``.
protocol SixteenBitFormat {
    static func narrow(_ a: Vec, _ b: Vec) -> U16x16
    static func narrow(_ x: Float) -> UInt16
}

enum BF16Format: SixteenBitFormat {
    @inline(__always) static func narrow(_ a: Vec, _ b: Vec) -> U16x16 { narrowBF16(a, b) }
    @inline(__always) static func narrow(_ x: Float) -> UInt16 { narrowBF16(x) }
}

enum F16Format: SixteenBitFormat {
    @inline(__always) static func narrow(_ a: Vec, _ b: Vec) -> U16x16 { narrowF16(a, b) }
    @inline(__always) static func narrow(_ x: Float) -> UInt16 { narrowF16(x) }
}

/// f16 on a thread whose MXCSR.FTZ is clear (``narrowF16WithoutFTZ(_:)``).
enum F16FormatWithoutFTZ: SixteenBitFormat {
    @inline(__always) static func narrow(_ a: Vec, _ b: Vec) -> U16x16 { narrowF16WithoutFTZ(a, b) }
    @inline(__always) static func narrow(_ x: Float) -> UInt16 { narrowF16(x) }
}

/// f16 output, normal stores, rounded to nearest even.
struct F16Store: RowStore {
    static var elementBytes: Int { 2 }
    private let row: UnsafeMutablePointer<UInt16>
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: UInt16.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) { store16(narrowF16(v), UnsafeMutableRawPointer(row + c)) }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = narrowF16(x) }
}

/// f16 output, 16-byte streaming stores (rows 16-byte aligned, dim % 8 == 0).
struct F16StreamStore: RowStore {
    static var elementBytes: Int { 2 }
    private let row: UnsafeMutablePointer<UInt16>
    @inline(__always) init(row: UnsafeMutableRawPointer) { self.row = row.assumingMemoryBound(to: UInt16.self) }
    @inline(__always) mutating func put(_ v: Vec, column c: Int) {
        gpte_stream_store4(UnsafeMutableRawPointer(row + c).assumingMemoryBound(to: Float.self), asFloat4(narrowF16(v)))
    }
    @inline(__always) mutating func put1(_ x: Float, column c: Int) { row[c] = narrowF16(x) }
}

// MARK: - Table elements

/// The element type of a table the kernels read (`GPTE_DTYPE_*`), as a type: rows are
/// widened to float32 eight elements at a time, exactly.
protocol RowElement {
    /// Bytes of one element.
    static var bytes: Int { get }
    static func load8(_ p: UnsafeRawPointer, _ c: Int) -> Vec
    static func load1(_ p: UnsafeRawPointer, _ c: Int) -> Float
}

/// float32 rows.
enum F32Elements: RowElement {
    static var bytes: Int { 4 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ c: Int) -> Vec { p.loadUnaligned(fromByteOffset: 4 * c, as: Vec.self) }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ c: Int) -> Float { p.loadUnaligned(fromByteOffset: 4 * c, as: Float.self) }
}

/// bf16 rows.
enum BF16Elements: RowElement {
    static var bytes: Int { 2 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ c: Int) -> Vec {
        widenBF16(p.loadUnaligned(fromByteOffset: 2 * c, as: U16x8.self))
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ c: Int) -> Float {
        widenBF16(p.loadUnaligned(fromByteOffset: 2 * c, as: UInt16.self))
    }
}

/// f16 rows, read on a thread whose MXCSR.DAZ is clear (see ``widenF16WithoutDAZ(_:)``).
enum F16ElementsWithoutDAZ: RowElement {
    static var bytes: Int { 2 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ c: Int) -> Vec {
        widenF16WithoutDAZ(p.loadUnaligned(fromByteOffset: 2 * c, as: U16x8.self))
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ c: Int) -> Float {
        widenF16(p.loadUnaligned(fromByteOffset: 2 * c, as: UInt16.self))
    }
}

/// f16 rows.
enum F16Elements: RowElement {
    static var bytes: Int { 2 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ c: Int) -> Vec {
        widenF16(p.loadUnaligned(fromByteOffset: 2 * c, as: U16x8.self))
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ c: Int) -> Float {
        widenF16(p.loadUnaligned(fromByteOffset: 2 * c, as: UInt16.self))
    }
}
