package org.acre.core;

/**
 * Float32 sums in numpy's order, where bit-exact agreement with the Python runtime matters (the
 * norms that rank representative keys). numpy reduces a contiguous float32 row by pairwise
 * summation: below 8 elements sequentially from 0, up to 128 with 8 interleaved accumulators,
 * above that by halves.
 */
final class Sums {
    private static final int BLOCK = 128;

    private Sums() {}

    static float pairwise(float[] a, int offset, int n) {
        if (n < 8) {
            float res = 0f;
            for (int i = 0; i < n; i++) res += a[offset + i];
            return res;
        }
        if (n <= BLOCK) {
            float[] r = new float[8];
            System.arraycopy(a, offset, r, 0, 8);
            int i = 8;
            for (; i < n - (n % 8); i += 8) {
                for (int j = 0; j < 8; j++) r[j] += a[offset + i + j];
            }
            float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) res += a[offset + i];
            return res;
        }
        int half = n / 2;
        half -= half % 8;
        return pairwise(a, offset, half) + pairwise(a, offset + half, n - half);
    }

    /** L2 norm of a float32 row as numpy.linalg.norm(axis=-1) computes it. */
    static float norm(float[] x, int offset, int n) {
        float[] squares = new float[n];
        for (int i = 0; i < n; i++) squares[i] = x[offset + i] * x[offset + i];
        return (float) Math.sqrt(pairwise(squares, 0, n));  // sqrt in double, rounded once: exact
    }
}
