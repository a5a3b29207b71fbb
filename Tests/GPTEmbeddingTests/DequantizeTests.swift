import CKernelDispatch
import Foundation
@testable import GPTEmbedding
import Testing

/// Rows of ggml's block formats dequantize bit for bit as ggml's `dequantize_row_*` (issue
/// 19): against the `gguf` package's `gguf.quants.dequantize`, recorded in
/// Tests/golden/gguf_dequant/<type>.bin by Tests/fixtures/gguf/generate_dequant_golden.py,
/// on both CPU paths; and the paths agree on random blocks.
@Suite struct DequantizeTests {
    static let types = GGMLType.allCases.filter(\.isQuantizedTableType)
    static let paths: [Kernels] = InstructionSet.allCases.compactMap(Kernels.load)
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("golden/gguf_dequant")

    /// One section of a golden file: rows of `cols` elements, their blocks and the floats.
    struct Section { let cols: Int; let rows: Int; let raw: [UInt8]; let values: [UInt32] }

    static func golden(_ type: GGMLType) throws -> [Section] {
        let data = try [UInt8](Data(contentsOf: directory.appendingPathComponent("\(type.name).bin")))
        var at = 0
        func u32() -> Int {
            defer { at += 4 }
            return Int(data[at]) | Int(data[at + 1]) << 8 | Int(data[at + 2]) << 16 | Int(data[at + 3]) << 24
        }
        try #require(data.count >= 12 && data[0..<4].elementsEqual("GDQ1".utf8))
        at = 4
        try #require(u32() == Int(type.rawValue))
        var sections: [Section] = []
        for _ in 0..<u32() {
            let cols = u32(), rows = u32()
            let bytes = try #require(type.rowBytes(cols)) * rows
            let raw = Array(data[at..<at + bytes])
            at += bytes
            var values: [UInt32] = []
            for _ in 0..<rows * cols { values.append(UInt32(u32())) }
            sections.append(Section(cols: cols, rows: rows, raw: raw, values: values))
        }
        #expect(at == data.count)
        return sections
    }

