package org.acre.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.Test;

/** selection.json: layouts, budgets, choose_spans (with combine_scores), lexical, refill_placement. */
public class SelectionVectorsTest {
    private static final JsonObject DATA = Vectors.object("selection.json");

    @Test
    public void layouts() {
        int checked = 0;
        for (JsonElement e : DATA.getAsJsonArray("layouts")) {
            JsonObject c = e.getAsJsonObject();
            Policy policy = Policy.named(c.get("policy").getAsString());
            int capacity = c.get("capacity").getAsInt();
            int chunk = c.get("chunk").getAsInt();
            int span = c.get("span").getAsInt();
            String what = c.toString();
            if (c.has("error")) {
                try {
                    Layout.plan(policy, capacity, chunk, span);
                    fail(what + ": planned");
                } catch (InputException expected) {
                    assertTrue(expected.getMessage().contains("too small"));
                }
            } else {
                Layout got = Layout.plan(policy, capacity, chunk, span);
                JsonObject want = c.getAsJsonObject("layout");
                assertEquals(what, want.get("sink").getAsInt(), got.sink());
                assertEquals(what, want.get("l1").getAsInt(), got.l1());
                assertEquals(what, want.get("recent").getAsInt(), got.recent());
                assertEquals(what, want.get("refill").getAsInt(), got.refill());
                assertEquals(what, want.get("question").getAsInt(), got.question());
                assertEquals(what, capacity, got.total());
            }
            checked++;
        }
        assertEquals(12, checked);
    }

    @Test
    public void budgets() {
        for (JsonElement e : DATA.getAsJsonArray("budgets")) {
            JsonObject c = e.getAsJsonObject();
            assertEquals("smollm2", c.get("geometry").getAsString());
            long budget = c.get("budget_bytes").getAsLong();
            String dtype = c.get("kv_dtype").getAsString();
            if (c.has("error")) {
                try {
                    Budget.slotsForBudget(Geometry.SMOLLM2_135M, budget, dtype);
                    fail(c + ": gave slots");
                } catch (InputException expected) {
                    assertTrue(expected.getMessage().contains("at least"));
                }
            } else {
                assertEquals(c.toString(), c.get("slots").getAsInt(), Budget.slotsForBudget(Geometry.SMOLLM2_135M, budget, dtype));
            }
        }
    }

    @Test
    public void combineScoresBitForBit() {
        int cases = 0;
        int withLexical = 0;
        for (JsonElement e : DATA.getAsJsonArray("choose_spans")) {
            JsonObject c = e.getAsJsonObject();
            double[] attention = c.get("attention").isJsonNull() ? null : Vectors.doubles(c.get("attention"));
            double[] z = c.get("index_z").isJsonNull() ? null : Vectors.doublesOrNegInf(c.get("index_z"));
            double[] lexical = !c.has("lexical") || c.get("lexical").isJsonNull() ? null : Vectors.doubles(c.get("lexical"));
            double[] got = Selection.combineScores(attention, z, lexical);
            double[] want = Vectors.doubles(c.get("scores"));
            assertEquals(want.length, got.length);
            for (int i = 0; i < want.length; i++) {
                assertEquals("case " + cases + " span " + i + ": " + got[i] + " vs " + want[i],
                        Double.doubleToLongBits(want[i]), Double.doubleToLongBits(got[i]));
            }
            if (lexical != null) {  // the lexical part counts: without it the scores differ
                withLexical++;
                assertFalse("case " + cases, Arrays.equals(want, Selection.combineScores(attention, z, null)));
            }
            cases++;
        }
        assertEquals(18, cases);
        assertEquals(2, withLexical);
    }

    @Test
    public void lexicalScoresWithinTolerance() {
        int cases = 0;
        for (JsonElement e : DATA.getAsJsonArray("lexical")) {
            JsonObject c = e.getAsJsonObject();
            LexicalIndex index = new LexicalIndex(Vectors.ints(c.get("document_ids")), c.get("span_tokens").getAsInt());
            double[] want = Vectors.doubles(c.get("scores"));
            assertArrayEquals("case " + cases, want, index.scores(Vectors.ints(c.get("query_ids"))),
                    c.get("tolerance").getAsDouble());
            cases++;
        }
        assertEquals(3, cases);
    }

    @Test
    public void chooseSpans() {
        for (JsonElement e : DATA.getAsJsonArray("choose_spans")) {
            JsonObject c = e.getAsJsonObject();
            List<Integer> got = Selection.chooseSpans(Vectors.doubles(c.get("scores")), c.get("budget").getAsInt(),
                    c.get("mass").getAsDouble(), c.get("min_spans").getAsInt(), c.get("neighbors").getAsInt());
            List<Integer> want = new ArrayList<>();
            for (int x : Vectors.ints(c.get("chosen"))) want.add(x);
            assertEquals(c.get("scores").toString(), want, got);
        }
    }

    @Test
    public void refillPlacement() {
        for (JsonElement e : DATA.getAsJsonArray("refill_placement")) {
            JsonObject c = e.getAsJsonObject();
            List<Integer> spans = new ArrayList<>();
            for (int x : Vectors.ints(c.get("spans"))) spans.add(x);
            List<Long> starts = new ArrayList<>();
            for (long x : Vectors.longs(c.get("starts"))) starts.add(x);
            List<Integer> lengths = new ArrayList<>();
            for (int x : Vectors.ints(c.get("lengths"))) lengths.add(x);
            Set<Long> resident = new HashSet<>();
            for (long x : Vectors.longs(c.get("resident"))) resident.add(x);
            Selection.Placement got = Selection.refillPlacement(spans, starts, lengths, resident,
                    Vectors.longs(c.get("free_slots")));
            assertArrayEquals(Vectors.longs(c.get("slots")), got.slots());
            assertArrayEquals(Vectors.longs(c.get("tokens")), got.tokens());
        }
    }
}
