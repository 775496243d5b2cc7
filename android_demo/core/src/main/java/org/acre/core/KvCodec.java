package org.acre.core;

import java.nio.ByteBuffer;

/**
 * The two L2 codecs, bit-compatible with acre/runtime/l2.py.
 *
 * <p>float16: each value rounded to half. int8: per row of D values, scale = half(max|x| / 127)
 * (1 for an all-zero row), q = clip(rint(x / scale), -127, 127); decoded as float32(q) * scale.
 * Every step is float32 arithmetic in numpy's order, so Java writes the same bytes.
 */
final class KvCodec {
    private KvCodec() {}

    /** Writes x (float32, rows of d values) as float16 into out at its position. */
    static void putHalf(ByteBuffer out, float[] x) {
        for (float f : x) out.putShort(Half.fromFloat(f));
    }

    /** Writes x as int8 at its position and its per-row float16 scales into scales. */
    static void putInt8(ByteBuffer out, ByteBuffer scales, float[] x, int d) {
        for (int row = 0; row < x.length / d; row++) {
            float max = 0f;
            for (int i = row * d; i < (row + 1) * d; i++) max = Math.max(max, Math.abs(x[i]));
            float scale = max / 127.0f;
            short half = Half.fromFloat(scale == 0f ? 1.0f : scale);
            float s = Half.toFloat(half);
            scales.putShort(half);
            for (int i = row * d; i < (row + 1) * d; i++) {
                double q = Math.rint(x[i] / s);  // x / s in float32, then round half to even
                out.put((byte) Math.max(-127, Math.min(127, q)));
            }
        }
    }

    /** float32 of the first `rows` rows of d float16 values starting at the buffer's position. */
    static float[] getHalf(ByteBuffer in, int rows, int d) {
        float[] x = new float[rows * d];
        for (int i = 0; i < x.length; i++) x[i] = Half.toFloat(in.getShort());
        return x;
    }

    static float[] getInt8(ByteBuffer values, ByteBuffer scales, int rows, int d) {
        float[] x = new float[rows * d];
        for (int row = 0; row < rows; row++) {
            float s = Half.toFloat(scales.getShort());
            for (int i = row * d; i < (row + 1) * d; i++) x[i] = (float) values.get() * s;
        }
        return x;
    }
}
