import Foundation

/// IEEE CRC-32 (zlib's crc32), table-driven. `update(previous, bytes)` continues a checksum the way
/// `zlib.crc32(bytes, previous)` does, so a record's crc can be computed in parts.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 {
            c = (c & 1) != 0 ? (0xEDB8_8320 ^ (c >> 1)) : (c >> 1)
        }
        return c
    }

    public static func update(_ previous: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~previous
        for byte in bytes {
            c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8)
        }
        return ~c
    }

    public static func checksum<Bytes: ContiguousBytes>(_ bytes: Bytes, previous: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { update(previous, $0) }
    }
}
