package org.acre.core;

/** An L2 store is missing, corrupt, of another version, or belongs to another model/bundle. */
public final class StoreException extends AcreException {
    private static final long serialVersionUID = 1L;

    public StoreException(String message) {
        super(message);
    }

    public StoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
