package org.acre.core;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

/** float16 conversions: every half survives a round trip; float32 rounds to nearest, ties to even. */
public class HalfTest {
    @Test
    public void everyHalfRoundTrips() {
        for (int h = 0; h < 0x10000; h++) {
            boolean nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
            if (nan) continue;
            assertEquals(Integer.toHexString(h), h, Half.fromFloat(Half.toFloat((short) h)) & 0xffff);
        }
    }

    @Test
    public void roundsToNearestEven() {
        assertEquals(0x3c00, Half.fromFloat(1.0f + 0x1p-11f) & 0xffff);  // halfway 1 and 1+2^-10: to even 1
        assertEquals(0x3c02, Half.fromFloat(1.0f + 3 * 0x1p-11f) & 0xffff);  // halfway, odd below: up
        assertEquals(0x3c01, Half.fromFloat(1.0f + 0x1p-11f + 0x1p-20f) & 0xffff);  // above halfway: up
        assertEquals(0x7bff, Half.fromFloat(65519.0f) & 0xffff);
        assertEquals(0x7c00, Half.fromFloat(65520.0f) & 0xffff);  // rounds to infinity
        assertEquals(0x0000, Half.fromFloat(0x1p-25f) & 0xffff);  // tie with the smallest subnormal: to even 0
        assertEquals(0x0001, Half.fromFloat(0x1.000002p-25f) & 0xffff);
        assertEquals(0x8001, Half.fromFloat(-0x1p-24f) & 0xffff);
        assertEquals(0x0400, Half.fromFloat(0x1.ffffp-15f) & 0xffff);  // subnormal rounding up into the normals
        assertEquals(0x0200, Half.fromFloat(0x1p-15f) & 0xffff);
    }
}
