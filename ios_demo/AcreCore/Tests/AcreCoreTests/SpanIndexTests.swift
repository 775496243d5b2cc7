import Foundation
import XCTest

@testable import AcreCore

final class SpanIndexTests: XCTestCase {
    private func vector() throws -> JSON {
        try XCTUnwrap(Vectors.json("selection.json")["span_index"])
    }

    private func makeIndex(_ v: JSON) throws -> SpanIndex {
        let shape = ints(v["reps_shape"])  // [spans, Lp, Hkv, R, D]
        XCTAssertEqual(shape.count, 5)
        let reps = RepsShape(probeLayers: shape[1], kvHeads: shape[2], reps: shape[3], headDim: shape[4])
        let values = doubles(v["reps"]).map { Half.fromFloat(Float($0)) }  // float16 values: exact
        XCTAssertEqual(values.count, shape[0] * reps.count)
        let spans = (0..<shape[0]).map { Array(values[($0 * reps.count)..<(($0 + 1) * reps.count)]) }
        let fanout = try XCTUnwrap(v["fanout"]?.pythonInt)
        return SpanIndex(reps: spans, shape: reps, fanout: fanout)
    }

    private func makeQueries(_ v: JSON) -> ProbeQueries {
        let shape = ints(v["queries_shape"])  // [Lp, H, T, D]
        return ProbeQueries(
            values: doubles(v["queries"]).map { Float($0) }, layers: shape[0], heads: shape[1], tokens: shape[2],
            headDim: shape[3])
    }

    private func makeHeads(_ v: JSON) -> [(Int, Int)] {
        (v["heads"]?.array ?? []).map { pair in (ints(pair)[0], ints(pair)[1]) }
    }

    func testCoarserLevelsAreExact() throws {
        let v = try vector()
        let index = try makeIndex(v)
        XCTAssertEqual(index.levels.indices.map { index.nodeCount($0) }, ints(v["levels"]))
        let expected = try XCTUnwrap(v["level_reps"]?.array)
        XCTAssertEqual(expected.count, index.levels.count - 1)
        for (depth, level) in expected.enumerated() {
            XCTAssertEqual(
                floatBits(index.levels[depth + 1].map(Half.toFloat)), floatBits(level), "level \(depth + 1)")
        }
    }

    func testTreeSearchReachesTheStatedSpansWithTheirScores() throws {
        let v = try vector()
        let index = try makeIndex(v)
        let tolerance = try XCTUnwrap(v["tolerance"]?.number)
        let beam = try XCTUnwrap(v["beam"]?.pythonInt)
        let tree = index.scores(makeQueries(v), heads: makeHeads(v), beam: beam, tree: true)
        let expected = doublesOrMinusInfinity(v["tree_scores"])
        XCTAssertEqual(tree.count, expected.count)
        XCTAssertEqual(tree.map { $0.isFinite }, expected.map { $0.isFinite }, "the reached set")
        for (i, (got, want)) in zip(tree, expected).enumerated() where want.isFinite {
            XCTAssertEqual(got, want, accuracy: tolerance, "span \(i)")
        }
    }

    func testFlatScoresEverySpan() throws {
        let v = try vector()
        let index = try makeIndex(v)
        let tolerance = try XCTUnwrap(v["tolerance"]?.number)
        let flat = index.scores(makeQueries(v), heads: makeHeads(v), tree: false)
        let expected = doubles(v["flat_scores"])
        XCTAssertEqual(flat.count, expected.count)
        for (i, (got, want)) in zip(flat, expected).enumerated() {
            XCTAssertEqual(got, want, accuracy: tolerance, "span \(i)")
        }
    }

    func testRepresentativesKeepTheLargestNormKeysAndRepeatWhenShort() {
        // one layer, one head, 3 keys of D = 2: norms 1, 5, 5 -> the tie keeps the lower row first
        let keys: [Float] = [1, 0, 3, 4, 0, 5]
        XCTAssertEqual(
            Representatives.of(keys, probeLayers: 1, kvHeads: 1, rows: 3, headDim: 2, reps: 2), [3, 4, 0, 5])
        XCTAssertEqual(
            Representatives.of(keys, probeLayers: 1, kvHeads: 1, rows: 3, headDim: 2, reps: 4), [3, 4, 0, 5, 1, 0, 3, 4])
    }

    func testAnEmptyIndexScoresNothing() {
        let index = SpanIndex(reps: [], shape: RepsShape(probeLayers: 1, kvHeads: 1, reps: 1, headDim: 2))
        let q = ProbeQueries(values: [1, 0], layers: 1, heads: 1, tokens: 1, headDim: 2)
        XCTAssertEqual(index.scores(q, heads: [(0, 0)]), [])
    }
}
