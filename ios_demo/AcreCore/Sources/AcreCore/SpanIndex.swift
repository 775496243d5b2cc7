/// Shape of one node's representative keys: [Lp, Hkv, R, D].
public struct RepsShape: Equatable {
    public let probeLayers: Int
    public let kvHeads: Int
    public let reps: Int
    public let headDim: Int

    public init(probeLayers: Int, kvHeads: Int, reps: Int, headDim: Int) {
        self.probeLayers = probeLayers
        self.kvHeads = kvHeads
        self.reps = reps
        self.headDim = headDim
    }

    public var count: Int { probeLayers * kvHeads * reps * headDim }
}

/// Probe queries [Lp, H, T, D] float32, as the step program returns them in q_probe.
public struct ProbeQueries {
    public var values: [Float]
    public let layers: Int
    public let heads: Int
    public let tokens: Int
    public let headDim: Int

    public init(values: [Float], layers: Int, heads: Int, tokens: Int, headDim: Int) {
        precondition(values.count == layers * heads * tokens * headDim, "queries of the wrong shape")
        self.values = values
        self.layers = layers
        self.heads = heads
        self.tokens = tokens
        self.headDim = headDim
    }

    @inline(__always) func offset(_ layer: Int, _ head: Int, _ token: Int) -> Int {
        ((layer * heads + head) * tokens + token) * headDim
    }

    /// The queries of some tokens only, in the order given.
    public func selecting(tokens picks: [Int]) -> ProbeQueries {
        var out: [Float] = []
        out.reserveCapacity(layers * heads * picks.count * headDim)
        for layer in 0..<layers {
            for head in 0..<heads {
                for t in picks {
                    let at = offset(layer, head, t)
                    out.append(contentsOf: values[at..<(at + headDim)])
                }
            }
        }
        return ProbeQueries(values: out, layers: layers, heads: heads, tokens: picks.count, headDim: headDim)
    }
}

/// Each span is summarised, per probe layer and KV head, by its R keys of largest norm
/// (acre/runtime/span_index.py representatives).
public enum Representatives {
    /// Row indices of the R largest-norm rows among n rows of D floats at `start` in `keys`
    /// (repeated when n < R). Norms are numpy's float32 norms; ties keep the lower row first.
    static func pick(_ keys: UnsafeBufferPointer<Float>, start: Int, rows n: Int, headDim d: Int, reps: Int) -> [Int] {
        let norms = (0..<n).map { NumpySum.norm(keys, start + $0 * d, d) }
        let order = (0..<n).sorted { norms[$0] > norms[$1] || (norms[$0] == norms[$1] && $0 < $1) }
        return (0..<reps).map { order[$0 % n] }
    }

    /// keys [Lp, Hkv, n, D] of one span -> [Lp, Hkv, R, D].
    public static func of(_ keys: [Float], probeLayers: Int, kvHeads: Int, rows n: Int, headDim d: Int, reps: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(probeLayers * kvHeads * reps * d)
        keys.withUnsafeBufferPointer { buffer in
            for group in 0..<(probeLayers * kvHeads) {
                let start = group * n * d
                for row in pick(buffer, start: start, rows: n, headDim: d, reps: reps) {
                    out.append(contentsOf: buffer[(start + row * d)..<(start + row * d + d)])
                }
            }
        }
        return out
    }
}

/// The span index: representative keys per span, grouped into a tree that probe queries search top down
/// (acre/runtime/span_index.py SpanIndex). Coarser nodes keep the R largest-norm keys of their children.
/// Only the retrieval heads score: per head, a node's score is the best dot product of any probe query
/// with any of its keys, standardised over the candidates; the heads' standardised scores are summed.
public final class SpanIndex {
    public let fanout: Int
    public let shape: RepsShape
    /// levels[0] = the spans, levels.last = the coarsest; each [nodes * shape.count] float16 bits.
    public private(set) var levels: [[UInt16]]

