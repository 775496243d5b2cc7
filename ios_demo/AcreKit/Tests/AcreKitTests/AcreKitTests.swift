import XCTest

@testable import AcreKit

/// AcreKit over the core, on the vector bundle (tests/vectors/bundle) made into a session bundle as
/// native/tests/test_session.cpp makes it: the step signature, and a byte-level BPE of the 256 bytes
/// (one id per byte) as its tokenizer. The step is FakeStep, whose outputs are a function of its inputs.
/// Never compiled or run (no Swift toolchain where it was written): see ../../README.md.
final class AcreKitTests: XCTestCase {
    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../../tests/vectors").standardizedFileURL

    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("acrekit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// The vector bundle with the step's signature and the byte-level tokenizer (checksums not verified:
    /// the tokenizer file changed).
    func sessionBundle() throws -> AcreBundle {
        let dir = scratch.appendingPathComponent("bundle")
        try FileManager.default.copyItem(at: Self.vectors.appendingPathComponent("bundle"), to: dir)
        var vocab: [String: Int] = [:]
        var shifted = 256
        for b in 0..<256 {
            let printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
            let cp = printable ? b : shifted
            if !printable { shifted += 1 }
            vocab[String(Character(Unicode.Scalar(UInt32(cp))!))] = b
        }
        let tokenizer: [String: Any] = [
            "version": "1.0", "added_tokens": [Any](), "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "decoder": ["type": "ByteLevel"],
            "model": ["type": "BPE", "vocab": vocab, "merges": [Any]()],
        ]
        let text = try JSONSerialization.data(withJSONObject: tokenizer)
        try text.write(to: dir.appendingPathComponent("tokenizer/tokenizer.json"))
        let manifestURL = dir.appendingPathComponent("manifest.json")
        var manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any])
        var step = try XCTUnwrap(manifest["step"] as? [String: Any])
        step["inputs"] = ["tokens", "positions", "pot_mask", "last_index", "pot_k_0", "pot_k_1", "pot_v_0", "pot_v_1"]
        step["outputs"] = ["logits", "k_new", "v_new", "pot_attention", "q_probe"]
        manifest["step"] = step
        var files = try XCTUnwrap(manifest["files"] as? [String: Any])
        var entry = try XCTUnwrap(files["tokenizer/tokenizer.json"] as? [String: Any])
        entry["bytes"] = text.count
        files["tokenizer/tokenizer.json"] = entry
        manifest["files"] = files
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestURL)
        return try AcreBundle(dir, verifyChecksums: false)
    }

    func session(_ bundle: AcreBundle, _ fake: FakeStep, policy: String = "acre") throws -> Session {
        let engine = try Engine.callback(bundle, program: fake)
        return try Session(bundle: bundle, engine: engine, policy: policy, checkpointTokens: 64)
    }

    static let document = (0..<90).map { "Line \($0) of the document, " }.joined()  // 2,5xx bytes

    // MARK: - bundle, tokenizer, engine

    func testTheBundleOpensWithItsGeometry() throws {
        let bundle = try AcreBundle(Self.vectors.appendingPathComponent("bundle"))
        XCTAssertEqual(bundle.geometry.layers, 2)
        XCTAssertEqual(bundle.geometry.kvHeads, 2)
        XCTAssertEqual(bundle.geometry.headDim, 4)
        XCTAssertEqual(bundle.geometry.vocab, 300)
        XCTAssertEqual(bundle.geometry.chunk, 16)
        XCTAssertEqual(bundle.geometry.pot, 256)
        XCTAssertEqual(bundle.geometry.kvDtype, "float32")
        XCTAssertEqual(try bundle.programURL("executorch").lastPathComponent, "program.bin")
        XCTAssertThrowsError(try bundle.programURL("coreml")) { XCTAssertEqual(($0 as? AcreError)?.kind, "bundle") }
        XCTAssertEqual(bundle.methods("executorch"), ["prefill": 16, "decode": 1])
        XCTAssertEqual(bundle.fingerprint.count, 64)
        XCTAssertTrue(AcreABI.matches)
    }

    func testAMissingBundleIsRefusedWithTheCoresMessage() {
        let missing = scratch.appendingPathComponent("no-such-bundle")
        XCTAssertThrowsError(try AcreBundle(missing)) { error in
            let e = error as? AcreError
            XCTAssertEqual(e?.kind, "bundle")
            XCTAssertTrue(e?.message.contains("no-such-bundle") ?? false, e?.message ?? "")
        }
    }

    func testTheTokenizerEncodesDecodesAndGivesScalarOffsets() throws {
        let tokenizer = try Tokenizer(bundle: try sessionBundle())
        let text = "h\u{E9}llo \u{1F600}"  // 1 + 2 + 3 + 1 + 4 bytes
        let (ids, bytes) = try tokenizer.encodeWithByteOffsets(text)
        XCTAssertEqual(ids.count, 11)  // one id per byte
        XCTAssertEqual(try tokenizer.decode(ids), text)
        XCTAssertEqual(try tokenizer.decode(Array(ids.prefix(2))), "h\u{FFFD}")  // half of the e-acute
        let scalars = Session.scalarOffsets(Array(text.utf8), bytes)
        // h [0,1]; both bytes of e-acute [1,2]; l l o space; the emoji's four bytes [6,7]
        XCTAssertEqual(Array(scalars.prefix(6)), [0, 1, 1, 2, 1, 2])
        XCTAssertEqual(Array(scalars.suffix(2)), [6, 7])
        XCTAssertEqual(try tokenizer.encode(""), [])
        XCTAssertNil(tokenizer.id(of: "<|no such token|>"))
    }

    func testExecuTorchIsNotPartOfThisBuild() throws {
        XCTAssertThrowsError(try Engine.executorch(try sessionBundle())) {
            XCTAssertEqual(($0 as? AcreError)?.kind, "unsupported")
        }
    }

    // MARK: - session

    func testIngestAskAndReopenGiveTheSameAnswerAndSources() throws {
        let bundle = try sessionBundle()
        let store = scratch.appendingPathComponent("store")
        let fake = FakeStep()
        let first = try session(bundle, fake)
        var progress: [Int] = []
        let n = try first.ingest(Self.document, store: store) { done, _ in progress.append(done); return true }
        XCTAssertEqual(n, Self.document.utf8.count)  // no template, no BOS: one id per byte
        XCTAssertEqual(first.documentIds.count, n)
        XCTAssertEqual(progress.last, n)
        XCTAssertGreaterThan(fake.calls, 0)
        var pieces: [String] = []
        try first.ask("Which line?", decoding: Decoding(maxNewTokens: 8)) { pieces.append($0); return true }
        let answer = pieces.joined()
        let spans = first.last.spans
        XCTAssertFalse(spans.isEmpty)
        XCTAssertEqual(spans, spans.sorted())
        XCTAssertGreaterThan(first.last.bytesRead, 0)
        XCTAssertFalse(first.last.sources.isEmpty)
        for source in first.last.sources {
            XCTAssertTrue(Self.document.contains(source.text), source.text)
        }
        XCTAssertEqual(try first.answer("Which line?", decoding: Decoding(maxNewTokens: 8)), answer)
        let profile = first.profile
        XCTAssertEqual(profile.potSlots, 256)
        XCTAssertGreaterThan(profile.l2DiskBytes, 0)
        XCTAssertEqual(profile.spans, (n + 63) / 64)
        first.closeStore()

        let again = try session(bundle, FakeStep())
        XCTAssertEqual(try again.openDocument(store), n)
        XCTAssertEqual(again.documentIds, first.documentIds)
        XCTAssertEqual(try again.answer("Which line?", decoding: Decoding(maxNewTokens: 8)), answer)
        XCTAssertEqual(again.last.spans, spans)
        XCTAssertEqual(again.last.sources, first.last.sources)
        again.closeStore()

        // the same text ingested again with resume reopens the finished store
        let third = try session(bundle, FakeStep())
        XCTAssertEqual(try third.ingest(Self.document, store: store), n)
        XCTAssertTrue(third.reopened)
    }

    func testAStepProgramsErrorIsThrownAsItWas() throws {
        let bundle = try sessionBundle()
        let fake = FakeStep()
        fake.failAt = 3
        let s = try session(bundle, fake)
        XCTAssertThrowsError(try s.ingest(Self.document, store: scratch.appendingPathComponent("s"))) {
            XCTAssertEqual($0 as? FakeStep.Stop, FakeStep.Stop(call: 3))
        }
    }

    func testAProgressCallbackStopsAnIngest() throws {
        let s = try session(try sessionBundle(), FakeStep())
        XCTAssertThrowsError(try s.ingest(Self.document, store: scratch.appendingPathComponent("p")) { _, _ in false }) {
            XCTAssertTrue(($0 as? AcreError)?.isCancelled ?? false)
        }
    }

    func testBadInputIsRefused() throws {
        let bundle = try sessionBundle()
        let s = try session(bundle, FakeStep())
        XCTAssertThrowsError(try s.answer("Which line?")) { XCTAssertEqual(($0 as? AcreError)?.kind, "invalid argument") }
        XCTAssertThrowsError(try s.ingest("  \n")) { XCTAssertEqual(($0 as? AcreError)?.kind, "invalid argument") }
        XCTAssertThrowsError(try Session(bundle: bundle, engine: try Engine.callback(bundle, program: FakeStep()),
                                         policy: "no-such-policy")) {
            XCTAssertEqual(($0 as? AcreError)?.kind, "invalid argument")
        }
        try s.ingest(Self.document)
        XCTAssertThrowsError(try s.answer(" ")) { XCTAssertEqual(($0 as? AcreError)?.kind, "invalid argument") }
    }

    func testPassagesMergeTouchingSpansAndTrimWhitespace() {
        let text = Array("ab cd  ef".unicodeScalars)
        // tokens: template (no text), "ab", " cd", "  ", "ef"
        let offsets: [Int32] = [-1, -1, 0, 2, 2, 5, 5, 7, 7, 9]
        let sources = Session.passages([(3, 5), (0, 2), (1, 3)], text: text, offsets: offsets)
        XCTAssertEqual(sources, [Source(start: 0, end: 9, text: "ab cd  ef")])
        XCTAssertEqual(Session.passages([(3, 4)], text: text, offsets: offsets), [])  // whitespace only
        XCTAssertEqual(Session.passages([(2, 3)], text: text, offsets: offsets), [Source(start: 3, end: 5, text: "cd")])
    }
}

