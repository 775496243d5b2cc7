package org.acre;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One document in the pot and its L2 store, then questions answered from it in bounded RAM: the
 * core's session (native/src/session.cpp, question.cpp) on the bundle's {@code model.pte} through
 * ExecuTorch, as {@code acre.runtime.Session} runs it in Python (same prompt, same greedy answers).
 *
 * <pre>{@code
 * try (Bundle bundle = Bundle.open(dir); Session session = new Session(bundle)) {
 *   session.ingest(text, store);
 *   for (String piece : session.ask("What is the pass key?", Decoding.greedy(64))) { ... }
 *   session.lastSources();
 * }
 * }</pre>
 *
 * Every question starts again from the ingested document. A session is not thread-safe: call it
 * from one thread at a time.
 */
public final class Session implements AutoCloseable {
  private final Bundle bundle;
  private long handle;
  private long question; // counts questions: an Answer reads only while it is the last one
  private String documentText; // the document's text as the core holds it (for sources), if any
  private boolean textKnown;

  /** A session with the default policy, {@code acre}. */
  public Session(Bundle bundle) {
    this(bundle, "acre", "{}");
  }

  /**
   * A session with a policy ({@code full}, {@code streaming}, {@code infinipot}, {@code acre}) and
   * its switches as a JSON object (e.g. {@code {"refill_mode": "reuse"}}; see acre.h).
   */
  public Session(Bundle bundle, String policy, String switchesJson) {
    bundle.retain();
    try {
      this.handle = Native.sessionNew(bundle.handle(), policy, switchesJson);
    } catch (RuntimeException e) {
      bundle.release();
      throw e;
    }
    this.bundle = bundle;
  }

  private long handle() {
    if (handle == 0) {
      throw new IllegalStateException("the session is closed");
    }
    return handle;
  }

  /**
   * Ingests a document (replacing any earlier one) into a new store at {@code store} (a temporary
   * directory, removed with the session, if null); returns its length in tokens. A store that holds
   * this document already is reopened (finished) or resumed from its last checkpoint (interrupted);
   * one that holds another document is refused ({@link StoreException}).
   */
  public long ingest(String text, Path store) {
    return ingest(text, store, null, false);
  }

  /**
   * As {@link #ingest(String, Path)}, with a progress callback (may be null) and {@code replace}:
   * ingest anew whatever the store holds.
   */
  public long ingest(String text, Path store, Progress progress, boolean replace) {
    checkText(text, "document");
    try {
      return Native.sessionIngest(
          handle(), text, store == null ? null : store.toString(), true, replace, progress);
    } finally {
      documentChanged();
    }
  }

  /**
   * Reopens a document ingested earlier (by any process, Python's too) with this bundle; no
   * re-ingest.
   */
  public long open(Path store) {
    try {
      return Native.sessionOpenDocument(handle(), store.toString());
    } finally {
      documentChanged();
    }
  }

  /** The document's length in prompt tokens (0 before a document). */
  public long documentTokens() {
    return Native.sessionDocumentTokens(handle());
  }

  /** Lets go of the document's store (and the writer's lock), so another process can open it. */
  public void closeStore() {
    Native.sessionCloseStore(handle());
  }

  /**
   * Prefills the question after the document, refills the spans it is about and returns its answer,
   * decoded as it is read.
   */
  public Answer ask(String question, Decoding decoding) {
    checkText(question, "question");
    long seed = decoding.seed() == null ? 0 : decoding.seed();
    Native.sessionAsk(
        handle(),
        question,
        decoding.maxNewTokens(),
        decoding.temperature(),
        decoding.topP(),
        decoding.seed() != null,
        seed);
    return new Answer(this, ++this.question);
  }

  /**
   * The whole answer's text; {@code onPiece} (may be null) is given each piece as it is decoded.
   */
  public String ask(
      String question, Decoding decoding, java.util.function.Consumer<String> onPiece) {
    StringBuilder text = new StringBuilder();
    for (String piece : ask(question, decoding)) {
      if (onPiece != null) {
        onPiece.accept(piece);
      }
      text.append(piece);
    }
    return text.toString();
  }

  int nextToken(long question) {
    if (question != this.question) {
      throw new IllegalStateException("a later question was asked: this answer is over");
    }
    return Native.sessionNext(handle());
  }

  String decode(List<Integer> tokens, boolean skipSpecial) {
    int[] ids = tokens.stream().mapToInt(Integer::intValue).toArray();
    return Native.sessionDecode(handle(), ids, skipSpecial);
  }

  /** The ids of a text under the bundle's tokenizer (no special tokens added). */
  public int[] encode(String text) {
    return Native.sessionEncode(handle(), text);
  }

  /**
   * The last question's prompt as the model saw it: the shown document tokens, then the question.
   */
  public int[] lastPromptIds() {
    return Native.sessionLastPromptIds(handle());
  }

  /** The L2 spans the last question refilled, in document order. */
  public long[] lastSpans() {
    return Native.sessionLastSpans(handle());
  }

  /**
   * The passages of the document text the last question refilled, in document order (none when the
   * document came without text or nothing was refilled).
   */
  public List<Source> lastSources() {
    long[] points = Native.sessionLastSources(handle());
    List<Source> sources = new ArrayList<>();
    if (points.length == 0) {
      return sources;
    }
    String text = documentText();
    for (int i = 0; i < points.length; i += 2) { // code point offsets, as Python's str indexes
      int start = text.offsetByCodePoints(0, (int) points[i]);
      int end = text.offsetByCodePoints(start, (int) (points[i + 1] - points[i]));
      sources.add(new Source(start, end, text.substring(start, end)));
    }
    return sources;
  }

  /**
   * What the session holds and what its last question cost: pot slots and bytes (fixed RAM), the
   * span index's bytes, the program's planned activation bytes, the document's tokens, its L2 bytes
   * on flash, and the bytes read from L2 and spans refilled for the last question.
   */
  public record Profile(
      long potSlots,
      long potBytes,
      long indexBytes,
      long plannedBytes,
      long documentTokens,
      long l2DiskBytes,
      long l2BytesReadLastQuestion,
      long spansRefilledLastQuestion) {}

  /** The session's memory profile now. */
  public Profile profile() {
    long[] p = Native.sessionProfile(handle());
    return new Profile(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
  }

  /** The document's text as the core holds it (also after a reopen), or null if it has none. */
  public String documentText() {
    if (!textKnown) {
      documentText = Native.sessionDocumentText(handle());
      textKnown = true;
    }
    return documentText;
  }

  /**
   * The bundle fingerprint the session's stores carry (acre.runtime.session.bundle_fingerprint).
   */
  public String fingerprint() {
    return Native.sessionFingerprint(handle());
  }

  private void documentChanged() {
    question++; // an answer of the earlier document is over
    textKnown = false;
    documentText = null;
  }

  private static void checkText(String text, String what) {
    if (text == null || text.isBlank()) {
      throw new InputException("the " + what + " is empty");
    }
  }

  /** Frees the session, its pot and engine, and lets go of its store. */
  @Override
  public void close() {
    if (handle != 0) {
      Native.sessionFree(handle);
      handle = 0;
      bundle.release();
    }
  }
}
