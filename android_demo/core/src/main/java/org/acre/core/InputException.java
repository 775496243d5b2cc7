package org.acre.core;

/** Text, token ids or sizes given to the runtime cannot be used (empty, out of range, too small). */
public final class InputException extends AcreException {
    private static final long serialVersionUID = 1L;

    public InputException(String message) {
        super(message);
    }
}
