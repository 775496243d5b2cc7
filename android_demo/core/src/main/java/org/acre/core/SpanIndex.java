package org.acre.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * The span index (acre/runtime/span_index.py): representative keys per span, grouped into a tree
 * searched top-down by probe queries.
 *
 * <p>Each span is summarised, per probe layer and KV head, by its R keys of largest norm; a coarser
 * node keeps the R largest-norm keys of its (up to fanout) children. For each retrieval head, a
 * node's score is the best dot product of any probe query with any of its keys, standardised over
 * the candidate nodes; the heads' standardised scores are summed.
 */
public final class SpanIndex {
    public final int fanout;
    public final int probeLayers;
    public final int kvHeads;
    public final int reps;
    public final int headDim;
    /** levels.get(0) = the spans [N, Lp, Hkv, R, D]; the last is the coarsest. Values are halves. */
    public final List<float[]> levels = new ArrayList<>();

    public SpanIndex(float[] spanReps, int probeLayers, int kvHeads, int reps, int headDim, int fanout) {
        this.fanout = fanout;
        this.probeLayers = probeLayers;
        this.kvHeads = kvHeads;
        this.reps = reps;
        this.headDim = headDim;
        levels.add(spanReps);
        int node = nodeSize();
        while (count(levels.get(levels.size() - 1)) > fanout) {
            float[] child = levels.get(levels.size() - 1);
            int children = count(child);
            int parents = (children + fanout - 1) / fanout;
            float[] parent = new float[parents * node];
            for (int p = 0; p < parents; p++) {
                int g = Math.min(fanout, children - p * fanout);
                for (int lp = 0; lp < probeLayers; lp++) {
                    for (int h = 0; h < kvHeads; h++) {
                        // pool the g * R keys of this head: child 0's R keys, then child 1's, ...
                        float[] pooled = new float[g * reps * headDim];
                        for (int c = 0; c < g; c++) {
                            int src = (((p * fanout + c) * probeLayers + lp) * kvHeads + h) * reps * headDim;
                            System.arraycopy(child, src, pooled, c * reps * headDim, reps * headDim);
                        }
                        float[] picked = representatives(pooled, 1, g * reps, headDim, reps);
                        int dst = ((p * probeLayers + lp) * kvHeads + h) * reps * headDim;
                        System.arraycopy(picked, 0, parent, dst, reps * headDim);
                    }
                }
            }
            levels.add(parent);
        }
    }

    private int nodeSize() {
        return probeLayers * kvHeads * reps * headDim;
    }

    private int count(float[] level) {
        return level.length / nodeSize();
    }

    public int spans() {
        return count(levels.get(0));
    }

    /** Bytes the index holds in RAM (as float16, the way Python keeps it). */
    public long nbytes() {
        long n = 0;
        for (float[] level : levels) n += level.length * 2L;
        return n;
    }

    /**
     * keys [groups, n, D] (groups = Lp * Hkv) of one span -> [groups, R, D], the R keys of largest
     * norm per group, largest first, ties to the earlier key, repeated when n < R.
     */
    public static float[] representatives(float[] keys, int groups, int n, int d, int r) {
        float[] out = new float[groups * r * d];
        for (int g = 0; g < groups; g++) {
            float[] norms = new float[n];
            for (int i = 0; i < n; i++) norms[i] = Sums.norm(keys, (g * n + i) * d, d);
            Integer[] order = new Integer[n];
            for (int i = 0; i < n; i++) order[i] = i;
            Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -norms[i]));  // stable
            for (int j = 0; j < r; j++) {
                System.arraycopy(keys, (g * n + order[j % n]) * d, out, (g * r + j) * d, d);
            }
        }
        return out;
    }

    /**
     * Score of every span, NEGATIVE_INFINITY for spans the tree search did not reach.
     *
     * @param queries [Lp, H, T, D] probe queries
     * @param heads retrieval heads as (probe-layer index, query head)
     */
    public double[] scores(float[] queries, int queryHeads, int tokens, int[][] heads, int beam, boolean tree) {
        int spans = spans();
        double[] out = new double[spans];
        Arrays.fill(out, Double.NEGATIVE_INFINITY);
        if (spans == 0) return out;
        int[] candidates = range(spans);
        if (tree && levels.size() > 1) {
            candidates = range(count(levels.get(levels.size() - 1)));
            for (int depth = levels.size() - 1; depth > 0; depth--) {
                double[] score = headScores(queries, queryHeads, tokens, levels.get(depth), candidates, heads);
                Integer[] rank = new Integer[candidates.length];
                for (int i = 0; i < rank.length; i++) rank[i] = i;
                Arrays.sort(rank, Comparator.comparingDouble((Integer i) -> -score[i]));  // stable
                int below = count(levels.get(depth - 1));
                List<Integer> children = new ArrayList<>();
                for (int i = 0; i < Math.min(beam, rank.length); i++) {
                    int node = candidates[rank[i]];
                    for (int c = node * fanout; c < Math.min((node + 1) * fanout, below); c++) children.add(c);
                }
                candidates = children.stream().mapToInt(Integer::intValue).sorted().toArray();
            }
        }
        double[] leaf = headScores(queries, queryHeads, tokens, levels.get(0), candidates, heads);
        for (int i = 0; i < candidates.length; i++) out[candidates[i]] = leaf[i];
        return out;
    }

    /** Summed standardised best-match score of each candidate node, in float32 as numpy does. */
    double[] headScores(float[] queries, int queryHeads, int tokens, float[] level, int[] nodes, int[][] heads) {
        int groups = queryHeads / kvHeads;
        double[] total = new double[nodes.length];
        float[] best = new float[nodes.length];
        for (int[] head : heads) {
            int lp = head[0];
            int h = head[1];
            int kv = h / groups;
            for (int i = 0; i < nodes.length; i++) {
                float top = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < tokens; t++) {
                    int q = ((lp * queryHeads + h) * tokens + t) * headDim;
                    for (int r = 0; r < reps; r++) {
                        int key = (((nodes[i] * probeLayers + lp) * kvHeads + kv) * reps + r) * headDim;
                        float dot = 0f;
                        for (int d = 0; d < headDim; d++) dot += queries[q + d] * level[key + d];
                        top = Math.max(top, dot);
                    }
                }
                best[i] = top;
            }
            float mean = Sums.pairwise(best, 0, best.length) / best.length;
            float[] squares = new float[best.length];
            for (int i = 0; i < best.length; i++) squares[i] = (best[i] - mean) * (best[i] - mean);
            float std = (float) Math.sqrt(Sums.pairwise(squares, 0, squares.length) / squares.length);
            for (int i = 0; i < nodes.length; i++) total[i] += (best[i] - mean) / (std + 1e-6f);
        }
        return total;
    }

    private static int[] range(int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = i;
        return out;
    }
}
