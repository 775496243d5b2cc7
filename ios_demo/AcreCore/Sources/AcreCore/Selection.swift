import Foundation

/// Which spans a question refills, and where they go in the pot: pure functions of numbers
/// (acre/runtime/selection.py). Scores are Double; sums run in the order stated, so the results are
/// the Python runtime's bit for bit.
public enum Selection {
    /// One score per span from (a) the question's attention mass on each span's L1 entries normalised to
    /// sum 1, (b) the span index's scores (-infinity where the tree search did not reach) as a softmax and
    /// (c) lexical BM25 scores, standardised, as a softmax: the mean of the parts given, summed in that order.
    public static func combineScores(attention: [Double]?, indexZ: [Double]?, lexical: [Double]? = nil) throws -> [Double] {
        var parts: [[Double]] = []
        if let attention { parts.append(normalised(attention)) }
        if let indexZ { parts.append(softmax(indexZ)) }
        if let lexical { parts.append(softmax(standardised(lexical))) }
        guard let first = parts.first else {
            throw InputError("no span scores: need attention, index or lexical scores")
        }
        if parts.count == 1 { return first }
        guard parts.allSatisfy({ $0.count == first.count }) else { throw InputError("span scores differ in length") }
        var total = first
        for part in parts.dropFirst() {  // sequential, in the order (a), (b), (c)
            for i in total.indices { total[i] += part[i] }
        }
        return total.map { $0 / Double(parts.count) }
    }

    /// exp(z - max) over its sequential sum, with the correctly rounded exp: the same bits everywhere.
    static func softmax(_ z: [Double]) -> [Double] {
        guard let top = z.max() else { return [] }
        let b = z.map { Exp.exp($0 - top) }
        var total = 0.0
        for value in b { total += value }
        return b.map { $0 / total }
    }

    /// (x - mean) / std (population std, sequential sums); all zeros when x is constant.
    static func standardised(_ x: [Double]) -> [Double] {
        guard !x.isEmpty else { return [] }
        var sum = 0.0
        for value in x { sum += value }
        let mean = sum / Double(x.count)
        let d = x.map { $0 - mean }
        var squares = 0.0
        for value in d { squares += value * value }
        let std = (squares / Double(x.count)).squareRoot()
        return std > 0 ? d.map { $0 / std } : d.map { _ in 0.0 }
    }

    /// x divided by its sequential sum (np.cumsum(x)[-1]) when that sum is positive, else x.
    static func normalised(_ x: [Double]) -> [Double] {
        var total = 0.0
        for value in x { total += value }
        return total > 0 ? x.map { $0 / total } : x
    }

    /// Spans ranked by score, highest first; ties keep the lower index first (numpy's stable argsort of -x).
    static func ranked(_ scores: [Double]) -> [Int] {
        scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    }

    /// The spans to refill, in document order. Rank the spans with a positive score, take the fewest
    /// whose running sum reaches `mass` of their total (at least `minSpans`, at most `budget`); each then
    /// brings its neighbours (1 before, 1 after, 2 before, ...) while the budget lasts.
    public static func chooseSpans(_ scores: [Double], budget: Int, mass: Double, minSpans: Int, neighbors: Int) -> [Int] {
        let order = ranked(scores).filter { scores[$0] > 0 }
        guard !order.isEmpty, budget >= 1 else { return [] }
        var cumulative: [Double] = []
        var running = 0.0
        for span in order {
            running += scores[span]
            cumulative.append(running)
        }
        let total = cumulative[cumulative.count - 1]
        // searchsorted(cumulative / total, mass, side="left"): how many shares fall below mass
        let below = cumulative.firstIndex { $0 / total >= mass } ?? cumulative.count
        let count = Swift.min(Swift.max(below + 1, minSpans), budget, order.count)
        var chosen: [Int] = []
        for span in order.prefix(count) {
            var near = [span]
            if neighbors > 0 {
                for r in 1...neighbors { near += [span - r, span + r] }
            }
            for candidate in near where chosen.count < budget && candidate >= 0 && candidate < scores.count {
                if !chosen.contains(candidate) { chosen.append(candidate) }
            }
        }
        return chosen.sorted()
    }

    /// (slots, document tokens) for refilling `spans` in document order into `freeSlots`, in slot order,
    /// skipping tokens already resident in the pot (sinks, recent window).
    public static func refillPlacement(
        spans: [Int], starts: [Int], lengths: [Int], resident: Set<Int>, freeSlots: [Int]
    ) throws -> (slots: [Int], tokens: [Int]) {
        var tokens: [Int] = []
        for span in spans.sorted() {
            for token in starts[span]..<(starts[span] + lengths[span]) where !resident.contains(token) {
                tokens.append(token)
            }
        }
        guard tokens.count <= freeSlots.count else {
            throw InputError("\(tokens.count) refill tokens for \(freeSlots.count) free slots")
        }
        return (Array(freeSlots.prefix(tokens.count)), tokens)
    }
}