    @Test func everySupportedTypeHasAGoldenFileAndBothPathsAreTested() {
        #expect(Self.types.map(\.name) == ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k",
                                           "q6_k", "iq4_nl", "iq4_xs"])
        #expect(Self.paths.map(\.isa) == InstructionSet.supported)
    }

    @Test(arguments: types)
    func equalsGGUFDequantizeBitForBitOnEveryPath(type: GGMLType) throws {
        let sections = try Self.golden(type)
        #expect(sections.count >= 2)
        for kernels in Self.paths {
            for s in sections {
                let got = try type.dequantize(s.raw, cols: s.cols, kernels: kernels).map(\.bitPattern)
                let first = got.indices.first { got[$0] != s.values[$0] }
                #expect(got == s.values, "\(type) on \(kernels.isa), \(s.rows)x\(s.cols): first difference at \(first ?? -1)")
            }
        }
        // The public entry point (the active path), one row at a time.
        let s = sections[0]
        let bytes = type.rowBytes(s.cols)!
        var row = [Float](repeating: .nan, count: s.cols)
        try s.raw[0..<bytes].withUnsafeBytes { src in
            try row.withUnsafeMutableBufferPointer { try type.dequantize(row: src, into: $0) }
        }
        #expect(row.map(\.bitPattern) == Array(s.values[0..<s.cols]))
    }

    /// Byte offsets of each type's fp16 fields in a block.
    static func scaleOffsets(_ type: GGMLType) -> [Int] {
        switch type {
        case .q4_1, .q5_1, .q4_k, .q5_k: [0, 2]
        case .q2_k: [80, 82]
        case .q3_k: [108]
        case .q6_k: [208]
        default: [0]
        }
    }

    @Test(.enabled(if: InstructionSetTests.cpuHasV3), arguments: types)
    func bothPathsGiveTheSameBitsOnRandomBlocks(type: GGMLType) throws {
        var rng = TestRandom(UInt64(type.rawValue) &* 7919)
        let cols = 4096 + (type.blockSize == 32 ? 96 : 0)
        let rows = 64
        let bytes = type.rowBytes(cols)!
        var raw = (0..<rows * bytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for b in stride(from: 0, to: raw.count, by: type.blockBytes) {
            for off in Self.scaleOffsets(type) {
                var h: UInt16
                repeat { h = UInt16(truncatingIfNeeded: rng.next()) } while (h >> 10) & 0x1F == 0x1F
                raw[b + off] = UInt8(h & 0xFF)
                raw[b + off + 1] = UInt8(h >> 8)
            }
        }
        let results = try Self.paths.map { try type.dequantize(raw, cols: cols, kernels: $0).map(\.bitPattern) }
        #expect(results.count == 2)
        #expect(results.dropFirst().allSatisfy { $0 == results[0] }, "\(type): the paths differ")
    }

    @Test func unsupportedTypesAndBadSizesAreRefusedByName() throws {
        for type in [GGMLType.iq2_xxs, .iq1_s, .q8_k, .f32, .tq1_0] {
            do {
                _ = try type.dequantize([UInt8](repeating: 0, count: type.blockBytes * 2), cols: 2 * type.blockSize)
                Issue.record("\(type) was dequantized")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("ggml type \(type.name)"), "\(error.message)")
            }
        }
        #expect(throws: GPTEmbeddingError.self) { try GGMLType.q4_k.dequantize([UInt8](repeating: 0, count: 144), cols: 128) }
        #expect(throws: GPTEmbeddingError.self) { try GGMLType.q8_0.dequantize([UInt8](repeating: 0, count: 35), cols: 32) }
        var out = [Float](repeating: 0, count: 32)
        let short = [UInt8](repeating: 0, count: 17)
        #expect(throws: GPTEmbeddingError.self) {
            try short.withUnsafeBytes { src in try out.withUnsafeMutableBufferPointer { try GGMLType.q4_0.dequantize(row: src, into: $0) } }
        }
        // The kernels themselves refuse what they do not decode, writing nothing.
        for kernels in Self.paths {
            var dst: [Float] = [1, 2]
            let r = dst.withUnsafeMutableBufferPointer { kernels.dequantizeRow(Int32(GGMLType.iq2_xs.rawValue), short, 32, $0.baseAddress) }
            #expect(r == 0 && dst == [1, 2])
        }
    }

    /// ns per 4096-wide row of each type on each path (printed; no threshold). Only with
    /// GPTE_DEQUANT_SPEED=1 (meaningful in a release build: `swift test -c release`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["GPTE_DEQUANT_SPEED"] == "1"))
    func speedOfA4096WideRow() throws {
        for type in Self.types {
            let cols = 4096, rows = 256
            let bytes = type.rowBytes(cols)!
            var rng = TestRandom(5)
            var raw = (0..<rows * bytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for b in stride(from: 0, to: raw.count, by: type.blockBytes) {
                for off in Self.scaleOffsets(type) { raw[b + off] = 0x00; raw[b + off + 1] = 0x1C }
            }
            var line = "\(type.name):"
            for kernels in Self.paths {
                var out = [Float](repeating: 0, count: cols)
                var best = Double.infinity
                for _ in 0..<5 {
                    let start = DispatchTime.now().uptimeNanoseconds
                    raw.withUnsafeBytes { src in
                        out.withUnsafeMutableBufferPointer { dst in
                            for r in 0..<rows { _ = kernels.dequantizeRow(Int32(type.rawValue), src.baseAddress! + r * bytes, Int64(cols), dst.baseAddress) }
                        }
                    }
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / Double(rows))
                }
                line += " \(kernels.isa) \(Int(best)) ns/row"
            }
            print("dequantize 4096:", line)
        }
    }
}
