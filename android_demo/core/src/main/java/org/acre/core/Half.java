package org.acre.core;

/**
 * IEEE 754 binary16 conversions (Java 17 has no Float.float16ToFloat). Encoding rounds to nearest,
 * ties to even, like numpy's astype(float16), so the L2 bytes written here equal Python's.
 */
public final class Half {
    private Half() {}

    /** Exact: every half is a float. */
    public static float toFloat(short half) {
        int h = half & 0xffff;
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1f;
        int mant = h & 0x3ff;
        if (exp == 0x1f) return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));  // inf, nan
        if (exp != 0) return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
        if (mant == 0) return Float.intBitsToFloat(sign);  // +-0
        float magnitude = mant * 0x1p-24f;  // subnormal: mant units of 2^-24, exact in float
        return sign != 0 ? -magnitude : magnitude;
    }

    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        if (abs > 0x7f800000) {  // nan: keep the top payload bits, stay a nan
            int m = (abs & 0x7fffff) >>> 13;
            return (short) (sign | 0x7c00 | (m == 0 ? 1 : m));
        }
        if (abs >= 0x47800000) return (short) (sign | 0x7c00);  // >= 65536 and inf: inf
        if (abs >= 0x38800000) {  // normal half range (>= 2^-14); rounding may carry into inf
            int h = (abs >>> 13) - (112 << 10);
            int rest = abs & 0x1fff;
            if (rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1)) h++;
            return (short) (sign | h);
        }
        int exp = abs >>> 23;
        int shift = 126 - exp;  // value = M * 2^(exp-150); half subnormal = h * 2^-24
        if (exp == 0 || shift > 24) return (short) sign;  // below 2^-25 (a tie at 2^-25 goes to even 0)
        int m = (abs & 0x7fffff) | 0x800000;
        int h = m >>> shift;
        int rest = m & ((1 << shift) - 1);
        int halfway = 1 << (shift - 1);
        if (rest > halfway || (rest == halfway && (h & 1) == 1)) h++;
        return (short) (sign | h);
    }
}
