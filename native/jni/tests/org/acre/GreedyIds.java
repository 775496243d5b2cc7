package org.acre;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;

/**
 * Prints the greedy answer token ids of each question about a document, one line a question, for
 * tests/test_real_model.py to hold to the Python binding's on the real model.
 *
 * <p>{@code java org.acre.GreedyIds BUNDLE DOCUMENT STORE MAX_NEW_TOKENS QUESTION...}
 */
public final class GreedyIds {
  private GreedyIds() {}

  public static void main(String[] args) throws IOException {
    String document = Files.readString(Path.of(args[1]), StandardCharsets.UTF_8);
    int maxNewTokens = Integer.parseInt(args[3]);
    try (Bundle bundle = Bundle.open(Path.of(args[0]));
        Session session = new Session(bundle)) {
      session.ingest(document, Path.of(args[2]));
      for (int i = 4; i < args.length; i++) {
        Answer answer = session.ask(args[i], Decoding.greedy(maxNewTokens));
        answer.text();
        System.out.println(
            answer.tokens().stream().map(String::valueOf).collect(Collectors.joining(" ")));
      }
    }
  }
}
