import Foundation
import XCTest

@testable import AcreCore

final class BundleTests: XCTestCase {
    func testTheVectorBundleOpens() throws {
        let bundle = try AcreBundle.open(Vectors.url("bundle"))
        XCTAssertEqual(bundle.geometry.layers, 2)
        XCTAssertEqual(bundle.geometry.kvHeads, 2)
        XCTAssertEqual(bundle.geometry.vocab, 300)
        XCTAssertEqual(bundle.chunk, 16)
        XCTAssertEqual(bundle.pot, 256)
        XCTAssertEqual(bundle.kvDtype, "float32")
        XCTAssertEqual(bundle.probeLayers, [0, 1])
        XCTAssertEqual(bundle.signalHeads.map { [$0.layer, $0.head] }, [[1, 2], [0, 0]])
        XCTAssertEqual(bundle.eosTokenIds, [2])
        XCTAssertEqual(bundle.bosTokenId, 1)
        XCTAssertEqual(bundle.methods("executorch"), ["prefill": 16, "decode": 1])
        XCTAssertEqual(try bundle.programURL("executorch").lastPathComponent, "program.bin")
        XCTAssertThrowsError(try bundle.programURL("coreml")) { error in
            XCTAssertEqual((error as? BundleError)?.kind, .noProgram)
        }
    }

    func testEveryBadManifestIsRefusedForItsStatedReason() throws {
        let cases = try XCTUnwrap(Vectors.json("bad_manifests.json").array)
        XCTAssertEqual(cases.count, 10)
        for item in cases {
            let name = item["name"]?.string ?? "?"
            let expected = try XCTUnwrap(item["error"]?.string)
            let copy = try Vectors.copy("bundle", self)
            let manifest = try XCTUnwrap(item["manifest"])
            try Data(manifest.serialized(indent: 2).utf8).write(to: copy.appendingPathComponent("manifest.json"))
            XCTAssertThrowsError(try AcreBundle.open(copy), name) { error in
                guard let error = error as? BundleError else { return XCTFail("\(name): \(error) is not a BundleError") }
                XCTAssertEqual(error.kind.rawValue, expected, "\(name): \(error.message)")
            }
        }
    }

    func testAMissingDirectoryOrManifestIsNotABundle() throws {
        let dir = try Vectors.temporaryDirectory(self)
        XCTAssertThrowsError(try AcreBundle.open(dir.appendingPathComponent("nothing"))) { error in
            XCTAssertEqual((error as? BundleError)?.kind, .notFound)
        }
        XCTAssertThrowsError(try AcreBundle.open(dir)) { error in
            XCTAssertEqual((error as? BundleError)?.kind, .notFound)
        }
    }

    func testManifestThatIsNotJSONIsRefused() throws {
        let copy = try Vectors.copy("bundle", self)
        try Data("{\"format\": ".utf8).write(to: copy.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try AcreBundle.open(copy)) { error in
            XCTAssertEqual((error as? BundleError)?.kind, .json)
        }
    }

    func testAModifiedFileFailsItsChecksumAndNamesIt() throws {
        let copy = try Vectors.copy("bundle", self)
        let program = copy.appendingPathComponent("program.bin")
        var bytes = [UInt8](try Data(contentsOf: program))
        bytes[100] ^= 0x01
        try Data(bytes).write(to: program)
        XCTAssertThrowsError(try AcreBundle.open(copy)) { error in
            let error = error as? BundleError
            XCTAssertEqual(error?.kind, .checksum)
            XCTAssertTrue(error?.message.contains("program.bin") ?? false)
        }
        XCTAssertNoThrow(try AcreBundle.open(copy, verifyChecksums: false))  // sizes still match
    }

    func testChecksumsOfTheVectorFilesMatchTheManifest() throws {
        let manifest = try Vectors.json("bundle/manifest.json")
        for (name, info) in try XCTUnwrap(manifest["files"]?.object).entries {
            let data = try Data(contentsOf: Vectors.url("bundle").appendingPathComponent(name))
            var portable = PortableSHA256()
            portable.update(data)
            XCTAssertEqual(Digests.hex(portable.finalize()), info["sha256"]?.string, name)
            XCTAssertEqual(Digests.sha256Hex(data), info["sha256"]?.string, name)
        }
    }

    func testFingerprintIsStableAndIgnoresTheTokenizer() throws {
        let bundle = try AcreBundle.open(Vectors.url("bundle"))
        // what the Python runtime's bundle_fingerprint gives for this bundle (json.dumps, sort_keys)
        XCTAssertEqual(bundle.fingerprint, "2eb6bcae2fa19549ae86f226b4390c36bb8d9a5a9a3d8e5467711d310e9140d9")
        let copy = try Vectors.copy("bundle", self)
        let tokenizer = copy.appendingPathComponent("tokenizer/tokenizer.json")
        try Data("{\"model\": \"stand-ix\"}\n".utf8).write(to: tokenizer)  // same size, other bytes
        let edited = try AcreBundle.open(copy, verifyChecksums: false)
        XCTAssertEqual(edited.fingerprint, bundle.fingerprint)
    }
}
