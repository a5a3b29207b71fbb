import GPTEmbedding
import Synchronization

/// The live layers behind C handles.
///
/// A handle is not the address of an object but a number that is never reused, looked up
/// under a lock on every call. So a freed (or never created) handle is reported as
/// `GPT_EMBEDDING_ERROR_INVALID_HANDLE` instead of touching freed memory, and a double
/// free is a no-op. The lookup returns a strong reference, so the layer lives until the
/// call that is using it returns.
enum HandleRegistry {
    private struct Table: ~Copyable {
        var layers: [UInt: GPTEmbedding] = [:]
        var next: UInt = 1
    }
    private static let table = Mutex(Table())

    /// Handles are spaced 16 apart above this base, so they look like (and are aligned
    /// like) heap pointers but can never be confused with NULL.
    private static let base: UInt = 0x6770_0000_0000

    static func register(_ layer: GPTEmbedding) -> OpaquePointer {
        let id = table.withLock { t in
            let id = t.next
            t.next += 1
            t.layers[id] = layer
            return id
        }
        return OpaquePointer(bitPattern: base &+ id &* 16)!
    }

    /// The layer of `handle`, or an error for NULL and for handles that are not live.
    static func layer(_ handle: OpaquePointer?) throws(GPTEmbeddingError) -> GPTEmbedding {
        guard let handle else { throw GPTEmbeddingError(.nullPointer, "layer is NULL") }
        let key = key(handle)
        let found = table.withLock { t in key.flatMap { t.layers[$0] }.map(LayerRef.init) }
        guard let found else {
            throw GPTEmbeddingError(.invalidHandle, "layer \(handle) is not a live handle (already freed, or not from gpt_embedding_create)")
        }
        return found.layer
    }

    /// Forgets `handle`; the layer is released when no call is using it. Unknown handles are ignored.
    static func remove(_ handle: OpaquePointer?) {
        guard let handle, let key = key(handle) else { return }
        let removed = table.withLock { t in t.layers.removeValue(forKey: key).map(LayerRef.init) }
        _ = removed  // released here, outside the lock
    }

    private static func key(_ handle: OpaquePointer) -> UInt? {
        let bits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))
        guard bits > base, (bits &- base) % 16 == 0 else { return nil }
        return (bits &- base) / 16
    }

    /// Carries a layer out of the lock.
    private struct LayerRef: @unchecked Sendable { let layer: GPTEmbedding }
}