    public init(reps: [[UInt16]], shape: RepsShape, fanout: Int = 8) {
        self.fanout = fanout
        self.shape = shape
        var levels = [reps.flatMap { $0 }]
        let (r, d) = (shape.reps, shape.headDim)
        while levels[levels.count - 1].count / shape.count > fanout {
            let child = levels[levels.count - 1]
            let children = child.count / shape.count
            var parents: [UInt16] = []
            for first in stride(from: 0, to: children, by: fanout) {
                let g = Swift.min(fanout, children - first)
                for group in 0..<(shape.probeLayers * shape.kvHeads) {
                    // pool the g * R keys of this (layer, head), child by child, as float32
                    var pooled: [Float] = []
                    pooled.reserveCapacity(g * r * d)
                    for c in 0..<g {
                        let at = (first + c) * shape.count + group * r * d
                        for i in 0..<(r * d) { pooled.append(Half.toFloat(child[at + i])) }
                    }
                    let picks = pooled.withUnsafeBufferPointer {
                        Representatives.pick($0, start: 0, rows: g * r, headDim: d, reps: r)
                    }
                    for row in picks {  // the picked keys' float16 bits, unchanged
                        let c = row / r
                        let at = (first + c) * shape.count + group * r * d + (row % r) * d
                        parents.append(contentsOf: child[at..<(at + d)])
                    }
                }
            }
            levels.append(parents)
        }
        self.levels = levels
    }

    public func nodeCount(_ level: Int) -> Int { levels[level].count / shape.count }

    /// Bytes the index holds.
    public var nbytes: Int { levels.reduce(0) { $0 + 2 * $1.count } }

    /// Score of every span; -infinity for spans the tree search did not reach. `heads` are
    /// (probe-layer index, query head) pairs.
    public func scores(_ queries: ProbeQueries, heads: [(Int, Int)], beam: Int = 8, tree: Bool = true) -> [Double] {
        let spans = nodeCount(0)
        var out = [Double](repeating: -.infinity, count: spans)
        if spans == 0 { return out }
        var candidates = Array(0..<spans)
        if tree && levels.count > 1 {
            candidates = Array(0..<nodeCount(levels.count - 1))
            for depth in stride(from: levels.count - 1, to: 0, by: -1) {
                let score = headScores(queries, level: depth, nodes: candidates, heads: heads)
                let keep = Selection.ranked(score).prefix(beam).map { candidates[$0] }
                let below = nodeCount(depth - 1)
                var next: [Int] = []
                for node in keep { next += Array((node * fanout)..<Swift.min((node + 1) * fanout, below)) }
                candidates = next.sorted()
            }
        }
        let final = headScores(queries, level: 0, nodes: candidates, heads: heads)
        for (i, node) in candidates.enumerated() { out[node] = final[i] }
        return out
    }

    /// Summed standardised best-match score of each of `nodes` at `level` (span_index.py head_scores).
    public func headScores(_ queries: ProbeQueries, level: Int, nodes: [Int], heads: [(Int, Int)]) -> [Double] {
        let groups = queries.heads / shape.kvHeads
        let (r, d) = (shape.reps, shape.headDim)
        let keys = levels[level]
        var total = [Double](repeating: 0, count: nodes.count)
        for (layer, head) in heads {
            let kvHead = head / groups
            var best = [Float](repeating: -.infinity, count: nodes.count)
            for (i, node) in nodes.enumerated() {
                let base = node * shape.count + (layer * shape.kvHeads + kvHead) * r * d
                var key = [Float](repeating: 0, count: r * d)
                for j in 0..<(r * d) { key[j] = Half.toFloat(keys[base + j]) }
                for t in 0..<queries.tokens {
                    let q = queries.offset(layer, head, t)
                    for rep in 0..<r {
                        var dot: Float = 0
                        for j in 0..<d { dot += queries.values[q + j] * key[rep * d + j] }
                        best[i] = Swift.max(best[i], dot)
                    }
                }
            }
            let (mean, std) = NumpySum.meanStd(best)
            let spread = std + Float(1e-6)
            for i in 0..<nodes.count { total[i] += Double((best[i] - mean) / spread) }
        }
        return total
    }
}
