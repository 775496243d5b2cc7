package org.acre.core;

import static org.junit.Assert.assertTrue;

/**
 * A stand-in step program for the session tests, deterministic and tiny. Each token has a fixed
 * small pseudo-random key per layer and head; the NEEDLE token's key is large and points along the
 * first axis, and so does its query, so a question holding NEEDLE probes the span that holds it.
 * It checks what the runtime promises the model: document entries in the pot sit at positions
 * before the chunk's own. (Question entries are not checked: like the Python session, the
 * re-encoding of refilled spans still sees the first prefill of the question, at later positions.)
 */
final class FakeEngine implements StepEngine {
    static final int NEEDLE = 77;
    final Geometry g;
    final int[] probeLayers;
    int calls;

    FakeEngine(Geometry g, int[] probeLayers) {
        this.g = g;
        this.probeLayers = probeLayers;
    }

    static float key(long token, int layer, int head, int d) {
        if (token == NEEDLE) return d == 0 ? 10f : 0f;
        long h = token * 1_000_003L + layer * 10_007L + head * 101L + d;
        h ^= h >>> 13;
        h *= 0x5bd1e995L;
        h ^= h >>> 15;
        return ((h & 0xffff) / 65535f - 0.5f);
    }

    @Override
    public Outputs step(long[] tokens, long[] positions, Pot pot, long lastIndex) {
        calls++;
        int w = tokens.length;
        int p = pot.capacity;
        for (int s = 0; s < p; s++) {
            boolean document = pot.kind(s) != SlotKind.QUESTION && pot.kind(s) != SlotKind.FREE;
            if (pot.valid(s) && document) assertTrue("slot " + s + " at position " + pot.position(s) + " >= " + positions[0],
                    pot.position(s) < positions[0]);
        }
        int kvh = g.kvHeads();
        int d = g.headDim();
        float[] k = new float[g.layers() * kvh * w * d];
        float[] v = new float[k.length];
        for (int l = 0; l < g.layers(); l++) {
            for (int h = 0; h < kvh; h++) {
                for (int r = 0; r < w; r++) {
                    for (int x = 0; x < d; x++) {
                        int at = ((l * kvh + h) * w + r) * d + x;
                        k[at] = key(tokens[r], l, h, x);
                        v[at] = -k[at];
                    }
                }
            }
        }
        int heads = g.heads();
        int groups = heads / kvh;
        float[] q = new float[probeLayers.length * heads * w * d];
        for (int lp = 0; lp < probeLayers.length; lp++) {
            for (int h = 0; h < heads; h++) {
                for (int r = 0; r < w; r++) {
                    for (int x = 0; x < d; x++) q[((lp * heads + h) * w + r) * d + x] = key(tokens[r], probeLayers[lp], h / groups, x);
                }
            }
        }
        float[] attention = new float[w * p];  // softmax of layer-0 head-0 scores over the valid slots
        for (int r = 0; r < w; r++) {
            double total = 0;
            double[] e = new double[p];
            for (int s = 0; s < p; s++) {
                if (!pot.valid(s)) continue;
                double dot = 0;
                for (int x = 0; x < d; x++) dot += key(tokens[r], 0, 0, x) * pot.k.get(pot.offset(0, 0, s) + x);
                total += e[s] = Math.exp(dot);
            }
            for (int s = 0; s < p; s++) attention[r * p + s] = total > 0 ? (float) (e[s] / total) : 0f;
        }
        float[] logits = new float[g.vocab()];
        logits[(int) (3 + positions[(int) lastIndex] % 200)] = 1f;  // never a stop token
        return new Outputs(w, logits, k, v, attention, q);
    }
}
