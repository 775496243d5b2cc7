package org.acre;

/**
 * A refusal of acre's native core: its message is the core's ({@code acre_last_error()}), naming
 * the file, the field or the input. The subclasses say which kind of status it was.
 */
public class AcreException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public AcreException(String message) {
    super(message);
  }
}
