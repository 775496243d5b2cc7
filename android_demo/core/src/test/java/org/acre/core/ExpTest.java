package org.acre.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.junit.Test;

/** Exp.exp is correctly rounded: checked against 500 values computed with 60-digit decimals. */
public class ExpTest {
    @Test
    public void matchesCorrectlyRoundedValues() throws Exception {
        int n = 0;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(
                ExpTest.class.getResourceAsStream("/exp_cases.txt"), StandardCharsets.US_ASCII))) {
            for (String line; (line = in.readLine()) != null; ) {
                if (line.startsWith("#")) continue;
                String[] p = line.split(" ");
                double x = Double.parseDouble(p[0]);
                double want = Double.parseDouble(p[1]);
                assertEquals("exp(" + x + ")", Double.doubleToLongBits(want), Double.doubleToLongBits(Exp.exp(x)));
                n++;
            }
        }
        assertEquals(500, n);
    }

    @Test
    public void edges() {
        assertEquals(1.0, Exp.exp(0.0), 0);
        assertEquals(Math.E, Exp.exp(1.0), 0);
        assertEquals(0.0, Exp.exp(Double.NEGATIVE_INFINITY), 0);
        assertEquals(Double.POSITIVE_INFINITY, Exp.exp(710), 0);
        assertTrue(Double.isNaN(Exp.exp(Double.NaN)));
    }
}
