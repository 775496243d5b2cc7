package org.acre;

/**
 * Thrown when the tokenizer or its chat template is one the core or this binding cannot run
 * (ACRE_ERR_TOKENIZER).
 */
public class TokenizerException extends AcreException {
  private static final long serialVersionUID = 1L;

  public TokenizerException(String message) {
    super(message);
  }
}