/// native/tests/test_session.cpp's fake step, over StepTensors by name: k/v from token and position, the
/// attention from the chunk's tokens and the visible slots, logits one-hot at the first row's token.
final class FakeStep: StepProgram {
    struct Stop: Error, Equatable { let call: Int }
    var calls = 0
    var failAt = -1

    func step(rows: Int, inputs: [StepTensor], outputs: [StepTensor]) throws {
        calls += 1
        if calls == failAt { throw Stop(call: calls) }
        func tensor(_ list: [StepTensor], _ name: String) -> StepTensor { list.first { $0.name == name }! }
        let tokens = tensor(inputs, "tokens").buffer.bindMemory(to: Int64.self)
        let positions = tensor(inputs, "positions").buffer.bindMemory(to: Int64.self)
        let mask = tensor(inputs, "pot_mask").buffer
        let pot = mask.count, heads = 2 * 2, d = 4
        for out in outputs { out.buffer.initializeMemory(as: UInt8.self, repeating: 0) }
        let k = tensor(outputs, "k_new").buffer.bindMemory(to: Float.self)
        let v = tensor(outputs, "v_new").buffer.bindMemory(to: Float.self)
        let attention = tensor(outputs, "pot_attention").buffer.bindMemory(to: Float.self)
        for h in 0..<heads {
            for r in 0..<rows {
                for j in 0..<d {
                    k[(h * rows + r) * d + j] =
                        Float((Int(tokens[r]) * 7 + h * 3 + j) % 11) - 5 + 0.01 * Float(Int(positions[r]) % 5)
                    v[(h * rows + r) * d + j] = Float((Int(tokens[r]) + h + j) % 5)
                }
            }
        }
        for r in 0..<rows {
            for j in 0..<pot {
                attention[r * pot + j] = mask[j] != 0 ? Float(1 + (Int(tokens[r]) * 7 + j * 13) % 17) / 100 : 0
            }
        }
        tensor(outputs, "logits").buffer.bindMemory(to: Float.self)[Int(tokens[0]) % 300] = 1
    }
}
