/// IEEE 754 binary16 <-> binary32 by hand, on the bit patterns (Swift's Float16 is missing on macOS
/// x86_64). Decoding is exact; encoding rounds to nearest, ties to even, as numpy's astype(float16)
/// does, so the L2 records written here are the bytes Python writes.
public enum Half {
    public static func toFloat(_ half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponent = UInt32(half >> 10) & 0x1F
        let mantissa = UInt32(half & 0x3FF)
        if exponent == 0x1F {  // inf, nan
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent != 0 {
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
        if mantissa == 0 { return Float(bitPattern: sign) }  // +-0
        let magnitude = Float(mantissa) * 0x1p-24  // subnormal: exact in float
        return sign != 0 ? -magnitude : magnitude
    }

    public static func fromFloat(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude > 0x7F80_0000 {  // nan: keep the top payload bits, stay a nan
            let payload = UInt16(truncatingIfNeeded: (magnitude & 0x7F_FFFF) >> 13)
            return sign | 0x7C00 | (payload == 0 ? 1 : payload)
        }
        if magnitude >= 0x4780_0000 { return sign | 0x7C00 }  // >= 65536 and inf
        if magnitude >= 0x3880_0000 {  // normal half (>= 2^-14); a carry may round up into inf
            var half = (magnitude >> 13) - (112 << 10)
            let rest = magnitude & 0x1FFF
            if rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1) { half += 1 }
            return sign | UInt16(truncatingIfNeeded: half)
        }
        let exponent = magnitude >> 23
        if exponent < 102 { return sign }  // below 2^-25 (exactly 2^-25 ties to even 0)
        let shift = 126 - exponent  // 14...24: value = m * 2^(exponent - 150), half unit 2^-24
        let m = (magnitude & 0x7F_FFFF) | 0x80_0000
        var half = m >> shift
        let rest = m & ((1 << shift) - 1)
        let halfway: UInt32 = 1 << (shift - 1)
        if rest > halfway || (rest == halfway && (half & 1) == 1) { half += 1 }
        return sign | UInt16(truncatingIfNeeded: half)
    }
}
