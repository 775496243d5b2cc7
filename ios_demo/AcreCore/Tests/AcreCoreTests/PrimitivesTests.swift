import Foundation
import XCTest

@testable import AcreCore

final class PrimitivesTests: XCTestCase {
    func testEveryHalfDecodesAndReencodesToItself() {
        for bits in 0...UInt16.max {
            let value = Half.toFloat(bits)
            if value.isNaN { continue }
            XCTAssertEqual(Half.fromFloat(value), bits, "\(bits)")
        }
    }

    func testHalfRoundsToNearestEven() {
        XCTAssertEqual(Half.fromFloat(1 + 0x1p-11), 0x3C00)  // tie between 1 and 1 + 2^-10: even, 1
        XCTAssertEqual(Half.fromFloat(1 + 3 * 0x1p-11), 0x3C02)  // tie: even upward
        XCTAssertEqual(Half.fromFloat(1 + 0x1p-11 + 0x1p-20), 0x3C01)  // past the tie
        XCTAssertEqual(Half.fromFloat(65504), 0x7BFF)
        XCTAssertEqual(Half.fromFloat(65519), 0x7BFF)
        XCTAssertEqual(Half.fromFloat(65520), 0x7C00)  // rounds up into infinity
        XCTAssertEqual(Half.fromFloat(-.infinity), 0xFC00)
        XCTAssertEqual(Half.fromFloat(0x1p-24), 0x0001)  // smallest subnormal
        XCTAssertEqual(Half.fromFloat(0x1p-25), 0x0000)  // tie with 0: even
        XCTAssertEqual(Half.fromFloat(3 * 0x1p-26), 0x0001)
        XCTAssertEqual(Half.fromFloat(-0.0), 0x8000)
        XCTAssertTrue(Half.toFloat(Half.fromFloat(.nan)).isNaN)
        XCTAssertEqual(Half.toFloat(0x3555).bitPattern, Float(0.333251953125).bitPattern)
    }

    func testCRC32IsZlibs() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        let bytes = Array("The quick brown fox".utf8)
        XCTAssertEqual(CRC32.checksum(bytes[4...], previous: CRC32.checksum(bytes[..<4])), CRC32.checksum(bytes))
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
    }

    func testPortableSHA256() {
        func digest(_ text: String) -> String {
            var hasher = PortableSHA256()
            let bytes = Array(text.utf8)
            hasher.update(Array(bytes.prefix(3)))
            hasher.update(Array(bytes.dropFirst(3)))
            return Digests.hex(hasher.finalize())
        }
        XCTAssertEqual(digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = String(repeating: "abcdefghij", count: 20)
        XCTAssertEqual(digest(long), Digests.sha256Hex(Data(long.utf8)))
    }

    func testPairwiseSumFollowsNumpy() {
        // numpy's float32 add.reduce of these 20 values (8 accumulators, then the rest) differs from a
        // plain running sum; the expected bits are numpy's.
        let values = PrimitivesTests.pairwiseInput.map { Float(bitPattern: $0) }
        XCTAssertEqual(NumpySum.sum(values).bitPattern, PrimitivesTests.pairwiseNumpy)
        var running: Float = 0
        for value in values { running += value }
        XCTAssertNotEqual(running.bitPattern, PrimitivesTests.pairwiseNumpy)
    }

    func testJSONReadsAndWritesLikePython() throws {
        let text = "{\"b\": [1, 2.5, -0.0001, 1e-05, \"\\u00e9\\n\"], \"a\": {}, \"c\": [], \"d\": null, \"e\": true}"
        let value = try JSON.parse(text)
        XCTAssertEqual(value["b"]?.array?.count, 5)
        XCTAssertEqual(value["b"]?.array?[4].string, "\u{e9}\n")
        XCTAssertEqual(value.object?.keys, ["b", "a", "c", "d", "e"])
        XCTAssertEqual(value.serialized(indent: nil), text)  // Python's json.dumps(value)
        XCTAssertEqual(
            value.serialized(indent: nil, sortKeys: true),
            "{\"a\": {}, \"b\": [1, 2.5, -0.0001, 1e-05, \"\\u00e9\\n\"], \"c\": [], \"d\": null, \"e\": true}")
        XCTAssertEqual(try JSON.parse("[1,\n 2]").serialized(indent: 2), "[\n  1,\n  2\n]")
        XCTAssertEqual(try JSON.parse("[NaN, -Infinity]").array?[1], .double(-.infinity))
        XCTAssertThrowsError(try JSON.parse("{\"a\": }"))
        XCTAssertThrowsError(try JSON.parse("[1] x"))
    }

    static let pairwiseInput: [UInt32] = [
        0x4201CC0F, 0xC222889A, 0x40D4B84D, 0xC1106F44, 0xC0E64C69, 0xC05B61F4, 0xC2007740, 0xC06C0132,
        0xC15C19E4, 0x42535585, 0x4065C041, 0xC0B36942, 0xC08F1CF7, 0xC129F1A9, 0xC18635AA, 0xC0C6D4D3,
        0x40F53426, 0xC072BDFE, 0x4173A4CF, 0xC04B4F6E,
    ]
    static let pairwiseNumpy: UInt32 = 0xC228_6100
}
