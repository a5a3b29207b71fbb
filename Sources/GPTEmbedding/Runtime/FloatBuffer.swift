#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed-size, 64-byte aligned (2 MiB from 4 MiB on) array of floats on the heap, zeroed
/// unless the owner is about to write all of it.
///
/// Allocation goes through `posix_memalign` so that running out of memory is an error
/// the caller sees (`outOfMemory`) and never the abort of Swift's allocator.
final class FloatBuffer: @unchecked Sendable {
    /// The first element; valid for `count` elements until the buffer is released.
    let base: UnsafeMutablePointer<Float>
    /// Number of floats.
    let count: Int

    /// Allocates `count` floats, zeroed unless `zeroed` is false (scratch space).
    init(count: Int, zeroed: Bool = true, what: @autoclosure () -> String) throws(GPTEmbeddingError) {
        let bytes = try Checked.floatBytes(count, what())
        try Self.checkFits(bytes, what())
        let huge = bytes >= Self.hugePageMinimum
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, huge ? Self.hugePageSize : 64, max(bytes, 64)) == 0, let raw else {
            throw GPTEmbeddingError(.outOfMemory, "cannot allocate \(bytes) bytes for \(what())")
        }
        if huge { Self.adviseHugePages(raw, bytes) }
        if zeroed { memset(raw, 0, max(bytes, 64)) }
        self.base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
    }

    deinit { free(base) }

    /// The size of a transparent huge page (x86-64 and most arm64 Linux kernels).
    static let hugePageSize = 2 << 20

    /// Buffers at least this large start on a huge-page boundary and ask for transparent
    /// huge pages. Faulting memory in 4 KiB pages costs more than filling it: touching
    /// 150 MiB (a GPT-2 small table) took 65-80 ms here in 4 KiB pages, 16 ms in 2 MiB ones.
    static let hugePageMinimum = 4 << 20

    /// `madvise(MADV_HUGEPAGE)` on the whole huge pages of `bytes` at `p` (2 MiB aligned).
    /// Only advice: with transparent huge pages `never` (or none) nothing changes; with
    /// `always` it was the default already. Needed for the common `madvise` setting.
    private static func adviseHugePages(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
        #if os(Linux)
        _ = madvise(p, bytes & ~(hugePageSize - 1), MADV_HUGEPAGE)
        #endif
    }

    /// Physical memory of this machine in bytes (0 if unknown).
    static let physicalMemory: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return 0 }
        return pages.multipliedReportingOverflow(by: size).overflow ? Int.max : pages * size
    }()

    /// Refuses a buffer larger than physical memory. With Linux's memory overcommit such an
    /// allocation could succeed and the process then be killed while filling it; refusing
    /// it up front turns that into an `outOfMemory` error.
    static func checkFits(_ bytes: Int, _ what: @autoclosure () -> String) throws(GPTEmbeddingError) {
        if physicalMemory > 0 && bytes > physicalMemory {
            throw GPTEmbeddingError(.outOfMemory, "\(what()) needs \(bytes) bytes, more than this machine's \(physicalMemory) bytes of memory")
        }
    }

    /// The contents as a buffer pointer.
    var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    /// Sets every element to zero.
    func zero() { memset(base, 0, count * MemoryLayout<Float>.stride) }

    /// Bytes owned.
    var byteCount: Int { count * MemoryLayout<Float>.stride }
}

/// A 64-byte aligned array of 32-bit integers, allocated like ``FloatBuffer``.
final class Int32Buffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Int32>
    let count: Int

    init(count: Int, what: @autoclosure () -> String) throws(GPTEmbeddingError) {
        let bytes = try Checked.multiply(count, MemoryLayout<Int32>.stride, what())
        try FloatBuffer.checkFits(bytes, what())
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, max(bytes, 64)) == 0, let raw else {
            throw GPTEmbeddingError(.outOfMemory, "cannot allocate \(bytes) bytes for \(what())")
        }
        self.base = raw.bindMemory(to: Int32.self, capacity: max(count, 1))
        self.count = count
    }

    deinit { free(base) }

    var byteCount: Int { count * MemoryLayout<Int32>.stride }
}
