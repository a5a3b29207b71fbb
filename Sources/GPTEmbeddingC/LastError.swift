import CGPTEmbedding
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

/// The per-thread last-error message behind `gpt_embedding_last_error()`: a `strdup`ed C
/// string in a pthread key whose destructor frees it when the thread exits. (Swift's
/// `@TaskLocal` cannot do this: it only holds inside `withValue`.)
enum LastError {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { free($0) }
        return k
    }()

    /// The current thread's message, or NULL.
    static var current: UnsafePointer<CChar>? {
        UnsafePointer(pthread_getspecific(key)?.assumingMemoryBound(to: CChar.self))
    }

    /// Replaces the current thread's message (NULL clears it).
    static func set(_ message: String?) {
        if let old = pthread_getspecific(key) { free(old) }
        pthread_setspecific(key, message.flatMap { strdup($0) })
    }
}

/// Runs the body of an exported function: clears the thread's message, runs `body`, and
/// turns a thrown error into its status code and the message `"<function>: <message>"`.
/// Every `@c` shim goes through here, so no Swift error can escape into C.
@inline(__always)
func api(_ function: StaticString, _ body: () throws(GPTEmbeddingError) -> Void) -> Int32 {
    if LastError.current != nil { LastError.set(nil) }
    do {
        try body()
        return 0  // GPT_EMBEDDING_OK
    } catch {
        LastError.set("\(function): \(error.message)")
        return Int32(error.code.rawValue)
    }
}

/// `p`, or a `nullPointer` error naming the argument.
@inline(__always)
func required<T>(_ p: T?, _ name: StaticString) throws(GPTEmbeddingError) -> T {
    guard let p else { throw GPTEmbeddingError(.nullPointer, "\(name) is NULL") }
    return p
}
