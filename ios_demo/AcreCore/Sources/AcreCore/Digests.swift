import Foundation

#if canImport(CryptoKit)
    import CryptoKit
#endif

/// sha256 of files and bytes, as lowercase hex. CryptoKit on Apple platforms; elsewhere (Swift on
/// Linux) the small portable implementation below, which the tests also check on a Mac.
public enum Digests {
    public static func sha256Hex(_ data: Data) -> String {
        #if canImport(CryptoKit)
            return hex(Array(SHA256.hash(data: data)))
        #else
            var hasher = PortableSHA256()
            hasher.update(data)
            return hex(hasher.finalize())
        #endif
    }

    /// Streams the file in 1 MiB blocks.
    public static func sha256Hex(ofFile url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        #if canImport(CryptoKit)
            var hasher = SHA256()
            while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty { hasher.update(data: block) }
            return hex(Array(hasher.finalize()))
        #else
            var hasher = PortableSHA256()
            while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty { hasher.update(block) }
            return hex(hasher.finalize())
        #endif
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return out
    }
}

/// FIPS 180-4 SHA-256, for platforms without CryptoKit.
public struct PortableSHA256 {
    private var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0

    public init() {}

    public mutating func update(_ data: Data) {
        update([UInt8](data))
    }

    public mutating func update(_ bytes: [UInt8]) {
        length &+= UInt64(bytes.count)
        pending.append(contentsOf: bytes)
        var offset = 0
        while pending.count - offset >= 64 {
            compress(pending, at: offset)
            offset += 64
        }
        pending.removeFirst(offset)
    }

    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        pending.append(0x80)
        while pending.count % 64 != 56 { pending.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) {
            pending.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift)))
        }
        var offset = 0
        while offset < pending.count {
            compress(pending, at: offset)
            offset += 64
        }
        pending = []
        var out: [UInt8] = []
        for word in state {
            out.append(UInt8(truncatingIfNeeded: word >> 24))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word))
        }
        return out
    }

    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 {
        (x >> n) | (x << (32 - n))
    }

    private mutating func compress(_ bytes: [UInt8], at base: Int) {
        var w = [UInt32](repeating: 0, count: 64)
        for t in 0..<16 {
            let j = base + 4 * t
            let b0 = UInt32(bytes[j]) << 24
            let b1 = UInt32(bytes[j + 1]) << 16
            let b2 = UInt32(bytes[j + 2]) << 8
            let b3 = UInt32(bytes[j + 3])
            w[t] = b0 | b1 | b2 | b3
        }
        for t in 16..<64 {
            let x = w[t - 15]
            let y = w[t - 2]
            let s0 = PortableSHA256.rotr(x, 7) ^ PortableSHA256.rotr(x, 18) ^ (x >> 3)
            let s1 = PortableSHA256.rotr(y, 17) ^ PortableSHA256.rotr(y, 19) ^ (y >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var a = state[0]
        var b = state[1]
        var c = state[2]
        var d = state[3]
        var e = state[4]
        var f = state[5]
        var g = state[6]
        var h = state[7]
        for t in 0..<64 {
            let s1 = PortableSHA256.rotr(e, 6) ^ PortableSHA256.rotr(e, 11) ^ PortableSHA256.rotr(e, 25)
            let choose = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ choose &+ PortableSHA256.k[t] &+ w[t]
            let s0 = PortableSHA256.rotr(a, 2) ^ PortableSHA256.rotr(a, 13) ^ PortableSHA256.rotr(a, 22)
            let majority = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ majority
            h = g
            g = f
            f = e
            e = d &+ t1
            d = c
            c = b
            b = a
            a = t1 &+ t2
        }
        state[0] &+= a
        state[1] &+= b
        state[2] &+= c
        state[3] &+= d
        state[4] &+= e
        state[5] &+= f
        state[6] &+= g
        state[7] &+= h
    }

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
}
