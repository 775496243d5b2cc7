/// What a pot slot holds (acre/runtime/pot.py SlotKind).
public enum SlotKind: Int8 {
    case free = 0
    case sink = 1
    case l1 = 2
    case refill = 3
    case recent = 4
    case question = 5  // the question and the answer being decoded
}

/// The pot: the bounded RAM key/value buffer the step program attends to (acre/runtime/pot.py).
///
/// Allocated once at the bundle's capacity and never grown: policies only write slots, clear them,
/// and read the slot table. Keys are stored un-rotated; `positions` is what the model sees. K and V
/// are float32 [L, Hkv, P, D] in memory owned here, so an engine can hand them to the step program
/// without a copy.
public final class Pot {
    public let capacity: Int
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    public let k: UnsafeMutableBufferPointer<Float>
    public let v: UnsafeMutableBufferPointer<Float>
    public var positions: [Int]
    public var mask: [Bool]
    public var kind: [SlotKind]
    public var token: [Int]  // the document token a slot came from, -1 if none

    public init(geometry: Geometry, capacity: Int) {
        self.capacity = capacity
        layers = geometry.layers
        kvHeads = geometry.kvHeads
        headDim = geometry.headDim
        let count = geometry.layers * geometry.kvHeads * capacity * geometry.headDim
        k = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        k.initialize(repeating: 0)
        v = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        v.initialize(repeating: 0)
        positions = Array(repeating: 0, count: capacity)
        mask = Array(repeating: false, count: capacity)
        kind = Array(repeating: .free, count: capacity)
        token = Array(repeating: -1, count: capacity)
    }

    deinit {
        k.deallocate()
        v.deallocate()
    }

    /// RAM it holds: K and V, and per slot its position, mask, kind and token (as pot.py counts it).
    public var nbytes: Int { 2 * k.count * MemoryLayout<Float>.size + capacity * (8 + 1 + 1 + 8) }

    public var used: Int { mask.reduce(0) { $0 + ($1 ? 1 : 0) } }

    /// Offset of (layer, kv head, slot) in k and v.
    @inline(__always) public func offset(_ layer: Int, _ head: Int, _ slot: Int) -> Int {
        ((layer * kvHeads + head) * capacity + slot) * headDim
    }

    /// Write rows of a [L, Hkv, width, D] source into slots: slot i gets row rows[i].
    public func write(
        slots: [Int], k source: [Float], v sourceV: [Float], rows: [Int], width: Int,
        positions rowPositions: [Int]? = nil, kind slotKind: SlotKind, tokens: [Int]? = nil
    ) {
        writeKV(slots: slots, k: source, v: sourceV, rows: rows, width: width)
        for (i, slot) in slots.enumerated() {
            positions[slot] = rowPositions?[i] ?? 0
            mask[slot] = true
            kind[slot] = slotKind
            token[slot] = tokens?[i] ?? -1
        }
    }

    /// Only the K and V of slots (their kind, token, position and mask stay as they are).
    public func writeKV(slots: [Int], k source: [Float], v sourceV: [Float], rows: [Int], width: Int) {
        precondition(slots.count == rows.count, "one source row per slot")
        for layer in 0..<layers {
            for head in 0..<kvHeads {
                let base = (layer * kvHeads + head) * width
                for (i, slot) in slots.enumerated() {
                    let from = (base + rows[i]) * headDim
                    let to = offset(layer, head, slot)
                    for d in 0..<headDim {
                        k[to + d] = source[from + d]
                        v[to + d] = sourceV[from + d]
                    }
                }
            }
        }
    }

    /// Copy slots to other slots (K, V and token) and give them a kind (CCD moving entries into L1).
    public func copy(from sources: [Int], to targets: [Int], kind slotKind: SlotKind) {
        precondition(sources.count == targets.count)
        let movedTokens = sources.map { token[$0] }
        for layer in 0..<layers {
            for head in 0..<kvHeads {
                for (source, target) in zip(sources, targets) {
                    let from = offset(layer, head, source)
                    let to = offset(layer, head, target)
                    for d in 0..<headDim {
                        k[to + d] = k[from + d]
                        v[to + d] = v[from + d]
                    }
                }
            }
        }
        for (i, target) in targets.enumerated() {
            positions[target] = 0
            mask[target] = true
            kind[target] = slotKind
            token[target] = movedTokens[i]
        }
    }

    public func clear(_ slots: [Int]) {
        for slot in slots {
            mask[slot] = false
            kind[slot] = .free
            token[slot] = -1
        }
    }

    /// Slots holding any of `kinds`, in slot order.
    public func slots(of kinds: Set<SlotKind>) -> [Int] {
        (0..<capacity).filter { kinds.contains(kind[$0]) }
    }
}
