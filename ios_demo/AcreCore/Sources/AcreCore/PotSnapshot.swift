import Foundation

/// The pot as it stood after ingest, with the document's token ids, so a document is asked again
/// later (another launch) without re-ingest. This port's own little-endian format, `pot.bin` beside
/// spans.bin (the Python runtime writes pot.npz there instead):
///
///     "ACRP", version 1, capacity, layers, kv heads, head dim, document tokens (u32 each)
///     k, v float32 [L, Hkv, P, D]; positions int64 [P]; mask u8 [P]; kind i8 [P]; token int64 [P];
///     document token ids int32 [N]
public enum PotSnapshot {
    static let magic: [UInt8] = [0x41, 0x43, 0x52, 0x50]  // "ACRP"

    public static func encode(_ pot: Pot, documentIds: [Int]) -> Data {
        var head = magic
        for value in [1, pot.capacity, pot.layers, pot.kvHeads, pot.headDim, documentIds.count] {
            var word = [UInt8](repeating: 0, count: 4)
            ByteIO.put32(&word, 0, UInt32(value))
            head += word
        }
        var data = Data(head)
        data.append(Data(buffer: UnsafeBufferPointer(pot.k)))
        data.append(Data(buffer: UnsafeBufferPointer(pot.v)))
        var table = [UInt8](repeating: 0, count: pot.capacity * 18)
        for slot in 0..<pot.capacity {
            ByteIO.put64(&table, 8 * slot, UInt64(bitPattern: Int64(pot.positions[slot])))
            table[8 * pot.capacity + slot] = pot.mask[slot] ? 1 : 0
            table[9 * pot.capacity + slot] = UInt8(bitPattern: pot.kind[slot].rawValue)
            ByteIO.put64(&table, 10 * pot.capacity + 8 * slot, UInt64(bitPattern: Int64(pot.token[slot])))
        }
        data.append(Data(table))
        var ids = [UInt8](repeating: 0, count: 4 * documentIds.count)
        for (i, id) in documentIds.enumerated() { ByteIO.put32(&ids, 4 * i, UInt32(truncatingIfNeeded: id)) }
        data.append(Data(ids))
        return data
    }

    /// Put a snapshot back into `pot` (in place: the pot is never reallocated); returns the document ids.
    public static func restore(_ data: Data, into pot: Pot) throws -> [Int] {
        let bytes = [UInt8](data)
        let headBytes = 4 + 6 * 4
        guard bytes.count >= headBytes, Array(bytes[0..<4]) == magic, ByteIO.u32(bytes, 4) == 1 else {
            throw StoreError("pot snapshot: not an acre pot snapshot")
        }
        let shape = (1...4).map { Int(ByteIO.u32(bytes, 4 + 4 * $0)) }
        guard shape == [pot.capacity, pot.layers, pot.kvHeads, pot.headDim] else {
            throw InputError("the document was ingested with another pot layout; ingest it again")
        }
        let tokens = Int(ByteIO.u32(bytes, 24))
        let kvBytes = pot.k.count * 4
        let tableAt = headBytes + 2 * kvBytes
        let idsAt = tableAt + 18 * pot.capacity
        guard bytes.count == idsAt + 4 * tokens else { throw StoreError("pot snapshot: truncated") }
        _ = UnsafeMutableRawBufferPointer(pot.k).copyBytes(from: bytes[headBytes..<(headBytes + kvBytes)])
        _ = UnsafeMutableRawBufferPointer(pot.v).copyBytes(from: bytes[(headBytes + kvBytes)..<tableAt])
        let p = pot.capacity
        for slot in 0..<p {
            pot.positions[slot] = Int(Int64(bitPattern: ByteIO.u64(bytes, tableAt + 8 * slot)))
            pot.mask[slot] = bytes[tableAt + 8 * p + slot] != 0
            pot.kind[slot] = SlotKind(rawValue: Int8(bitPattern: bytes[tableAt + 9 * p + slot])) ?? .free
            pot.token[slot] = Int(Int64(bitPattern: ByteIO.u64(bytes, tableAt + 10 * p + 8 * slot)))
        }
        return (0..<tokens).map { Int(ByteIO.i32(bytes, idsAt + 4 * $0)) }
    }
}
