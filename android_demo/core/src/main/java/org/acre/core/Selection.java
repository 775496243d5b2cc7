package org.acre.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Set;

/**
 * Which spans a question refills, and where they go in the pot (acre/runtime/selection.py): pure
 * functions of numbers, float64, with every sum sequential in the stated order so the results are
 * bit-identical to Python's.
 */
public final class Selection {
    private Selection() {}

    /**
     * One score per span from (a) the attention mass normalised to sum 1, (b) the softmax of the index
     * scores (-infinity where the tree search did not reach) and (c) the softmax of the lexical BM25
     * scores' standard scores: the mean of the parts given (null = not used), summed in that order.
     */
    public static double[] combineScores(double[] attention, double[] indexZ, double[] lexical) {
        List<double[]> parts = new ArrayList<>();
        if (attention != null) parts.add(normalised(attention));
        if (indexZ != null) parts.add(softmax(indexZ));
        if (lexical != null) parts.add(softmax(standardised(lexical)));
        if (parts.isEmpty()) throw new IllegalArgumentException("no span scores: need attention, index or lexical scores");
        if (parts.size() == 1) return parts.get(0);
        double[] out = parts.get(0).clone();
        for (double[] part : parts.subList(1, parts.size())) {  // sequential, in the order (a), (b), (c)
            for (int i = 0; i < out.length; i++) out[i] += part[i];
        }
        for (int i = 0; i < out.length; i++) out[i] /= parts.size();
        return out;
    }

    /** exp(z - max) / its sequential sum, with the correctly rounded exp: the same bits everywhere. */
    private static double[] softmax(double[] z) {
        double max = Double.NEGATIVE_INFINITY;
        for (double v : z) max = Math.max(max, v);
        double[] b = new double[z.length];
        double total = 0;
        for (int i = 0; i < b.length; i++) {
            b[i] = Exp.exp(z[i] - max);
            total += b[i];
        }
        for (int i = 0; i < b.length; i++) b[i] = b[i] / total;
        return b;
    }

    /** (x - mean) / std (population std, sequential sums); all zeros when x is constant. */
    static double[] standardised(double[] x) {
        double sum = 0;
        for (double v : x) sum += v;
        double mean = sum / x.length;
        double[] d = new double[x.length];
        double squares = 0;
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i] - mean;
            squares += d[i] * d[i];
        }
        double std = Math.sqrt(squares / x.length);
        for (int i = 0; i < d.length; i++) d[i] = std > 0 ? d[i] / std : 0.0;
        return d;
    }

    /** x / its sequential sum (as np.cumsum(x)[-1]) when that sum is positive, else x. */
    private static double[] normalised(double[] x) {
        double total = 0;
        for (double v : x) total += v;
        double[] out = new double[x.length];
        for (int i = 0; i < out.length; i++) out[i] = total > 0 ? x[i] / total : x[i];
        return out;
    }

    /**
     * The spans to refill, in document order: rank spans with a positive score (ties: lower index
     * first), take the fewest whose running sum reaches `mass` of their total, at least minSpans, at
     * most budget; each chosen span then brings its neighbours (1 before, 1 after, 2 before, ...)
     * while the budget lasts.
     */
    public static List<Integer> chooseSpans(double[] scores, int budget, double mass, int minSpans, int neighbors) {
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < scores.length; i++) if (scores[i] > 0) order.add(i);
        order.sort(Comparator.comparingDouble((Integer i) -> scores[i]).reversed());  // stable
        if (order.isEmpty() || budget < 1) return new ArrayList<>();
        double[] cumulative = new double[order.size()];
        double running = 0;
        for (int i = 0; i < cumulative.length; i++) cumulative[i] = running += scores[order.get(i)];
        double total = cumulative[cumulative.length - 1];
        int below = 0;  // searchsorted(cumulative / total, mass, side="left") on a sorted array
        while (below < cumulative.length && cumulative[below] / total < mass) below++;
        int count = Math.min(Math.min(Math.max(below + 1, minSpans), budget), order.size());
        List<Integer> chosen = new ArrayList<>();
        for (int span : order.subList(0, count)) {
            List<Integer> near = new ArrayList<>();
            near.add(span);
            for (int r = 1; r <= neighbors; r++) {
                near.add(span - r);
                near.add(span + r);
            }
            for (int s : near) {
                if (chosen.size() < budget && s >= 0 && s < scores.length && !chosen.contains(s)) chosen.add(s);
            }
        }
        Collections.sort(chosen);
        return chosen;
    }

    /** Slots and document tokens of a refill. */
    public record Placement(long[] slots, long[] tokens) {}

    /**
     * Refilling `spans` in document order into `freeSlots`, in slot order, skipping tokens already
     * resident in the pot (sinks, recent window).
     */
    public static Placement refillPlacement(List<Integer> spans, List<Long> starts, List<Integer> lengths,
                                            Set<Long> resident, long[] freeSlots) {
        List<Integer> sorted = new ArrayList<>(spans);
        Collections.sort(sorted);
        List<Long> tokens = new ArrayList<>();
        for (int span : sorted) {
            for (long t = starts.get(span); t < starts.get(span) + lengths.get(span); t++) {
                if (!resident.contains(t)) tokens.add(t);
            }
        }
        if (tokens.size() > freeSlots.length) {
            throw new IllegalArgumentException(tokens.size() + " refill tokens for " + freeSlots.length + " free slots");
        }
        long[] slots = new long[tokens.size()];
        long[] toks = new long[tokens.size()];
        for (int i = 0; i < slots.length; i++) {
            slots[i] = freeSlots[i];
            toks[i] = tokens.get(i);
        }
        return new Placement(slots, toks);
    }
}
