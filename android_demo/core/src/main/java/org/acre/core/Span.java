package org.acre.core;

/** One span read back from L2: k and v are float32 [L, Hkv, n, D], row-major. */
public record Span(int index, long start, int[] tokens, float[] k, float[] v) {
    public int length() {
        return tokens.length;
    }
}
