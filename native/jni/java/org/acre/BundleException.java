package org.acre;

/**
 * Thrown when the bundle is missing, corrupt, of another version or inconsistent (ACRE_ERR_BUNDLE).
 */
public class BundleException extends AcreException {
  private static final long serialVersionUID = 1L;

  public BundleException(String message) {
    super(message);
  }
}
