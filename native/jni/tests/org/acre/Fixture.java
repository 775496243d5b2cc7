package org.acre;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What native/jni/tests/make_fixture.py wrote into the directory {@code -Dacre.fixture}: the tiny
 * test Llama's bundle, the documents, a store the Python session ingested the first into, and what
 * Python answered.
 */
final class Fixture {
  static final Path DIR = Path.of(System.getProperty("acre.fixture", "build/jni-test"));
  static final Path BUNDLE = DIR.resolve("bundle");
  static final Path PYTHON_STORE = DIR.resolve("python.l2");
  static final int MAX_NEW_TOKENS = 12;

  /**
   * One question and what the Python session gave for it; sources as code point offsets (Python's
   * str indices).
   */
  record Expected(
      String question, List<Integer> answer, int[] prompt, long[] spans, List<int[]> sources) {}

  /** A document and what Python answered on it. */
  record Case(String document, String fingerprint, long tokens, List<Expected> questions) {
    static Case load(String name) {
      try {
        String document = Files.readString(DIR.resolve(name + ".txt"), StandardCharsets.UTF_8);
        String fingerprint = null;
        long tokens = -1;
        String question = null;
        List<Integer> answer = null;
        int[] prompt = null;
        long[] spans = null;
        List<Expected> questions = new ArrayList<>();
        Path expected = DIR.resolve(name + ".expected.txt");
        for (String line : Files.readAllLines(expected, StandardCharsets.UTF_8)) {
          String key = line.substring(0, line.indexOf(' '));
          String value = line.substring(key.length() + 1);
          switch (key) {
            case "fingerprint" -> fingerprint = value;
            case "tokens" -> tokens = Long.parseLong(value);
            case "question" -> question = value;
            case "answer" -> answer = Arrays.stream(longs(value)).mapToObj(x -> (int) x).toList();
            case "prompt" -> prompt = Arrays.stream(longs(value)).mapToInt(x -> (int) x).toArray();
            case "spans" -> spans = longs(value);
            case "sources" -> {
              List<int[]> sources = new ArrayList<>();
              for (String pair : value.isBlank() ? new String[0] : value.trim().split(" ")) {
                String[] se = pair.split(":");
                sources.add(new int[] {Integer.parseInt(se[0]), Integer.parseInt(se[1])});
              }
              questions.add(new Expected(question, answer, prompt, spans, sources));
            }
            default -> throw new IllegalStateException(expected + ": unknown line " + key);
          }
        }
        return new Case(document, fingerprint, tokens, questions);
      } catch (IOException e) {
        throw new UncheckedIOException(
            "no fixture in " + DIR + ": run native/jni/test.sh (it runs make_fixture.py)", e);
      }
    }
  }

  /** The ASCII document (the Python store holds it). */
  static final Case ASCII = Case.load("document");

  /** A document of characters of two, three and four UTF-8 bytes. */
  static final Case UNICODE = Case.load("unicode");

  static final String DOCUMENT = ASCII.document();
  static final String FINGERPRINT = ASCII.fingerprint();
  static final long TOKENS = ASCII.tokens();
  static final List<Expected> QUESTIONS = ASCII.questions();

  private static long[] longs(String value) {
    return value.isBlank()
        ? new long[0]
        : Arrays.stream(value.trim().split(" ")).mapToLong(Long::parseLong).toArray();
  }

  private Fixture() {}
}
