import Foundation
import XCTest

@testable import AcreCore

final class SelectionTests: XCTestCase {
    private var selection: JSON!

    override func setUpWithError() throws {
        selection = try Vectors.json("selection.json")
    }

    func testLayoutsMatchLayoutPlan() throws {
        let cases = try XCTUnwrap(selection["layouts"]?.array)
        XCTAssertEqual(cases.count, 12)
        for item in cases {
            let name = try XCTUnwrap(item["policy"]?.string)
            let policy = try Policy.named(name)
            let capacity = try XCTUnwrap(item["capacity"]?.pythonInt)
            let chunk = try XCTUnwrap(item["chunk"]?.pythonInt)
            let span = try XCTUnwrap(item["span"]?.pythonInt)
            let what = item.serialized(indent: nil)
            if let expected = item["layout"] {
                let layout = try Layout.plan(policy, capacity: capacity, chunk: chunk, span: span)
                let got = [layout.sink, layout.l1, layout.recent, layout.refill, layout.question]
                let want = ["sink", "l1", "recent", "refill", "question"].map { expected[$0]?.pythonInt ?? -1 }
                XCTAssertEqual(got, want, what)
                XCTAssertEqual(layout.total, capacity, what)
            } else {
                XCTAssertEqual(item["error"]?.string, "too small", what)
                XCTAssertThrowsError(try Layout.plan(policy, capacity: capacity, chunk: chunk, span: span), what) {
                    XCTAssertTrue($0 is InputError, what)
                }
            }
        }
    }

    func testFullPolicyGivesTheWholePotToOneRegion() throws {
        let full = try Policy.named("full")
        let layout = try Layout.plan(full, capacity: 1024, chunk: 128, span: 64)
        XCTAssertEqual(layout, Layout(sink: 0, l1: 0, recent: 1024, refill: 0, question: 0))
        XCTAssertThrowsError(try Policy.named("nope"))
    }

    func testBudgetsMatchSlotsForBudget() throws {
        let smollm2 = Geometry(
            layers: 30, heads: 9, kvHeads: 3, headDim: 64, hidden: 576, intermediate: 1536, vocab: 49152,
            ropeTheta: 100000, rmsEps: 1e-5, window: 8192)
        let cases = try XCTUnwrap(selection["budgets"]?.array)
        XCTAssertEqual(cases.count, 5)
        for item in cases {
            XCTAssertEqual(item["geometry"]?.string, "smollm2")
            let budget = try XCTUnwrap(item["budget_bytes"]?.pythonInt)
            let dtype = try XCTUnwrap(item["kv_dtype"]?.string)
            if let slots = item["slots"]?.pythonInt {
                XCTAssertEqual(try Budget.slots(for: budget, geometry: smollm2, kvDtype: dtype), slots, "\(budget)")
            } else {
                XCTAssertThrowsError(try Budget.slots(for: budget, geometry: smollm2, kvDtype: dtype), "\(budget)") {
                    XCTAssertTrue($0 is InputError)
                }
            }
        }
    }

    func testCombineScoresAndChooseSpansMatchBitForBit() throws {
        let cases = try XCTUnwrap(selection["choose_spans"]?.array)
        XCTAssertEqual(cases.count, 18)
        var withLexical = 0
        for (n, item) in cases.enumerated() {
            let attention = item["attention"].flatMap { $0.isNull ? nil : doubles($0) }
            let indexZ = item["index_z"].flatMap { $0.isNull ? nil : doublesOrMinusInfinity($0) }
            let lexical = item["lexical"].flatMap { $0.isNull ? nil : doubles($0) }  // absent or null: not used
            let expected = doubles(item["scores"])
            let scores = try Selection.combineScores(attention: attention, indexZ: indexZ, lexical: lexical)
            XCTAssertEqual(scores.map { $0.bitPattern }, expected.map { $0.bitPattern }, "case \(n) scores")
            if lexical != nil {  // the lexical part counts: without it the scores differ
                withLexical += 1
                XCTAssertNotEqual(try Selection.combineScores(attention: attention, indexZ: indexZ), expected, "case \(n)")
            }
            let budget = try XCTUnwrap(item["budget"]?.pythonInt)
            let mass = try XCTUnwrap(item["mass"]?.number)
            let minSpans = try XCTUnwrap(item["min_spans"]?.pythonInt)
            let neighbors = try XCTUnwrap(item["neighbors"]?.pythonInt)
            let chosen = Selection.chooseSpans(
                scores, budget: budget, mass: mass, minSpans: minSpans, neighbors: neighbors)
            XCTAssertEqual(chosen, ints(item["chosen"]), "case \(n) chosen")
        }
        XCTAssertEqual(withLexical, 2)
        XCTAssertThrowsError(try Selection.combineScores(attention: nil, indexZ: nil))
    }

    func testLexicalScoresMatchWithinTolerance() throws {
        let cases = try XCTUnwrap(selection["lexical"]?.array)
        XCTAssertEqual(cases.count, 3)
        for (n, item) in cases.enumerated() {
            let spanTokens = try XCTUnwrap(item["span_tokens"]?.pythonInt)
            let index = LexicalIndex(documentIds: ints(item["document_ids"]), spanTokens: spanTokens)
            let got = index.scores(ints(item["query_ids"]))
            let want = doubles(item["scores"])
            let tolerance = try XCTUnwrap(item["tolerance"]?.number)
            XCTAssertEqual(got.count, want.count, "case \(n)")
            for (i, (a, b)) in zip(got, want).enumerated() {
                XCTAssertEqual(a, b, accuracy: tolerance, "case \(n) span \(i)")
            }
        }
    }

    func testRefillPlacement() throws {
        let cases = try XCTUnwrap(selection["refill_placement"]?.array)
        XCTAssertEqual(cases.count, 3)
        for item in cases {
            let placed = try Selection.refillPlacement(
                spans: ints(item["spans"]), starts: ints(item["starts"]), lengths: ints(item["lengths"]),
                resident: Set(ints(item["resident"])), freeSlots: ints(item["free_slots"]))
            XCTAssertEqual(placed.slots, ints(item["slots"]))
            XCTAssertEqual(placed.tokens, ints(item["tokens"]))
        }
        XCTAssertThrowsError(
            try Selection.refillPlacement(spans: [0], starts: [0], lengths: [10], resident: [], freeSlots: [1, 2]))
    }
}
