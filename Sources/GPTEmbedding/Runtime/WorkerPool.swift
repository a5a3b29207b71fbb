#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pointer that may cross into worker closures. The kernels guarantee that workers
/// write disjoint ranges.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}

/// Splits loops over a fixed number of threads. Work smaller than `grain` items per
/// thread runs on the calling thread, so small calls (a decode step) pay no hand-off.
///
/// Partitioning is static: thread `i` of `n` always gets the same contiguous range, and
/// kernels are written so that results do not depend on `n` at all.
struct WorkerPool: Sendable {
    /// Threads to use, at least 1.
    let threads: Int

    init(threads: Int) { self.threads = max(1, threads) }

    /// Bytes of memory traffic a part of a memory-bound loop must move to be worth handing
    /// to another thread. Waking a parked worker takes 25-50 µs on this project's machines
    /// (`perf sched`; far more when the host is loaded), while one thread moves 4 MiB in
    /// about 0.15 ms. Below this a call runs on the calling thread alone: a decode step pays
    /// no hand-off. (8 MiB until 2026-12-04: then a 1 x 1024 backward, 12.6 MB, ran on one
    /// thread in 0.29-0.33 ms; split in two it takes 0.20-0.22 ms.)
    static let minBytesPerPart = 4 << 20

    /// Elements of compute-heavy row work (layer norm and the dropout hash, about 0.1 ms
    /// for this many) a part must have to be worth handing to another thread.
    static let minComputePerPart = 1 << 18

    /// The grain (items per part) of a memory-bound loop moving `bytesPerItem` per item.
    static func memoryGrain(bytesPerItem: Int) -> Int { max(1, minBytesPerPart / max(1, bytesPerItem)) }

    /// The grain (items per part) of a compute-heavy loop over items of `elementsPerItem`.
    static func computeGrain(elementsPerItem: Int) -> Int { max(1, minComputePerPart / max(1, elementsPerItem)) }

    /// The number of online cores.
    static let coreCount: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// How many parts `count` items split into, given at least `grain` items per part.
    func parts(count: Int, grain: Int) -> Int {
        max(1, min(threads, count / max(grain, 1)))
    }

    /// Calls `body(part, range)` on `parts(count:grain:)` contiguous sub-ranges covering
    /// `0..<count`, in parallel when there is more than one part.
    func parallelFor(count: Int, grain: Int, _ body: @Sendable (_ part: Int, _ rows: Range<Int>) -> Void) {
        guard count > 0 else { return }
        let n = parts(count: count, grain: grain)
        run(parts: n) { i in body(i, Self.range(part: i, of: n, count: count)) }
    }

    /// Calls `body(0) ... body(parts - 1)`, on the calling thread alone when `parts == 1`.
    /// The parts may also run one after another on the calling thread (the shared team busy
    /// with another call, or a worker thread that cannot start): a part must never wait for
    /// another part to start (``BackwardSchedule`` hands a waiting part the work of one that
    /// has not started).
    func run(parts: Int, _ body: @Sendable (Int) -> Void) {
        if parts <= 1 { if parts == 1 { body(0) }; return }
        ThreadTeam.shared.run(parts: parts, body)
    }

    /// Part `i` of `n` equal contiguous parts of `0..<count`.
    static func range(part i: Int, of n: Int, count: Int) -> Range<Int> {
        let lo = count * i / n
        let hi = count * (i + 1) / n
        return lo..<hi
    }
}

/// A read-only raw pointer that may cross into worker closures.
struct SendableRawPointer: @unchecked Sendable {
    let pointer: UnsafeRawPointer
    init(_ p: UnsafeRawPointer) { pointer = p }
}

/// A read-only pointer that may cross into worker closures.
struct SendableConstPointer<T>: @unchecked Sendable {
    let pointer: UnsafePointer<T>
    init(_ p: UnsafePointer<T>) { pointer = p }
}
