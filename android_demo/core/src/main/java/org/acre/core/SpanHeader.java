package org.acre.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The 28-byte record header, struct {@code <4sIIQII}: magic "ACRS", span number, tokens n, first
 * document token, crc32 of the record (computed with this field 0), crc32 of the S token ids.
 * Unsigned fields are kept in longs so a damaged header compares as Python sees it.
 */
public record SpanHeader(byte[] magic, long span, long n, long start, long crc, long tokenCrc) {
    public static final int BYTES = 28;
    public static final byte[] MAGIC = "ACRS".getBytes(StandardCharsets.US_ASCII);

    public boolean magicOk() {
        return Arrays.equals(magic, MAGIC);
    }

    public static SpanHeader read(byte[] raw) {
        ByteBuffer b = ByteBuffer.wrap(raw, 0, BYTES).order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[4];
        b.get(magic);
        return new SpanHeader(magic, Integer.toUnsignedLong(b.getInt()), Integer.toUnsignedLong(b.getInt()),
                b.getLong(), Integer.toUnsignedLong(b.getInt()), Integer.toUnsignedLong(b.getInt()));
    }

    /** The header bytes with the given record crc (0 while the crc itself is computed). */
    public byte[] pack(long withCrc) {
        ByteBuffer b = ByteBuffer.allocate(BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.put(magic).putInt((int) span).putInt((int) n).putLong(start).putInt((int) withCrc).putInt((int) tokenCrc);
        return b.array();
    }
}
