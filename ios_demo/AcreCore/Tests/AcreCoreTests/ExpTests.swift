import Foundation
import XCTest

@testable import AcreCore

/// Exp.exp is correctly rounded: checked against the 500 values of the JVM core's exp_cases.txt (x and
/// exp(x) as float.hex, computed with 60-digit decimals), as ExpTest.java checks Exp.java.
final class ExpTests: XCTestCase {
    func testMatchesCorrectlyRoundedValues() throws {
        let text = try String(contentsOf: Vectors.expCases, encoding: .utf8)
        var count = 0
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ")
            XCTAssertEqual(fields.count, 2, String(line))
            // Double(String) reads hexadecimal floats such as -0x1.2185ddb54266ep+4 exactly
            let x = try XCTUnwrap(Double(String(fields[0])), String(line))
            let want = try XCTUnwrap(Double(String(fields[1])), String(line))
            XCTAssertEqual(Exp.exp(x).bitPattern, want.bitPattern, "exp(\(x))")
            count += 1
        }
        XCTAssertEqual(count, 500)
    }

    func testEdges() {
        XCTAssertEqual(Exp.exp(0.0), 1.0)
        let e: Double = 2.718281828459045  // Math.E: the double nearest e
        XCTAssertEqual(Exp.exp(1.0).bitPattern, e.bitPattern)
        XCTAssertEqual(Exp.exp(-.infinity), 0.0)
        XCTAssertEqual(Exp.exp(710), .infinity)
        XCTAssertTrue(Exp.exp(.nan).isNaN)
    }
}
