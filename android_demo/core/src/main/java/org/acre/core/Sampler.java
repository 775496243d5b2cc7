package org.acre.core;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;

/** Next-token choice: greedy (the first maximum, as numpy's argmax), or temperature with top-p. */
public final class Sampler {
    private Sampler() {}

    public static int greedy(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    public static int sample(float[] logits, double temperature, double topP, Random random) {
        if (temperature <= 0) return greedy(logits);
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) max = Math.max(max, l / temperature);
        double[] probs = new double[logits.length];
        double total = 0;
        for (int i = 0; i < probs.length; i++) total += probs[i] = Math.exp(logits[i] / temperature - max);
        Integer[] order = new Integer[probs.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -probs[i]));
        // keep the smallest prefix whose mass reaches top_p (always at least the top token)
        int keep = 0;
        double mass = 0;
        while (keep < order.length && (keep == 0 || mass / total < topP)) mass += probs[order[keep++]];
        double pick = random.nextDouble() * mass;
        for (int i = 0; i < keep; i++) {
            pick -= probs[order[i]];
            if (pick <= 0) return order[i];
        }
        return order[keep - 1];
    }
}
