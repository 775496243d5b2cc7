import Foundation

/// Memory budget: how many pot slots a RAM budget buys (acre/budget.py).
public enum Budget {
    public static let slotAlign = 64  // pots are whole multiples of this many slots
    public static let minSlots = 256  // below this the acre layout has no room for its regions

    public static func itemBytes(_ dtype: String) throws -> Int {
        switch dtype {
        case "float32": return 4
        case "float16", "bfloat16": return 2
        case "float64": return 8
        default: throw InputError("unknown K/V dtype '\(dtype)'")
        }
    }

    /// RAM one pot slot costs: K and V of every layer, plus its position, mask, kind and token.
    public static func slotBytes(_ geometry: Geometry, kvDtype: String = "float32") throws -> Int {
        let item = try itemBytes(kvDtype)
        return geometry.layers * geometry.kvHeads * geometry.headDim * 2 * item + 8 + 1 + 1 + 8
    }

    public static func slots(for budgetBytes: Int, geometry: Geometry, kvDtype: String = "float32") throws -> Int {
        let perSlot = try slotBytes(geometry, kvDtype: kvDtype)
        let slots = budgetBytes / perSlot / slotAlign * slotAlign
        if slots < minSlots {
            let mib = Double(1 << 20)
            throw InputError(
                String(
                    format: "a budget of %.1f MiB holds %ld pot slots (%ld bytes each); at least %ld are needed, i.e. %.1f MiB",
                    Double(budgetBytes) / mib, budgetBytes / perSlot, perSlot, minSlots, Double(minSlots * perSlot) / mib))
        }
        let room = geometry.window - 128
        let aligned = room - ((room % slotAlign) + slotAlign) % slotAlign  // Python's floor modulo
        return Swift.min(slots, aligned)
    }
}
