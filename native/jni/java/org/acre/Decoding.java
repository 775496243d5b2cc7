package org.acre;

/**
 * How an answer is decoded: at most {@code maxNewTokens}, greedy ({@code temperature <= 0}) or
 * sampled from the {@code topP} nucleus with numpy's {@code default_rng(seed)} stream ({@code seed}
 * null: fresh entropy), as acre.runtime.Session.ask does.
 */
public record Decoding(int maxNewTokens, double temperature, double topP, Long seed) {
  /** Greedy, at most {@code maxNewTokens}. */
  public static Decoding greedy(int maxNewTokens) {
    return new Decoding(maxNewTokens, 0.0, 1.0, null);
  }
}
