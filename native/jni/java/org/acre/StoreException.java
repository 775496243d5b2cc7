package org.acre;

/**
 * Thrown when an L2 store is missing, corrupt, of another document or model, or locked
 * (ACRE_ERR_STORE).
 */
public class StoreException extends AcreException {
  private static final long serialVersionUID = 1L;

  public StoreException(String message) {
    super(message);
  }
}
