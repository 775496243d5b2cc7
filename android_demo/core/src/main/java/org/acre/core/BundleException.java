package org.acre.core;

/** A bundle is missing, corrupt, of another version or inconsistent. {@link #kind} says which check
 * refused it, so callers (and the shared test vectors) can tell the reasons apart. */
public final class BundleException extends AcreException {
    private static final long serialVersionUID = 1L;

    /** The checks of docs/bundle.md, in the order they run. */
    public enum Kind { NOT_FOUND, JSON, FORMAT, VERSION, FIELD, PATH, MISSING, SIZE, CHECKSUM, PROGRAM }

    public final Kind kind;

    public BundleException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }
}
