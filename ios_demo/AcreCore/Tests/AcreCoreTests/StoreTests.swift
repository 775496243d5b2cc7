import Foundation
import XCTest

@testable import AcreCore

final class StoreTests: XCTestCase {
    private func stores() throws -> [JSON] {
        let l2 = try Vectors.json("l2.json")
        XCTAssertEqual(l2["header_format"]?.string, "<4sIIQII")
        return try XCTUnwrap(l2["stores"]?.array)
    }

    func testBothStoresReadBackBitIdentical() throws {
        for vector in try stores() {
            let name = try XCTUnwrap(vector["dir"]?.string)
            let store = try SpanStore.open(at: Vectors.url(name))
            defer { store.close() }
            XCTAssertEqual(store.meta.recordBytes, vector["record_bytes"]?.pythonInt, name)
            XCTAssertEqual(store.spanCount, vector["span_count"]?.pythonInt, name)
            let spans = try XCTUnwrap(vector["spans"]?.array)
            XCTAssertEqual(spans.count, store.spanCount)
            for (i, expected) in spans.enumerated() {
                let span = try store.read(i)
                XCTAssertEqual(span.start, expected["start"]?.pythonInt, "\(name) span \(i)")
                XCTAssertEqual(span.tokens.map { Int($0) }, ints(expected["tokens"]), "\(name) span \(i)")
                XCTAssertEqual(floatBits(span.k), floatBits(expected["k"]), "\(name) span \(i) k")
                XCTAssertEqual(floatBits(span.v), floatBits(expected["v"]), "\(name) span \(i) v")
                XCTAssertEqual(sha256OfFloats(span.k), expected["k_sha256"]?.string, "\(name) span \(i)")
                XCTAssertEqual(sha256OfFloats(span.v), expected["v_sha256"]?.string, "\(name) span \(i)")
                XCTAssertEqual(
                    floatBits(store.reps[i].map(Half.toFloat)), floatBits(expected["reps"]), "\(name) span \(i) reps")
                let (start, tokens) = try store.readTokens(i)
                XCTAssertEqual(start, span.start)
                XCTAssertEqual(tokens, span.tokens)
                XCTAssertEqual(store.starts[i], span.start)
                XCTAssertEqual(store.lengths[i], span.tokens.count)
            }
        }
    }

    /// Open a damaged copy; check the span count and which spans read / readTokens refuse.
    private func checkDamage(_ vector: JSON, _ store: String, damage: (inout [UInt8]) -> Void) throws {
        let copy = try Vectors.copy(store, self)
        let file = copy.appendingPathComponent("spans.bin")
        var bytes = [UInt8](try Data(contentsOf: file))
        damage(&bytes)
        try Data(bytes).write(to: file)
        let opened = try SpanStore.open(at: copy)
        defer { opened.close() }
        let what = "\(store) \(vector.serialized(indent: nil))"
        XCTAssertEqual(opened.spanCount, vector["span_count"]?.pythonInt, what)
        var refused: [Int] = []
        var tokensRefused: [Int] = []
        for i in 0..<opened.spanCount {
            do { _ = try opened.read(i) } catch is StoreError { refused.append(i) }
            do { _ = try opened.readTokens(i) } catch is StoreError { tokensRefused.append(i) }
        }
        XCTAssertEqual(refused, ints(vector["read_refused"]), what)
        XCTAssertEqual(tokensRefused, ints(vector["read_tokens_refused"]), what)
    }

    func testTruncatedStoresServeTheStatedSpans() throws {
        for vector in try stores() {
            let store = try XCTUnwrap(vector["dir"]?.string)
            for cut in try XCTUnwrap(vector["truncations"]?.array) {
                let size = try XCTUnwrap(cut["truncate_to"]?.pythonInt)
                try checkDamage(cut, store) { bytes in bytes.removeSubrange(size...) }
            }
        }
    }

    func testBitFlipsAreRefusedAsStated() throws {
        for vector in try stores() {
            let store = try XCTUnwrap(vector["dir"]?.string)
            for flip in try XCTUnwrap(vector["bit_flips"]?.array) {
                let at = try XCTUnwrap(flip["flip_byte"]?.pythonInt)
                let xor = try XCTUnwrap(flip["xor"]?.pythonInt)
                let mask = UInt8(xor)
                try checkDamage(flip, store) { bytes in bytes[at] ^= mask }
            }
        }
    }

    /// Writing the vector spans again gives the committed spans.bin and store.json byte for byte
    /// (float16 and int8 alike: re-encoding the decoded values reproduces the same codes and scales).
    func testWriterReproducesTheCommittedFiles() throws {
        for vector in try stores() {
            let name = try XCTUnwrap(vector["dir"]?.string)
            let committed = try SpanStore.open(at: Vectors.url(name))
            let meta = committed.meta
            committed.close()
            let target = try Vectors.temporaryDirectory(self).appendingPathComponent(name)
            let store = try SpanStore.create(at: target, meta: meta)
            for span in try XCTUnwrap(vector["spans"]?.array) {
                let start = try XCTUnwrap(span["start"]?.pythonInt)
                try store.append(
                    start: start,
                    tokens: ints(span["tokens"]).map { Int32($0) },
                    k: doubles(span["k"]).map { Float($0) },
                    v: doubles(span["v"]).map { Float($0) },
                    reps: doubles(span["reps"]).map { Float($0) })
            }
            store.close()
            for file in ["spans.bin", "store.json"] {
                let written = try Data(contentsOf: target.appendingPathComponent(file))
                let expected = try Data(contentsOf: Vectors.url(name).appendingPathComponent(file))
                XCTAssertEqual(written, expected, "\(name)/\(file)")
            }
        }
    }

