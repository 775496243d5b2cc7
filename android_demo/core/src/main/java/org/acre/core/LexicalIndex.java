package org.acre.core;

import java.util.Arrays;

/**
 * Lexical span scores (acre/runtime/lexical.py): BM25 of the question's token ids against each
 * span's token ids, the third span signal beside attention and the span index. Needs no model and
 * no flash reads: the document's ids are in the session. One (token, span, count) triple per
 * distinct token of each span, sorted by token, then span.
 */
public final class LexicalIndex {
    static final double K1 = 1.2;
    static final double B = 0.75;

    public final int spans;
    private final int[] token;
    private final int[] span;
    private final int[] count;
    private final double[] norm;

    public LexicalIndex(int[] documentIds, int spanTokens) {
        int n = documentIds.length;
        spans = (n + spanTokens - 1) / spanTokens;
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) keys[i] = (long) documentIds[i] * spans + i / spanTokens;
        Arrays.sort(keys);
        int distinct = 0;
        for (int i = 0; i < n; i++) if (i == 0 || keys[i] != keys[i - 1]) distinct++;
        token = new int[distinct];
        span = new int[distinct];
        count = new int[distinct];
        for (int i = 0, j = -1; i < n; i++) {
            if (i == 0 || keys[i] != keys[i - 1]) {
                j++;
                token[j] = (int) (keys[i] / spans);
                span[j] = (int) (keys[i] % spans);
            }
            count[j]++;
        }
        double[] lengths = new double[spans];
        Arrays.fill(lengths, spanTokens);
        if (spans > 0) lengths[spans - 1] = n - (long) spanTokens * (spans - 1);
        double total = 0;
        for (double length : lengths) total += length;  // whole numbers: exact in any order
        double mean = total / spans;
        norm = new double[spans];
        for (int s = 0; s < spans; s++) norm[s] = K1 * (1 - B + B * lengths[s] / mean);
    }

    public long nbytes() {
        return 12L * token.length + 8L * norm.length;
    }

    /** BM25 score of every span for the distinct query tokens (tokens the document lacks add 0). */
    public double[] scores(int[] queryIds) {
        double[] out = new double[spans];
        for (int t : Arrays.stream(queryIds).distinct().sorted().toArray()) {
            int lo = lowerBound(t);
            int hi = lowerBound(t + 1L);
            if (lo == hi) continue;
            int df = hi - lo;
            double idf = Math.log((spans - df + 0.5) / (df + 0.5) + 1.0);
            for (int i = lo; i < hi; i++) {
                out[span[i]] += idf * count[i] * (K1 + 1) / (count[i] + norm[span[i]]);
            }
        }
        return out;
    }

    /** The first entry whose token is >= t (np.searchsorted, side "left"). */
    private int lowerBound(long t) {
        int lo = 0;
        int hi = token.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (token[mid] < t) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
}
