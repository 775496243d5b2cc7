import Foundation

/// Next-token choice: greedy, or temperature with nucleus (top-p) filtering (acre/runtime/sampling.py;
/// the random stream is this port's own, so sampled answers differ from Python's, greedy ones do not).
public struct Sampler {
    private var state: UInt64

    public init(seed: UInt64 = 0) { state = seed }

    /// The first index of the largest logit (numpy's argmax).
    public static func greedy(_ logits: [Float]) -> Int {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best
    }

    public mutating func sample(_ logits: [Float], temperature: Double, topP: Double) -> Int {
        if temperature <= 0 { return Sampler.greedy(logits) }
        let scaled = logits.map { Double($0) / temperature }
        let top = scaled.max() ?? 0
        var probs = scaled.map { exp($0 - top) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        let order = Selection.ranked(probs)
        var cumulative = 0.0
        var keep: [Int] = []
        for i in order {  // the smallest prefix whose mass reaches top_p (at least the top token)
            keep.append(i)
            cumulative += probs[i]
            if cumulative >= topP { break }
        }
        let mass = keep.reduce(0.0) { $0 + probs[$1] }
        var draw = nextUniform() * mass
        for i in keep {
            draw -= probs[i]
            if draw < 0 { return i }
        }
        return keep[keep.count - 1]
    }

    private mutating func nextUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
}
