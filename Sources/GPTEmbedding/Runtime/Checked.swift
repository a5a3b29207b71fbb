/// Overflow-checked size arithmetic. Every size that comes from a caller goes through
/// these, so that a huge shape is an error and never a trap or a short allocation.
enum Checked {
    /// `a * b`, or a `sizeOverflow` error naming `what`.
    static func multiply(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> Int {
        let (r, overflow) = a.multipliedReportingOverflow(by: b)
        if overflow { throw GPTEmbeddingError(.sizeOverflow, "\(what()) overflows: \(a) * \(b)") }
        return r
    }

    /// `a * b * c`, or a `sizeOverflow` error naming `what`.
    static func multiply(_ a: Int, _ b: Int, _ c: Int, _ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> Int {
        let (ab, o1) = a.multipliedReportingOverflow(by: b)
        let (r, o2) = ab.multipliedReportingOverflow(by: c)
        if o1 || o2 { throw GPTEmbeddingError(.sizeOverflow, "\(what()) overflows: \(a) * \(b) * \(c)") }
        return r
    }

    /// Bytes of `count` floats, or a `sizeOverflow` error.
    static func floatBytes(_ count: Int, _ what: @autoclosure () -> String) throws(GPTEmbeddingError) -> Int {
        try multiply(count, MemoryLayout<Float>.stride, what())
    }
}
