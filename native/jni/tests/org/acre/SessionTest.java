package org.acre;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * The session through JNI on the tiny test Llama's .pte bundle, held to the Python session's
 * answers.
 */
public class SessionTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  private static Bundle bundle;

  @BeforeClass
  public static void openBundle() {
    bundle = Bundle.open(Fixture.BUNDLE);
  }

  @AfterClass
  public static void closeBundle() {
    bundle.close();
  }

  private static void assertAnswersAsPython(Session session) {
    assertAnswersAsPython(session, Fixture.ASCII);
  }

  private static void assertAnswersAsPython(Session session, Fixture.Case c) {
    for (Fixture.Expected expected : c.questions()) {
      Answer answer = session.ask(expected.question(), Decoding.greedy(Fixture.MAX_NEW_TOKENS));
      String text = answer.text();
      assertEquals(expected.question(), expected.answer(), answer.tokens());
      assertArrayEquals(expected.question(), expected.prompt(), session.lastPromptIds());
      assertArrayEquals(expected.question(), expected.spans(), session.lastSpans());
      List<Source> sources = session.lastSources();
      assertEquals(expected.sources().size(), sources.size());
      String document = c.document();
      for (int i = 0; i < sources.size(); i++) {
        Source s = sources.get(i);
        // Python's offsets count code points, a Java string's UTF-16 units
        int start = document.offsetByCodePoints(0, expected.sources().get(i)[0]);
        int end = document.offsetByCodePoints(0, expected.sources().get(i)[1]);
        assertEquals(start, s.start());
        assertEquals(end, s.end());
        assertEquals(document.substring(start, end), s.text());
      }
      // the pieces are the decoded text, less a last character still waiting for its other bytes
      assertTrue(session.decode(answer.tokens(), true).startsWith(text));
    }
  }

  @Test
  public void aDocumentOfNonAsciiTextGivesPythonsAnswersAndSources() {
    Fixture.Case c = Fixture.UNICODE;
    assertTrue(c.document().length() > c.document().codePointCount(0, c.document().length()));
    try (Session session = new Session(bundle)) {
      assertEquals(c.tokens(), session.ingest(c.document(), null));
      assertEquals(c.document(), session.documentText());
      assertFalse(c.questions().get(0).sources().isEmpty());
      assertAnswersAsPython(session, c);
    }
  }

  @Test
  public void greedyAnswersAreTokenIdenticalToPythons() throws Exception {
    try (Session session = new Session(bundle)) {
      List<long[]> progress = new ArrayList<>();
      long tokens =
          session.ingest(
              Fixture.DOCUMENT,
              tmp.newFolder().toPath().resolve("doc.l2"),
              (done, total) -> progress.add(new long[] {done, total}),
              false);
      assertEquals(Fixture.TOKENS, tokens);
      assertEquals(Fixture.TOKENS, session.documentTokens());
      assertFalse(progress.isEmpty());
      assertEquals(tokens, progress.get(progress.size() - 1)[0]);
      assertFalse(Fixture.QUESTIONS.get(0).spans().length == 0); // the fixture does refill spans
      assertAnswersAsPython(session);
      Session.Profile profile = session.profile();
      assertEquals(256, profile.potSlots()); // the fixture's --pot
      assertTrue(profile.potBytes() > 0 && profile.indexBytes() > 0 && profile.l2DiskBytes() > 0);
      assertEquals(Fixture.TOKENS, profile.documentTokens());
      assertEquals(
          Fixture.QUESTIONS.get(Fixture.QUESTIONS.size() - 1).spans().length,
          profile.spansRefilledLastQuestion());
    }
  }

  @Test
  public void theFingerprintIsPythons() {
    try (Session session = new Session(bundle)) {
      assertEquals(Fixture.FINGERPRINT, session.fingerprint());
    }
  }

  @Test
  public void aStoreThePythonSessionIngestedReopensWithTheSameAnswers() {
    try (Session session = new Session(bundle)) {
      assertEquals(Fixture.TOKENS, session.open(Fixture.PYTHON_STORE));
      assertEquals(Fixture.DOCUMENT, session.documentText());
      assertAnswersAsPython(session);
    }
  }

  @Test
  public void aDocumentReopensInAnotherSessionAndAnIngestAgainReopensIt() throws Exception {
    Path store = tmp.newFolder().toPath().resolve("doc.l2");
    Fixture.Expected first = Fixture.QUESTIONS.get(0);
    try (Session session = new Session(bundle)) {
      session.ingest(Fixture.DOCUMENT, store);
    }
    try (Session session = new Session(bundle)) {
      assertEquals(Fixture.TOKENS, session.open(store));
      Answer answer = session.ask(first.question(), Decoding.greedy(Fixture.MAX_NEW_TOKENS));
      answer.text();
      assertEquals(first.answer(), answer.tokens());
      // the same document again: the finished store is reopened, not ingested anew
      List<long[]> progress = new ArrayList<>();
      session.ingest(Fixture.DOCUMENT, store, (d, t) -> progress.add(new long[] {d, t}), false);
      assertTrue(progress.isEmpty());
    }
  }

  @Test
  public void piecesStreamAndALaterQuestionEndsAnEarlierAnswer() {
    try (Session session = new Session(bundle)) {
      session.ingest(Fixture.DOCUMENT, null);
      Fixture.Expected q = Fixture.QUESTIONS.get(0);
      List<String> pieces = new ArrayList<>();
      String text = session.ask(q.question(), Decoding.greedy(Fixture.MAX_NEW_TOKENS), pieces::add);
      assertEquals(text, String.join("", pieces));
      assertFalse(pieces.isEmpty());
      Answer old = session.ask(q.question(), Decoding.greedy(4));
      session.ask(q.question(), Decoding.greedy(4));
      assertThrows(IllegalStateException.class, old::hasNext);
      // a seeded sample draws the same tokens twice
      Decoding sampled = new Decoding(8, 0.8, 0.9, 7L);
      Answer a = session.ask(q.question(), sampled);
      a.text();
      Answer b = session.ask(q.question(), sampled);
      b.text();
      assertEquals(a.tokens(), b.tokens());
    }
  }
}
