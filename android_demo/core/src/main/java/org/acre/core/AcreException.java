package org.acre.core;

/** Base of every error the core raises on purpose; the message names the cause (and the file). */
public class AcreException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public AcreException(String message) {
        super(message);
    }

    public AcreException(String message, Throwable cause) {
        super(message, cause);
    }
}
