#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed-size, 64-byte aligned, zero-initialised array of floats on the heap.
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
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, max(bytes, 64)) == 0, let raw else {
            throw GPTEmbeddingError(.outOfMemory, "cannot allocate \(bytes) bytes for \(what())")
        }
        if zeroed { memset(raw, 0, max(bytes, 64)) }
        self.base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
    }

    deinit { free(base) }

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
