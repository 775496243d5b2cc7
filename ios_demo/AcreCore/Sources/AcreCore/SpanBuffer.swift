/// Collects the stream of the document's token K/V into spans of S tokens and appends each full span,
/// with its representative keys, to the L2 store (l2.py SpanBuffer).
final class SpanBuffer {
    let store: SpanStore
    let probeLayers: [Int]
    private var tokens: [Int32]
    private var k: [Float]  // [L, Hkv, S, D]
    private var v: [Float]
    private var fill = 0
    private var start: Int

    init(store: SpanStore, probeLayers: [Int]) {
        self.store = store
        self.probeLayers = probeLayers
        tokens = Array(repeating: 0, count: store.meta.spanTokens)
        k = Array(repeating: 0, count: store.meta.kvCount)
        v = Array(repeating: 0, count: store.meta.kvCount)
        start = store.tokens
    }

    /// Add the first `count` rows of a step's output: ids, and k/v [L, Hkv, width, D].
    func add(ids: [Int], k newK: [Float], v newV: [Float], width: Int, count: Int) throws {
        let meta = store.meta
        let (s, d, groups) = (meta.spanTokens, meta.headDim, meta.layers * meta.kvHeads)
        var done = 0
        while done < count {
            let take = Swift.min(count - done, s - fill)
            for t in 0..<take { tokens[fill + t] = Int32(ids[done + t]) }
            for group in 0..<groups {
                for t in 0..<take {
                    let from = (group * width + done + t) * d
                    let to = (group * s + fill + t) * d
                    for j in 0..<d {
                        k[to + j] = newK[from + j]
                        v[to + j] = newV[from + j]
                    }
                }
            }
            fill += take
            done += take
            if fill == s { try flush() }
        }
    }

    /// Append what is collected as one span (the last one of a document may be partial).
    func flush() throws {
        guard fill > 0 else { return }
        let meta = store.meta
        let (n, s, d) = (fill, meta.spanTokens, meta.headDim)
        func rows(_ source: [Float], layers: [Int]) -> [Float] {  // [len(layers), Hkv, n, D]
            var out: [Float] = []
            out.reserveCapacity(layers.count * meta.kvHeads * n * d)
            for layer in layers {
                for head in 0..<meta.kvHeads {
                    let at = ((layer * meta.kvHeads + head) * s) * d
                    out.append(contentsOf: source[at..<(at + n * d)])
                }
            }
            return out
        }
        let allLayers = Array(0..<meta.layers)
        let reps = Representatives.of(
            rows(k, layers: probeLayers), probeLayers: probeLayers.count, kvHeads: meta.kvHeads, rows: n, headDim: d,
            reps: meta.reps)
        try store.append(
            start: start, tokens: Array(tokens[0..<n]), k: rows(k, layers: allLayers), v: rows(v, layers: allLayers),
            reps: reps)
        start += n
        fill = 0
    }
}
