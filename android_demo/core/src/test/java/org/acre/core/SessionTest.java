package org.acre.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;
import static org.junit.Assume.assumeTrue;

import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * The session flow on the vector bundle's geometry with a fake step program: ingest writes L2 and
 * keeps the pot within its capacity, a question refills the span that holds its needle, reads only
 * what it needs, and a reopened document answers the same without re-ingest.
 */
public class SessionTest {
    @Rule public TemporaryFolder tmp = new TemporaryFolder();

    /** One token per character (ids 3..299): enough to drive the session. */
    static final class CharTokenizer implements Tokenizer {
        @Override
        public int[] encode(String text) {
            return text.chars().map(c -> 3 + (c * 7 + 1) % 297).toArray();
        }

        @Override
        public String decode(int[] ids) {
            StringBuilder out = new StringBuilder();
            for (int id : ids) out.append((char) ('a' + id % 26));
            return out.toString();
        }

        @Override
        public int tokenId(String token) {
            return -1;
        }
    }

    private Session session(Bundle bundle) {
        return new Session(bundle, new FakeEngine(bundle.geometry, bundle.probeLayers()), new CharTokenizer(),
                Policy.named("acre"), 16, 2, StoreMeta.FLOAT16);
    }

    /** A document of n ordinary tokens with the needle at position at. */
    private static int[] document(int n, int at) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = 3 + (i * 31 + 7) % 290;
        for (int i = 0; i < n; i++) if (ids[i] == FakeEngine.NEEDLE) ids[i] = 78;
        ids[at] = FakeEngine.NEEDLE;
        return ids;
    }

    @Test
    public void ingestAskReopen() throws Exception {
        Bundle bundle = Bundle.open(Vectors.dir().resolve("bundle"));
        Path store = tmp.getRoot().toPath().resolve("doc.l2");
        int[] doc = document(1000, 500);
        List<String> answer = new ArrayList<>();
        List<Integer> spans;
        long read;
        try (Session s = session(bundle)) {
            FloatBuffer k = s.pot.k;
            long[] progress = {0, 0};
            assertEquals(1000, s.ingestIds(doc, store, (done, total) -> {
                assertTrue(done > progress[0]);
                progress[0] = done;
                progress[1] = total;
            }));
            assertEquals(1000, progress[0]);
            assertEquals(1000, progress[1]);
            assertSame("the pot is never reallocated", k, s.pot.k);
            assertTrue(s.pot.used() <= s.pot.capacity);
            Session.Profile before = s.profile();
            assertEquals(63, (before.l2DiskBytes() / SpanStore.open(store).meta.recordBytes()));  // ceil(1000 / 16)

            int tokens = s.generate(new int[] {5, FakeEngine.NEEDLE, 6}, 4, 0, 1, 0, t -> answer.add(String.valueOf(t)));
            assertEquals(4, tokens);
            spans = s.last.spans;
            assertTrue("the needle's span " + 500 / 16 + " is refilled: " + spans, spans.contains(500 / 16));
            assertTrue(spans.size() <= s.layout.refill() / 16);
            read = s.last.bytesRead;
            assertEquals("only the chosen spans' ids are read", spans.size() * (28L + 4 * 16), read);
            assertEquals(read, s.profile().l2BytesReadLastQuestion());
            assertSame(k, s.pot.k);
        }
        try (Session again = session(bundle)) {
            assertEquals(1000, again.openDocument(store));
            List<String> second = new ArrayList<>();
            again.generate(new int[] {5, FakeEngine.NEEDLE, 6}, 4, 0, 1, 0, t -> second.add(String.valueOf(t)));
            assertEquals(answer, second);
            assertEquals(spans, again.last.spans);
            assertEquals(read, again.last.bytesRead);
        }
        try (Session third = session(bundle)) {  // ingesting the same document again reopens it
            assertEquals(1000, third.ingestIds(doc, store, null));
        }
        assertTrue(Files.isRegularFile(store.resolve("pot.npz")));
    }

    /**
     * BM25 alone (attention and index off) finds the needle's span; the question's template ids
     * ("\n" here: the vector bundle has no chat template) are left out of its query.
     */
    @Test
    public void lexicalScoresAloneFindTheNeedle() {
        Bundle bundle = Bundle.open(Vectors.dir().resolve("bundle"));
        Policy acre = Policy.named("acre");
        Policy lexicalOnly = new Policy(acre.name(), acre.bounded(), acre.l1(), acre.refill(), false, false,
                acre.useProbes(), acre.useTree(), true, acre.noveltyWeight(), acre.mass(), acre.minSpans(), acre.neighbors());
        int[] doc = document(1000, 500);
        int newline = new CharTokenizer().encode("\n")[0];
        try (Session s = new Session(bundle, new FakeEngine(bundle.geometry, bundle.probeLayers()), new CharTokenizer(),
                lexicalOnly, 16, 2, StoreMeta.FLOAT16)) {
            s.ingestIds(doc, tmp.getRoot().toPath().resolve("lexical.l2"), null);
            s.generate(new int[] {newline, 5, FakeEngine.NEEDLE, 6, newline}, 1, 0, 1, 0, t -> { });
            assertTrue("the needle's span " + 500 / 16 + " is refilled: " + s.last.spans, s.last.spans.contains(500 / 16));
            double[] want = Selection.combineScores(null, null,
                    new LexicalIndex(doc, 16).scores(new int[] {5, FakeEngine.NEEDLE, 6}));
            double[] got = s.last.spanScores;
            assertEquals(want.length, got.length);
            for (int i = 0; i < want.length; i++) {
                assertTrue("span " + i + ": " + got[i] + " vs " + want[i], got[i] == want[i] || got[i] == 0);  // 0: resident
            }
        }
    }

    /**
     * The span index's part is a softmax over the mean of the retrieval heads' standardised scores
     * (session.py divides the index's per-head sums by the head count), not over their sum. Index
     * alone (attention and BM25 off), the last question token probing: the test rebuilds the index
     * from the store and the probe from the fake engine's queries.
     */
    @Test
    public void indexScoresAreTheMeanOverRetrievalHeads() {
        Bundle bundle = Bundle.open(Vectors.dir().resolve("bundle"));
        int[][] heads = bundle.retrievalHeads();
        assertTrue("needs two or more retrieval heads to tell a mean from a sum", heads.length > 1);
        Policy acre = Policy.named("acre");
        Policy indexOnly = new Policy(acre.name(), acre.bounded(), acre.l1(), acre.refill(), false, true,
                false, acre.useTree(), false, acre.noveltyWeight(), acre.mass(), acre.minSpans(), acre.neighbors());
        int[] doc = document(1000, 500);
        Path store = tmp.getRoot().toPath().resolve("index.l2");
        int[] question = {5, 6, FakeEngine.NEEDLE};  // the last token probes
        try (Session s = new Session(bundle, new FakeEngine(bundle.geometry, bundle.probeLayers()), new CharTokenizer(),
                indexOnly, 16, 2, StoreMeta.FLOAT16)) {
            s.ingestIds(doc, store, null);
            s.generate(question, 1, 0, 1, 0, t -> { });
            assertTrue("the needle's span " + 500 / 16 + " is refilled: " + s.last.spans, s.last.spans.contains(500 / 16));

            Geometry g = bundle.geometry;
            int[] layers = bundle.probeLayers();
            int groups = g.heads() / g.kvHeads();
            float[] probe = new float[layers.length * g.heads() * g.headDim()];  // [Lp, H, 1, D]
            for (int lp = 0; lp < layers.length; lp++) {
                for (int h = 0; h < g.heads(); h++) {
                    for (int x = 0; x < g.headDim(); x++) {
                        probe[(lp * g.heads() + h) * g.headDim() + x] = FakeEngine.key(FakeEngine.NEEDLE, layers[lp], h / groups, x);
                    }
                }
            }
            float[] reps;
            try (SpanStore opened = SpanStore.open(store)) {
                reps = opened.allReps();
            }
            SpanIndex index = new SpanIndex(reps, layers.length, g.kvHeads(), 2, g.headDim(), 8);
            double[] sum = index.scores(probe, g.heads(), 1, heads, 8, indexOnly.useTree());
            double[] mean = new double[sum.length];
            for (int i = 0; i < sum.length; i++) mean[i] = sum[i] / heads.length;
            double[] want = Selection.combineScores(null, mean, null);
            double[] ifSummed = Selection.combineScores(null, sum, null);
            double[] got = s.last.spanScores;
            assertEquals(want.length, got.length);
            boolean differs = false;
            for (int i = 0; i < want.length; i++) {
                if (got[i] == 0) continue;  // resident in the pot: no refill needed
                assertEquals("span " + i, Double.doubleToLongBits(want[i]), Double.doubleToLongBits(got[i]));
                differs |= Math.abs(ifSummed[i] - want[i]) > 1e-3 * want[i];
            }
            assertTrue("a softmax over the sum would give other scores", differs);
        }
    }

    /** The demo's document, ingested by the Python runtime (make demo), reopens here without re-ingest. */
    @Test
    public void opensAStoreThePythonRuntimeIngested() {
        Path bundleDir = TokenizerTest.bundleDir();
        Path store = bundleDir.getParent().resolve("document.l2");
        assumeTrue("no exported bundle and document store (make demo)",
                Files.isRegularFile(bundleDir.resolve("manifest.json")) && Files.isRegularFile(store.resolve("pot.npz")));
        Bundle bundle = Bundle.open(bundleDir, false);
        try (Session s = new Session(bundle, new FakeEngine(bundle.geometry, bundle.probeLayers()), new CharTokenizer(),
                Policy.named("acre"))) {
            int tokens = s.openDocument(store);
            Session.Profile profile = s.profile();
            assertEquals(tokens, profile.documentTokens());
            assertTrue(tokens > 0);
            assertEquals((tokens + 63) / 64 * (long) SpanStore.open(store).meta.recordBytes(), profile.l2DiskBytes());
            assertTrue(s.pot.used() > 0);
        }
    }

    @Test
    public void refusesBadInput() {
        Bundle bundle = Bundle.open(Vectors.dir().resolve("bundle"));
        try (Session s = session(bundle)) {
            try {
                s.generate(new int[] {5}, 1, 0, 1, 0, t -> { });
                fail("asked without a document");
            } catch (InputException expected) {
                assertTrue(expected.getMessage().contains("no document"));
            }
            try {
                s.ingestIds(new int[] {5, 300}, tmp.getRoot().toPath().resolve("x"), null);
                fail("token outside the vocabulary");
            } catch (InputException expected) {
                assertTrue(expected.getMessage().contains("outside the model's vocabulary"));
            }
            try {
                s.ingest("   ", tmp.getRoot().toPath().resolve("y"), null);
                fail("empty document");
            } catch (InputException expected) {
                assertTrue(expected.getMessage().contains("empty"));
            }
        }
    }

    @Test
    public void documentPromptStartsWithBosWithoutATemplate() {
        Bundle bundle = Bundle.open(Vectors.dir().resolve("bundle"));
        try (Session s = session(bundle)) {
            int[] ids = s.documentPromptIds("ab");
            assertEquals(3, ids.length);
            assertEquals(1, ids[0]);  // the vector bundle's bos_token_id
            assertArrayEquals(new CharTokenizer().encode("\n\nq?\n"), s.questionPromptIds("q?"));
        }
    }
}
