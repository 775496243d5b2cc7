package org.acre.core;

import static org.junit.Assert.assertEquals;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import org.junit.Test;

/** selection.json span_index: the tree levels exactly; tree and flat scores within tolerance; the reached set exactly. */
public class SpanIndexVectorsTest {
    private static final JsonObject CASE = Vectors.object("selection.json").getAsJsonObject("span_index");

    private static SpanIndex index() {
        int[] shape = Vectors.ints(CASE.get("reps_shape"));  // [N, Lp, Hkv, R, D]
        return new SpanIndex(Vectors.floats(CASE.get("reps")), shape[1], shape[2], shape[3], shape[4],
                CASE.get("fanout").getAsInt());
    }

    private static int[][] heads() {
        JsonArray a = CASE.getAsJsonArray("heads");
        int[][] out = new int[a.size()][];
        for (int i = 0; i < out.length; i++) out[i] = Vectors.ints(a.get(i));
        return out;
    }

    @Test
    public void levelsAreExact() {
        SpanIndex index = index();
        int[] levels = Vectors.ints(CASE.get("levels"));
        assertEquals(levels.length, index.levels.size());
        int node = 2 * 2 * 2 * 4;
        for (int i = 0; i < levels.length; i++) assertEquals(levels[i], index.levels.get(i).length / node);
        JsonArray want = CASE.getAsJsonArray("level_reps");
        for (int i = 0; i < want.size(); i++) {
            float[] w = Vectors.floats(want.get(i));
            float[] got = index.levels.get(i + 1);
            assertEquals(w.length, got.length);
            for (int j = 0; j < w.length; j++) {
                assertEquals("level " + (i + 1) + " value " + j, Float.floatToIntBits(w[j]), Float.floatToIntBits(got[j]));
            }
        }
    }

    @Test
    public void treeAndFlatScores() {
        SpanIndex index = index();
        int[] q = Vectors.ints(CASE.get("queries_shape"));  // [Lp, H, T, D]
        float[] queries = Vectors.floats(CASE.get("queries"));
        double tolerance = CASE.get("tolerance").getAsDouble();
        double[] tree = index.scores(queries, q[1], q[2], heads(), CASE.get("beam").getAsInt(), true);
        double[] flat = index.scores(queries, q[1], q[2], heads(), 8, false);
        compare("tree", Vectors.doublesOrNegInf(CASE.get("tree_scores")), tree, tolerance);
        compare("flat", Vectors.doublesOrNegInf(CASE.get("flat_scores")), flat, tolerance);
    }

    private static void compare(String what, double[] want, double[] got, double tolerance) {
        assertEquals(want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            assertEquals(what + " span " + i + " reached", Double.isInfinite(want[i]), Double.isInfinite(got[i]));
            if (!Double.isInfinite(want[i])) {
                assertEquals(what + " span " + i, want[i], got[i], tolerance);
            }
        }
    }
}
