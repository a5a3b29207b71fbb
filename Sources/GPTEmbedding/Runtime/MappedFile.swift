#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A private, copy-on-write mapping of a whole file (`MAP_PRIVATE`, read and write): pages
/// are shared with the page cache and with other processes until they are written; writes
/// stay in this process and never reach the file. Unmapped when the last table that points
/// into it is released.
///
/// The one hazard no library can catch: if another process truncates the file while it is
/// mapped, touching a page past the new end raises SIGBUS. That is why tables are read
/// into the layer's own memory unless the caller asks for mapping.
final class MappedFile: @unchecked Sendable {
    /// The first byte of the file.
    let base: UnsafeMutableRawPointer
    /// The file's size in bytes when it was mapped.
    let byteCount: Int
    /// The file, for messages.
    let path: String

    /// Maps the file open as `fd` (`byteCount` bytes, at least 1).
    init(fd: Int32, byteCount: Int, path: String) throws(GPTEmbeddingError) {
        guard byteCount > 0 else { throw GPTEmbeddingError(.badFile, "\(path): empty file") }
        guard let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw GPTEmbeddingError(.io, "\(path): cannot map \(byteCount) bytes: \(String(cString: strerror(errno)))")
        }
        base = p
        self.byteCount = byteCount
        self.path = path
    }

    deinit { munmap(base, byteCount) }
}
