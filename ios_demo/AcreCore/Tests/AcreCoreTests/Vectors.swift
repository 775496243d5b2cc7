import Foundation
import XCTest

@testable import AcreCore

/// The shared test vectors in tests/vectors of the repository (written by the Python runtime,
/// `python -m tests.make_vectors`, and kept current by tests/test_vectors.py), found from this file.
enum Vectors {
    /// The repository, from this file's path (ios_demo/AcreCore/Tests/AcreCoreTests/Vectors.swift).
    static let repository: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // -> ios_demo/AcreCore/Tests/AcreCoreTests
        .deletingLastPathComponent()  // -> ios_demo/AcreCore/Tests
        .deletingLastPathComponent()  // -> ios_demo/AcreCore
        .deletingLastPathComponent()  // -> ios_demo
        .deletingLastPathComponent()  // -> the repository

    static let root: URL = repository
        .appendingPathComponent("tests")
        .appendingPathComponent("vectors")

    /// exp(x) correctly rounded for 500 x, the JVM core's test resource (written by Python decimal).
    static let expCases: URL = repository
        .appendingPathComponent("android_demo/core/src/test/resources/exp_cases.txt")

    static func url(_ name: String) -> URL { root.appendingPathComponent(name) }

    static func json(_ name: String) throws -> JSON { try JSON.read(url(name)) }

    /// A fresh temporary directory, removed when the test ends.
    static func temporaryDirectory(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("acre-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// A copy of a vector directory (bundle/, l2_float16/, ...) to damage or write over.
    static func copy(_ name: String, _ test: XCTestCase) throws -> URL {
        let target = try temporaryDirectory(test).appendingPathComponent(name)
        try FileManager.default.copyItem(at: url(name), to: target)
        return target
    }
}

// MARK: - reading vector values

func ints(_ json: JSON?) -> [Int] { (json?.array ?? []).map { $0.pythonInt! } }

func doubles(_ json: JSON?) -> [Double] { (json?.array ?? []).map { $0.number! } }

/// null -> -infinity (a span the tree search did not reach)
func doublesOrMinusInfinity(_ json: JSON?) -> [Double] {
    (json?.array ?? []).map { $0.isNull ? -Double.infinity : $0.number! }
}

func floatBits(_ values: [Float]) -> [UInt32] { values.map { $0.bitPattern } }

/// float32 bits of vector values (float64 renderings of float32 or float16 values: exact).
func floatBits(_ json: JSON?) -> [UInt32] { doubles(json).map { Float($0).bitPattern } }

/// sha256 of float32 little-endian bytes, as Python's hashlib over np.ascontiguousarray(x, "<f4").
func sha256OfFloats(_ values: [Float]) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(values.count * 4)
    for value in values {
        let bits = value.bitPattern
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt32(shift))) }
    }
    return Digests.sha256Hex(Data(bytes))
}
