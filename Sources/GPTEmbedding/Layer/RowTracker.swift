import CMemoryHints
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The set of table rows that backward has written since the last `zeroGrad`.
///
/// `zeroGrad` then clears only those rows: after one 8 x 1024 batch about 7,600 of GPT-2's
/// 50,257 token rows are non-zero, and zeroing the whole 154 MB gradient would cost more
/// than the backward itself. An optimizer can read the list to update only those rows.
final class RowTracker: @unchecked Sendable {
    /// Rows of the table tracked.
    let rows: Int
    private var seen: UnsafeMutablePointer<UInt8>?
    private var list: UnsafeMutablePointer<Int32>?
    /// Number of distinct rows recorded.
    private(set) var count = 0

    init(rows: Int) { self.rows = rows }

    deinit {
        free(seen)
        free(list)
    }

    /// Allocates the tracking memory (5 bytes per row) on first use.
    func prepare() throws(GPTEmbeddingError) {
        if seen != nil { return }
        let s = calloc(max(rows, 1), 1), l = malloc(max(rows, 1) * MemoryLayout<Int32>.stride)
        guard let s, let l else {
            free(s)
            free(l)
            throw GPTEmbeddingError(.outOfMemory, "cannot allocate \(rows * 5) bytes to track gradient rows")
        }
        seen = s.assumingMemoryBound(to: UInt8.self)
        list = l.assumingMemoryBound(to: Int32.self)
    }

    /// Records `row` (in `[0, rows)`); `prepare()` must have succeeded.
    @inline(__always)
    func record(_ row: Int32) {
        guard let seen, let list, seen[Int(row)] == 0 else { return }
        seen[Int(row)] = 1
        list[count] = row
        count += 1
    }

    /// One byte per row, 1 for a recorded row (`nil` before `prepare`).
    var rowFlags: UnsafePointer<UInt8>? { seen.map { UnsafePointer($0) } }

    /// The recorded rows in the order first recorded (token order: the same for any
    /// thread count); valid until the next `record` or `reset`.
    var rowList: UnsafePointer<Int32>? { list.map { UnsafePointer($0) } }

    /// The recorded rows, ascending.
    var sortedRows: [Int32] {
        guard let list else { return [] }
        return UnsafeBufferPointer(start: list, count: count).sorted()
    }

    /// Zeroes the recorded rows of `table [rows, cols]`, in parallel for large sets.
    ///
    /// A set of `threshold` floats or more (``streamingZeroFloats``) is written around the
    /// caches: it would not stay there for the next backward, and a normal store first
    /// reads each line it writes (read-for-ownership), doubling the traffic. A smaller set
    /// is written normally and stays in cache for the next backward, which adds into it.
    ///
    /// The rows are split over the workers as the lazy AdamW step splits this list (parts
    /// of 28 bytes per element), so each worker clears the rows it updated in the last step,
    /// whose lines its own cache holds. A split of its own would clear another core's lines:
    /// where the host has put the two vCPUs on different dies, each of those waits on a
    /// cross-die round trip (the 1 x 1024 zero_grad, 6 MB, on one thread: 0.21 ms near,
    /// 1.3-1.4 ms far).
    func zeroRows(of table: UnsafeMutablePointer<Float>, cols: Int, pool: WorkerPool, threshold: Int = streamingZeroFloats) {
        guard let list else { return }
        let rowList = SendableConstPointer(UnsafePointer(list)), t = SendablePointer(table)
        let streams = count * cols >= threshold
        let grain = WorkerPool.memoryGrain(bytesPerItem: (streams ? 4 : 28) * cols)
        pool.parallelFor(count: count, grain: grain) { _, range in
            for i in range { StreamingStore.zero(t.pointer + Int(rowList.pointer[i]) * cols, cols, streaming: streams) }
            if streams { gpte_stream_fence() }
        }
    }

    /// Forgets every row.
    func reset() {
        guard let seen, let list else { return }
        for i in 0..<count { seen[Int(list[i])] = 0 }
        count = 0
    }

    /// Bytes owned.
    var byteCount: Int { seen == nil ? 0 : rows * 5 }
}
