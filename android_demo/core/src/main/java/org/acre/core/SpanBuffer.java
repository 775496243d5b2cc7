package org.acre.core;

/**
 * Collects a stream of token K/V into spans of S tokens and appends each full span to the store
 * with its representative keys (those of the probe layers).
 */
public final class SpanBuffer {
    private final SpanStore store;
    private final int[] probeLayers;
    private final int rows;  // L * Hkv
    private final int s;
    private final int d;
    final int[] tokens;
    final float[] k;  // [L, Hkv, S, D]
    final float[] v;
    int fill;
    long start;

    public SpanBuffer(SpanStore store, int[] probeLayers) {
        StoreMeta m = store.meta;
        this.store = store;
        this.probeLayers = probeLayers.clone();
        this.rows = m.layers() * m.kvHeads();
        this.s = m.spanTokens();
        this.d = m.headDim();
        this.tokens = new int[s];
        this.k = new float[rows * s * d];
        this.v = new float[rows * s * d];
        this.start = store.tokens();
    }

    /**
     * Adds the first n rows of a chunk: ids [n], kChunk and vChunk [L, Hkv, width, D] (the step
     * program's k_new/v_new, width = its row count).
     */
    public void add(int[] ids, float[] kChunk, float[] vChunk, int width, int n) {
        int done = 0;
        while (done < n) {
            int take = Math.min(n - done, s - fill);
            System.arraycopy(ids, done, tokens, fill, take);
            for (int r = 0; r < rows; r++) {
                System.arraycopy(kChunk, (r * width + done) * d, k, (r * s + fill) * d, take * d);
                System.arraycopy(vChunk, (r * width + done) * d, v, (r * s + fill) * d, take * d);
            }
            fill += take;
            done += take;
            if (fill == s) flush();
        }
    }

    public void flush() {
        if (fill == 0) return;
        int n = fill;
        float[] kn = firstRows(k, n);
        StoreMeta m = store.meta;
        int kvHeads = m.kvHeads();
        float[] probe = new float[probeLayers.length * kvHeads * n * d];  // k[probe_layers], [Lp, Hkv, n, D]
        for (int i = 0; i < probeLayers.length; i++) {
            System.arraycopy(kn, probeLayers[i] * kvHeads * n * d, probe, i * kvHeads * n * d, kvHeads * n * d);
        }
        float[] reps = SpanIndex.representatives(probe, probeLayers.length * kvHeads, n, d, m.reps());
        int[] ids = new int[n];
        System.arraycopy(tokens, 0, ids, 0, n);
        store.append(start, ids, kn, firstRows(v, n), reps);
        start += n;
        fill = 0;
    }

    private float[] firstRows(float[] x, int n) {
        float[] out = new float[rows * n * d];
        for (int r = 0; r < rows; r++) System.arraycopy(x, r * s * d, out, r * n * d, n * d);
        return out;
    }
}
