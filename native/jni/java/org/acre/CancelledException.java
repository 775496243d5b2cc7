package org.acre;

/**
 * Thrown when an ingest was stopped by its progress callback; its store keeps the last checkpoint
 * (ACRE_ERR_CANCELLED).
 */
public class CancelledException extends AcreException {
  private static final long serialVersionUID = 1L;

  public CancelledException(String message) {
    super(message);
  }
}
