package org.acre.core;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.util.Locale;

/** Byte helpers that stay within the API every Android version has. */
final class Bytes {
    private Bytes() {}

    /** buffer.position(p) through Buffer: ByteBuffer's covariant override is missing on older Android. */
    static ByteBuffer at(ByteBuffer buffer, int position) {
        ((Buffer) buffer).position(position);
        return buffer;
    }

    static String hex(byte[] bytes) {
        StringBuilder out = new StringBuilder(bytes.length * 2);
        for (byte b : bytes) out.append(String.format(Locale.ROOT, "%02x", b & 0xff));
        return out.toString();
    }
}
