/// Policies: what the pot keeps while a document streams in, and what it refills for a question
/// (acre/runtime/policies.py).
///
///     full       every token in the pot (the reference; the document must fit)
///     streaming  attention sinks + the most recent tokens
///     infinipot  sinks + L1 distilled by CCD (catalyst attention and novelty) + recent; no refill
///     acre       infinipot's L1, plus query-guided refill of whole spans from L2 (the default)
public enum RefillMode: String {
    case reencode  // recompute the refilled spans' K/V in the context they are shown in (default)
    case reuse  // copy their stored K/V from L2
}

public struct Policy: Equatable {
    public var name: String
    public var bounded = true  // false: the pot must hold the whole document
    public var l1 = false  // keep a CCD-distilled L1
    public var refill = false  // refill spans from L2 per question
    public var useAttention = true  // question attention on the spans' L1 entries
    public var useIndex = true  // probe queries against the span index
    public var useProbes = true  // ActQKV probe-query selection by activation bias
    public var useTree = true  // top-down tree search (else every span is scored)
    public var useLexical = true  // BM25 of the question's token ids against each span's
    public var noveltyWeight = 0.2  // CCD: importance = (1 - w) * catalyst attention + w * novelty
    public var mass = 0.9  // dynamic cut: the fewest spans holding this share of the scores
    public var minSpans = 2
    public var neighbors = 1  // also refill this many spans on each side of a chosen one
    public var refillMode = RefillMode.reencode

    public init(name: String, bounded: Bool = true, l1: Bool = false, refill: Bool = false) {
        self.name = name
        self.bounded = bounded
        self.l1 = l1
        self.refill = refill
    }

    public static let names = ["full", "streaming", "infinipot", "acre"]

    public static func named(_ name: String) throws -> Policy {
        switch name {
        case "full": return Policy(name: "full", bounded: false)
        case "streaming": return Policy(name: "streaming")
        case "infinipot": return Policy(name: "infinipot", l1: true)
        case "acre": return Policy(name: "acre", l1: true, refill: true)
        default:
            throw InputError("unknown policy '\(name)'; choose one of \(names.joined(separator: ", "))")
        }
    }
}

/// How many pot slots each region gets; the regions partition the pot (policies.py Layout.plan).
public struct Layout: Equatable {
    public let sink: Int
    public let l1: Int
    public let recent: Int
    public let refill: Int
    public let question: Int

    public init(sink: Int, l1: Int, recent: Int, refill: Int, question: Int) {
        self.sink = sink
        self.l1 = l1
        self.recent = recent
        self.refill = refill
        self.question = question
    }

    public var total: Int { sink + l1 + recent + refill + question }

    public static func plan(_ policy: Policy, capacity: Int, chunk: Int, span: Int) throws -> Layout {
        if !policy.bounded {  // full: one shared pool, see Session
            return Layout(sink: 0, l1: 0, recent: capacity, refill: 0, question: 0)
        }
        let question = Swift.max(96, capacity * 3 / 16)
        let sink = Swift.min(32, capacity / 16)
        var recent = chunk
        let rest = capacity - question - sink - recent
        if rest < (policy.refill ? span : 0) + (policy.l1 ? 16 : 0) || rest < 0 {
            throw InputError(
                "a pot of \(capacity) slots is too small for the '\(policy.name)' policy with chunk \(chunk): "
                    + "it needs room for the question (\(question)), sinks (\(sink)), the recent window (\(recent))"
                    + (policy.refill ? " and at least one span (\(span))" : ""))
        }
        var refill = policy.refill ? (rest * 4 / 7) / span * span : 0
        refill = policy.refill ? Swift.max(refill, span) : 0
        let l1 = policy.l1 ? rest - refill : 0
        recent += policy.l1 ? 0 : rest  // streaming spends the rest on a longer recent window
        return Layout(sink: sink, l1: l1, recent: recent, refill: refill, question: question)
    }
}
