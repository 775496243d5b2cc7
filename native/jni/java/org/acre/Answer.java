package org.acre;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * The answer to one question, decoded as it is read: an iterator of text pieces (each piece is what
 * the next token added to the text; a multi-byte character waits for its last token). Valid until
 * the session's next question.
 */
public final class Answer implements Iterator<String>, Iterable<String> {
  private final Session session;
  private final long question;
  private final List<Integer> tokens = new ArrayList<>();
  private final StringBuilder text = new StringBuilder();
  private String pending;
  private boolean done;

  Answer(Session session, long question) {
    this.session = session;
    this.question = question;
  }

  @Override
  public boolean hasNext() {
    while (pending == null && !done) {
      int token = session.nextToken(question);
      if (token < 0) {
        done = true;
        break;
      }
      tokens.add(token);
      String decoded = session.decode(tokens, true);
      if (!decoded.endsWith("\uFFFD")) { // wait for the rest of a multi-byte character
        pending = decoded.substring(text.length());
        text.append(pending);
      }
    }
    return pending != null;
  }

  @Override
  public String next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the answer is done");
    }
    String piece = pending;
    pending = null;
    return piece;
  }

  @Override
  public Iterator<String> iterator() {
    return this;
  }

  /** Reads the rest of the answer and returns its whole text. */
  public String text() {
    while (hasNext()) {
      next();
    }
    return text.toString();
  }

  /** The answer's token ids read so far (stop tokens excluded). */
  public List<Integer> tokens() {
    return List.copyOf(tokens);
  }
}
