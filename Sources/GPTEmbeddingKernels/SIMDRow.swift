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
let prefetchDistance = 4

/// Asks for every cache line of `count` floats at `p`, to be read soon.
@inline(__always)
func prefetchRow(_ p: UnsafePointer<Float>, _ count: Int) {
    var c = 0
    while c < count { gpte_prefetch(p + c); c &+= 16 }
}

/// A way to store a row eight floats at a time (`GPTE_STORE_*`), as a type: a loop generic
/// over it is compiled once per store kind, with no branch on the kind inside (a run-time
/// switch per store kept the compiler from using whole 32-byte vectors in the loop). A row
/// is written by one value: ``put(_:_:)`` for consecutive groups of eight, then ``finish()``.
protocol RowStore {
    init()
    mutating func put(_ v: Vec, _ p: UnsafeMutablePointer<Float>)
    mutating func finish()
}

/// `GPTE_STORE_CACHED`: normal stores; the rows stay in cache for whoever reads them next.
struct CachedStore: RowStore {
    @inline(__always) init() {}
    @inline(__always) mutating func put(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { store(v, p) }
    @inline(__always) mutating func finish() {}
}

/// `GPTE_STORE_STREAM16`: streaming stores of 16 bytes (rows 16-byte aligned).
struct Stream16Store: RowStore {
    @inline(__always) init() {}
    @inline(__always) mutating func put(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
        gpte_stream_store4(p, v.lowHalf)
        gpte_stream_store4(p + 4, v.highHalf)
    }
    @inline(__always) mutating func finish() {}
}

/// `GPTE_STORE_STREAM32`: streaming stores of 32 bytes (rows 32-byte aligned): measured
/// faster than pairs of 16-byte ones on this project's machines.
struct Stream32Store: RowStore {
    @inline(__always) init() {}
    @inline(__always) mutating func put(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { gpte_stream_store8(p, v) }
    @inline(__always) mutating func finish() {}
}

/// `GPTE_STORE_STREAM32_SHIFTED`: 32-byte streaming stores for rows that start 16 bytes
/// past a 32-byte boundary (numpy's arrays are only 16-byte aligned): the row's first four
/// floats go out in a 16-byte store, then each 32-byte store joins the previous group's
/// high half to this group's low half, and ``finish()`` writes the last four floats.
struct Stream32ShiftedStore: RowStore {
    private var carry = SIMD4<Float>()
    private var tail: UnsafeMutablePointer<Float>? = nil

    @inline(__always) init() {}

    @inline(__always) mutating func put(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
        if tail == nil {
            gpte_stream_store4(p, v.lowHalf)
        } else {
            gpte_stream_store8(p - 4, Vec(lowHalf: carry, highHalf: v.lowHalf))
        }
        carry = v.highHalf
        tail = p + 4
    }

    @inline(__always) mutating func finish() {
        if let tail { gpte_stream_store4(tail, carry) }
    }
}
