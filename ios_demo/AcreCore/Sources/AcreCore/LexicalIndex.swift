import Foundation

/// Lexical span scores (acre/runtime/lexical.py): BM25 of the question's token ids against each span's
/// token ids, the third span signal beside attention and the span index. Needs no model and no flash
/// reads: the document's ids are in the session. One (token, span, count) triple per distinct token of
/// each span, sorted by token, then span.
public struct LexicalIndex {
    static let k1 = 1.2
    static let b = 0.75

    public let spans: Int
    private let token: [Int32]
    private let span: [Int32]
    private let count: [Int32]
    private let norm: [Double]

    public init(documentIds ids: [Int], spanTokens: Int) {
        let spans = (ids.count + spanTokens - 1) / spanTokens
        let keys = ids.indices.map { ids[$0] * spans + $0 / spanTokens }.sorted()
        var (token, span, count) = ([Int32](), [Int32](), [Int32]())
        for (i, key) in keys.enumerated() {
            if i > 0 && key == keys[i - 1] {
                count[count.count - 1] += 1
            } else {
                token.append(Int32(key / spans))
                span.append(Int32(key % spans))
                count.append(1)
            }
        }
        var lengths = [Double](repeating: Double(spanTokens), count: spans)
        if spans > 0 { lengths[spans - 1] = Double(ids.count - spanTokens * (spans - 1)) }
        var total = 0.0
        for length in lengths { total += length }  // whole numbers: exact in any order
        let mean = total / Double(spans)
        self.spans = spans
        self.token = token
        self.span = span
        self.count = count
        norm = lengths.map { LexicalIndex.k1 * (1 - LexicalIndex.b + LexicalIndex.b * $0 / mean) }
    }

    public var nbytes: Int { 12 * token.count + 8 * norm.count }

    /// BM25 score of every span for the distinct query tokens (tokens the document lacks add 0).
    public func scores(_ queryIds: [Int]) -> [Double] {
        var out = [Double](repeating: 0, count: spans)
        for t in Set(queryIds).sorted() {
            let (lo, hi) = (lowerBound(t), lowerBound(t + 1))
            if lo == hi { continue }
            let df = hi - lo
            let idf = log((Double(spans - df) + 0.5) / (Double(df) + 0.5) + 1)
            for i in lo..<hi {
                let tf = Double(count[i])
                out[Int(span[i])] += idf * tf * (LexicalIndex.k1 + 1) / (tf + norm[Int(span[i])])
            }
        }
        return out
    }

    /// The first entry whose token is >= t (np.searchsorted, side "left").
    private func lowerBound(_ t: Int) -> Int {
        var (lo, hi) = (0, token.count)
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(token[mid]) < t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
