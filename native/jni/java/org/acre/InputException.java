package org.acre;

/**
 * Thrown when an input is refused: empty, out of range, too long for its region, or asked too early
 * (ACRE_ERR_INVALID_ARGUMENT).
 */
public class InputException extends AcreException {
  private static final long serialVersionUID = 1L;

  public InputException(String message) {
    super(message);
  }
}
