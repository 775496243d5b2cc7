package org.acre;

/**
 * A passage of the document text that the last question refilled: {@code text.substring(start,
 * end)} of the document as a Java string (UTF-16 indices), in document order.
 */
public record Source(int start, int end, String text) {}
