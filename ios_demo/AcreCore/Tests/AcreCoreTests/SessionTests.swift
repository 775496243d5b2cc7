import Foundation
import XCTest

@testable import AcreCore

/// A deterministic stand-in for the step program with the vector bundle's geometry: K/V and queries are
/// functions of the token id, attention goes to the valid slots, and the next token is a function of
/// the last token and how many slots are visible.
final class FakeEngine: StepEngine {
    let geometry: Geometry
    let chunk: Int
    let probeLayers: Int
    private(set) var calls = 0
    private(set) var maxVisible = 0

    init(bundle: AcreBundle) {
        geometry = bundle.geometry
        chunk = bundle.chunk
        probeLayers = bundle.probeLayers.count
    }

    func rows(for count: Int) -> Int { count == 1 ? 1 : chunk }

    func step(tokens: [Int32], positions: [Int32], pot: Pot, lastIndex: Int) throws -> StepOutput {
        calls += 1
        let rows = tokens.count
        let (l, hkv, h, d) = (geometry.layers, geometry.kvHeads, geometry.heads, geometry.headDim)
        func feature(_ token: Int32, _ a: Int, _ b: Int, _ j: Int) -> Float {
            Float(sin(Double(token) * 0.37 + Double(a) * 1.3 + Double(b) * 0.7 + Double(j) * 0.11))
        }
        var k = [Float]()
        var v = [Float]()
        for layer in 0..<l {
            for head in 0..<hkv {
                for row in 0..<rows {
                    for j in 0..<d {
                        k.append(feature(tokens[row], layer, head, j))
                        v.append(feature(tokens[row], head, layer, j) * 0.5)
                    }
                }
            }
        }
        var q = [Float]()
        for layer in 0..<probeLayers {
            for head in 0..<h {
                for row in 0..<rows {
                    for j in 0..<d { q.append(feature(tokens[row] &+ 7, layer, head / (h / hkv), j)) }
                }
            }
        }
        let visible = pot.mask.filter { $0 }.count
        maxVisible = Swift.max(maxVisible, visible)
        var attention = [Float](repeating: 0, count: rows * pot.capacity)
        for row in 0..<rows {
            for slot in 0..<pot.capacity where pot.mask[slot] {
                attention[row * pot.capacity + slot] = Float(1 + (Swift.abs(pot.token[slot]) &* 31 + row) % 17) / Float(visible * 9)
            }
        }
        var logits = [Float](repeating: 0, count: geometry.vocab)
        logits[3 + (Int(tokens[lastIndex]) * 13 + visible) % (geometry.vocab - 3)] = 1
        return StepOutput(logits: logits, kNew: k, vNew: v, potAttention: attention, qProbe: q, rows: rows)
    }
}

/// Letters to ids and back (ids 3... so that 0-2 stay special).
final class FakeTokenizer: TextTokenizer {
    func encode(_ text: String) -> [Int] { text.unicodeScalars.map { 3 + Int($0.value % 290) } }
    func decode(_ ids: [Int]) -> String {
        String(String.UnicodeScalarView(ids.compactMap { Unicode.Scalar(UInt32(97 + ($0 - 3) % 26)) }))
    }
    var bosTokenId: Int? { 1 }
    var promptPrefix: String { "<user>" }
    var promptSuffix: String { "<assistant>" }
}

final class SessionTests: XCTestCase {
    private func document(_ words: Int) -> String {
        (0..<words).map { "w\($0 % 97)" }.joined(separator: " ")
    }

    func testIngestAskAndReopenInBoundedRAM() throws {
        let bundle = try AcreBundle.open(Vectors.url("bundle"))
        let engine = FakeEngine(bundle: bundle)
        let session = try Session(bundle: bundle, engine: engine, tokenizer: FakeTokenizer())
        XCTAssertEqual(session.layout, Layout(sink: 16, l1: 64, recent: 16, refill: 64, question: 96))
        let storeURL = try Vectors.temporaryDirectory(self).appendingPathComponent("doc")
        var lastProgress = (0, 0)
        let text = document(400)
        let tokens = try session.ingest(text, store: storeURL) { done, total in lastProgress = (done, total) }
        XCTAssertGreaterThan(tokens, 1000)
        XCTAssertEqual(lastProgress.0, tokens)
        XCTAssertEqual(lastProgress.1, tokens)
        XCTAssertLessThanOrEqual(engine.maxVisible, session.pot.capacity)
        let store = try XCTUnwrap(session.store)
        XCTAssertEqual(store.spanCount, (tokens + 63) / 64)
        XCTAssertEqual(store.tokens, tokens)
        XCTAssertEqual(session.pot.slots(of: [.sink]).count, 16)
        XCTAssertEqual(session.pot.slots(of: [.l1]).count, 64)

        var answer = ""
        try session.ask("what is w5?", maxNewTokens: 12) { piece in
            answer += piece
            return true
        }
        XCTAssertFalse(answer.isEmpty)
        XCTAssertFalse(session.last.spans.isEmpty)
        XCTAssertLessThanOrEqual(session.last.spans.count, session.layout.refill / 64)
        XCTAssertGreaterThan(session.last.bytesRead, 0)
        let profile = session.profile
        XCTAssertEqual(profile.potBytes, session.pot.nbytes)
        XCTAssertEqual(profile.l2DiskBytes, store.spanCount * store.meta.recordBytes)

        // the same bundle in a "later launch": the document is reopened, not ingested, and answers alike
        let later = try Session(bundle: bundle, engine: FakeEngine(bundle: bundle), tokenizer: FakeTokenizer())
        XCTAssertEqual(try later.openDocument(storeURL), tokens)
        var again = ""
        try later.ask("what is w5?", maxNewTokens: 12) { piece in
            again += piece
            return true
        }
        XCTAssertEqual(again, answer)
        XCTAssertEqual(later.last.spans, session.last.spans)

        // ingesting the same text into the same store reopens it
        let third = try Session(bundle: bundle, engine: FakeEngine(bundle: bundle), tokenizer: FakeTokenizer())
        XCTAssertEqual(try third.ingest(text, store: storeURL), tokens)
        XCTAssertTrue(third.reopened)
    }

    func testBadInputIsRefusedClearly() throws {
        let bundle = try AcreBundle.open(Vectors.url("bundle"))
        let session = try Session(bundle: bundle, engine: FakeEngine(bundle: bundle), tokenizer: FakeTokenizer())
        XCTAssertThrowsError(try session.ingest("   ", store: nil)) { XCTAssertTrue($0 is InputError) }
        XCTAssertThrowsError(try session.ingestIds([5, 300], store: nil)) { XCTAssertTrue($0 is InputError) }
        XCTAssertThrowsError(try session.generate([5]) { _ in true }) { XCTAssertTrue($0 is InputError) }
        XCTAssertThrowsError(
            try Session(bundle: bundle, engine: FakeEngine(bundle: bundle), tokenizer: FakeTokenizer(), spanTokens: 512))
    }

    func testStreamingPolicyKeepsNoL2() throws {
        let bundle = try AcreBundle.open(Vectors.url("bundle"))
        let session = try Session(
            bundle: bundle, engine: FakeEngine(bundle: bundle), tokenizer: FakeTokenizer(),
            policy: Policy.named("streaming"))
        try session.ingest(document(200), store: nil)
        XCTAssertNil(session.store)
        var count = 0
        try session.ask("w1?", maxNewTokens: 5) { _ in
            count += 1
            return true
        }
        XCTAssertEqual(session.last.bytesRead, 0)
    }
}
