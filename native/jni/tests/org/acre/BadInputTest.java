package org.acre;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Refusals: each is the exception of its kind, with the core's message naming what was wrong. */
public class BadInputTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  private static void assertMentions(Throwable e, String... words) {
    for (String word : words) {
      assertTrue(e.getMessage() + " does not mention " + word, e.getMessage().contains(word));
    }
  }

  @Test
  public void aMissingBundleIsRefused() throws Exception {
    Path missing = tmp.getRoot().toPath().resolve("no-such-bundle");
    assertMentions(
        assertThrows(BundleException.class, () -> Bundle.open(missing)), "no-such-bundle");
  }

  @Test
  public void aCorruptManifestIsRefused() throws Exception {
    Path dir = tmp.newFolder("corrupt").toPath();
    Files.writeString(dir.resolve("manifest.json"), "{\"format\": \"acre-bundle\", ");
    assertMentions(assertThrows(BundleException.class, () -> Bundle.open(dir)), "manifest.json");
  }

  @Test
  public void aManifestOfAnotherVersionIsRefused() throws Exception {
    Path dir = tmp.newFolder("version").toPath();
    String manifest =
        Files.readString(Fixture.BUNDLE.resolve("manifest.json"), StandardCharsets.UTF_8);
    Files.writeString(
        dir.resolve("manifest.json"),
        manifest.replaceFirst("\"version\": \\d+", "\"version\": 99"));
    assertMentions(assertThrows(BundleException.class, () -> Bundle.open(dir)), "version");
  }

  @Test
  public void badDocumentsQuestionsAndDecodingAreRefused() throws Exception {
    try (Bundle bundle = Bundle.open(Fixture.BUNDLE, false)) {
      try (Session session = new Session(bundle)) {
        assertThrows(InputException.class, () -> session.ingest("", null));
        assertThrows(InputException.class, () -> session.ingest(" \n\t ", null));
        InputException early =
            assertThrows(InputException.class, () -> session.ask("What?", Decoding.greedy(4)));
        assertMentions(early, "document");
        session.ingest(Fixture.DOCUMENT, null);
        assertThrows(InputException.class, () -> session.ask("", Decoding.greedy(4)));
        assertThrows(InputException.class, () -> session.ask("What?", Decoding.greedy(-1)));
        assertThrows(
            InputException.class,
            () -> session.ask("What?", new Decoding(4, Double.NaN, 1.0, null)));
        String tooLong = "What is the pass key? ".repeat(200);
        assertMentions(
            assertThrows(InputException.class, () -> session.ask(tooLong, Decoding.greedy(4))),
            "question");
        // the session still answers after the refusals
        Answer answer = session.ask(Fixture.QUESTIONS.get(0).question(), Decoding.greedy(12));
        answer.text();
        assertEquals(Fixture.QUESTIONS.get(0).answer(), answer.tokens());
      }
    }
  }

  @Test
  public void storesOfOtherDocumentsMissingStoresAndLockedStoresAreRefused() throws Exception {
    Path store = tmp.newFolder().toPath().resolve("doc.l2");
    try (Bundle bundle = Bundle.open(Fixture.BUNDLE, false);
        Session session = new Session(bundle);
        Session other = new Session(bundle)) {
      assertThrows(
          StoreException.class, () -> session.open(tmp.getRoot().toPath().resolve("none")));
      session.ingest(Fixture.DOCUMENT, store);
      assertThrows(StoreException.class, () -> other.ingest("Another document entirely.", store));
      session.closeStore();
      assertTrue(other.ingest("Another document entirely.", store, null, true) > 0);
    }
  }

  @Test
  public void unknownPoliciesAndSwitchesAreRefused() throws Exception {
    try (Bundle bundle = Bundle.open(Fixture.BUNDLE, false)) {
      assertMentions(
          assertThrows(InputException.class, () -> new Session(bundle, "nonsense", "{}")),
          "nonsense");
      assertThrows(
          InputException.class, () -> new Session(bundle, "acre", "{\"use_nothing\": true}"));
    }
  }

  @Test
  public void aProgressCallbackThatThrowsStopsTheIngestWithItsException() throws Exception {
    Path store = tmp.newFolder().toPath().resolve("doc.l2");
    try (Bundle bundle = Bundle.open(Fixture.BUNDLE, false);
        Session session = new Session(bundle)) {
      IllegalStateException stop = new IllegalStateException("stop here");
      IllegalStateException thrown =
          assertThrows(
              IllegalStateException.class,
              () ->
                  session.ingest(
                      Fixture.DOCUMENT,
                      store,
                      (done, total) -> {
                        throw stop;
                      },
                      false));
      assertEquals(stop, thrown);
      // ingesting again works (from the beginning, or the last checkpoint)
      assertEquals(Fixture.TOKENS, session.ingest(Fixture.DOCUMENT, store));
    }
  }

  @Test
  public void closedObjectsAreRefusedAndABundleOutlivesItsSessions() {
    Bundle bundle = Bundle.open(Fixture.BUNDLE, false);
    Session session = new Session(bundle);
    assertThrows(IllegalStateException.class, bundle::close);
    session.close();
    session.close(); // twice is a no-op
    assertThrows(IllegalStateException.class, () -> session.ingest(Fixture.DOCUMENT, null));
    bundle.close();
    assertThrows(IllegalStateException.class, () -> new Session(bundle));
  }
}