    func testWriterRoundTripAndTornTail() throws {
        for codec in [L2Codec.float16, .int8] {
            let meta = StoreMeta(
                fingerprint: "round-trip", spanTokens: 8, layers: 3, kvHeads: 2, headDim: 16, probeLayers: 2,
                reps: 4, codec: codec)
            let dir = try Vectors.temporaryDirectory(self).appendingPathComponent("store")
            let store = try SpanStore.create(at: dir, meta: meta)
            var generator = SplitMix64(seed: 7)
            var written: [(tokens: [Int32], k: [Float], v: [Float])] = []
            for n in [8, 8, 5] {
                let tokens = (0..<n).map { _ in Int32(generator.next() % 49152) }
                let count = meta.layers * meta.kvHeads * n * meta.headDim
                let k = (0..<count).map { _ in generator.nextFloat() * 8 - 4 }
                let v = (0..<count).map { _ in generator.nextFloat() * 8 - 4 }
                let probe = Array(k.prefix(meta.probeLayers * meta.kvHeads * n * meta.headDim))
                let reps = Representatives.of(
                    probe, probeLayers: meta.probeLayers, kvHeads: meta.kvHeads, rows: n, headDim: meta.headDim,
                    reps: meta.reps)
                try store.append(start: store.tokens, tokens: tokens, k: k, v: v, reps: reps)
                written.append((tokens, k, v))
            }
            XCTAssertThrowsError(try store.append(start: 21, tokens: [1], k: [], v: [], reps: []))  // after a partial span
            XCTAssertThrowsError(try SpanStore.open(at: dir, writable: true)) { error in  // one writer at a time
                XCTAssertTrue(error is StoreError)
            }
            store.close()

            let reopened = try SpanStore.open(at: dir, fingerprint: "round-trip")
            XCTAssertEqual(reopened.spanCount, 3)
            XCTAssertEqual(reopened.tokens, 21)
            XCTAssertEqual(reopened.starts, [0, 8, 16])
            for (i, span) in written.enumerated() {
                let read = try reopened.read(i)
                XCTAssertEqual(read.tokens, span.tokens)
                for (a, b) in zip(read.k, span.k) {
                    if codec == .float16 {
                        XCTAssertEqual(a.bitPattern, Half.toFloat(Half.fromFloat(b)).bitPattern)
                    } else {
                        XCTAssertEqual(a, b, accuracy: 4.0 / 127 * 0.51 + 4.0 / 2048)  // half a step of the row scale
                    }
                }
            }
            XCTAssertThrowsError(try SpanStore.open(at: dir, fingerprint: "another model"))
            reopened.close()

            // a torn write: half a record after the three; a writer reopening drops it
            let file = dir.appendingPathComponent("spans.bin")
            var bytes = [UInt8](try Data(contentsOf: file))
            bytes += [UInt8](repeating: 0xAB, count: meta.recordBytes / 2)
            try Data(bytes).write(to: file)
            let writer = try SpanStore.open(at: dir, writable: true)
            XCTAssertEqual(writer.spanCount, 3)
            XCTAssertEqual(writer.diskBytes, 3 * meta.recordBytes)
            writer.close()
        }
    }

    func testFinishAndSnapshot() throws {
        let meta = StoreMeta(
            fingerprint: "f", spanTokens: 4, layers: 1, kvHeads: 1, headDim: 2, probeLayers: 1, reps: 1)
        let dir = try Vectors.temporaryDirectory(self).appendingPathComponent("store")
        let store = try SpanStore.create(at: dir, meta: meta)
        try store.append(start: 0, tokens: [5, 6], k: [1, 2, 3, 4], v: [4, 3, 2, 1], reps: [3, 4])
        XCTAssertThrowsError(try store.loadSnapshot())  // not finished yet
        try store.finish(snapshot: Data([1, 2, 3]), extra: [("policy", .string("acre"))])
        store.close()
        let reopened = try SpanStore.open(at: dir)
        XCTAssertEqual(try reopened.loadSnapshot(), Data([1, 2, 3]))
        XCTAssertEqual(reopened.info["policy"], .string("acre"))
        XCTAssertEqual(reopened.info["document_tokens"], .int(2))
        reopened.close()
        try Data([9, 9, 9]).write(to: dir.appendingPathComponent(SpanStore.snapshotName))
        XCTAssertThrowsError(try SpanStore.open(at: dir).loadSnapshot())
    }
}

/// A small deterministic generator for test data.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
