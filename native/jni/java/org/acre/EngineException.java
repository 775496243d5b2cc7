package org.acre;

/** Thrown when the step program failed to load or run (ACRE_ERR_ENGINE). */
public class EngineException extends AcreException {
  private static final long serialVersionUID = 1L;

  public EngineException(String message) {
    super(message);
  }
}
