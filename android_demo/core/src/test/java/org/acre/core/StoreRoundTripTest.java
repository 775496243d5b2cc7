package org.acre.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** The Java writer and reader agree with each other, in both codecs, and a torn tail is cut away. */
public class StoreRoundTripTest {
    @Rule public TemporaryFolder tmp = new TemporaryFolder();

    private static final int L = 3;
    private static final int HKV = 2;
    private static final int S = 8;
    private static final int D = 16;

    private static StoreMeta meta(String codec) {
        return new StoreMeta("round-trip", S, L, HKV, D, 2, 4, codec);
    }

    @Test
    public void float16RoundTrip() throws Exception {
        roundTrip("float16");
    }

    @Test
    public void int8RoundTrip() throws Exception {
        roundTrip("int8");
    }

    private void roundTrip(String codec) throws Exception {
        Path dir = tmp.getRoot().toPath().resolve(codec);
        Random random = new Random(5);
        int[] sizes = {S, S, S, 5};
        float[][] ks = new float[sizes.length][];
        float[][] vs = new float[sizes.length][];
        int[][] ids = new int[sizes.length][];
        try (SpanStore store = SpanStore.create(dir, meta(codec))) {
            long start = 0;
            for (int s = 0; s < sizes.length; s++) {
                int n = sizes[s];
                ids[s] = random.ints(n, 0, 49152).toArray();
                ks[s] = gaussian(random, L * HKV * n * D);
                vs[s] = gaussian(random, L * HKV * n * D);
                store.append(start, ids[s], ks[s], vs[s], gaussian(random, meta(codec).repsElements()));
                start += n;
            }
            try {
                store.append(start, new int[] {1}, new float[L * HKV * D], new float[L * HKV * D],
                        new float[meta(codec).repsElements()]);
                fail("appended after a partial span");
            } catch (StoreException expected) {
                assertTrue(expected.getMessage().contains("partial"));
            }
            assertEquals(29, store.tokens());
        }
        try (SpanStore store = SpanStore.open(dir)) {
            assertEquals(sizes.length, store.spanCount());
            for (int s = 0; s < sizes.length; s++) {
                Span span = store.read(s);
                assertEquals(8L * s, span.start());
                assertArrayEquals(ids[s], span.tokens());
                assertClose(codec, ks[s], span.k());
                assertClose(codec, vs[s], span.v());
            }
            assertEquals(sizes.length * (long) meta(codec).recordBytes(), store.diskBytes());
        }
        // a torn write: half a record at the end is invisible to readers and cut by a writer
        Path spans = dir.resolve("spans.bin");
        long good = Files.size(spans);
        Files.write(spans, new byte[meta(codec).recordBytes() / 2], StandardOpenOption.APPEND);
        try (SpanStore reader = SpanStore.open(dir)) {
            assertEquals(sizes.length, reader.spanCount());
        }
        try (SpanStore writer = SpanStore.open(dir, "round-trip", true)) {
            assertEquals(good, Files.size(spans));
            assertEquals(sizes.length, writer.spanCount());
            try {
                SpanStore.open(dir, null, true).close();
                fail("two writers");
            } catch (StoreException expected) {
                assertTrue(expected.getMessage().contains("another writer"));
            }
        }
        try {
            SpanStore.open(dir, "another model", false);
            fail("opened with another fingerprint");
        } catch (StoreException expected) {
            assertTrue(expected.getMessage().contains("another model or bundle"));
        }
    }

    private static float[] gaussian(Random random, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) random.nextGaussian();
        return x;
    }

    private static void assertClose(String codec, float[] want, float[] got) {
        assertEquals(want.length, got.length);
        for (int row = 0; row < want.length / D; row++) {
            float max = 0;
            for (int i = row * D; i < (row + 1) * D; i++) max = Math.max(max, Math.abs(want[i]));
            for (int i = row * D; i < (row + 1) * D; i++) {
                if (codec.equals("float16")) {
                    assertEquals(Half.toFloat(Half.fromFloat(want[i])), got[i], 0f);
                } else {
                    assertEquals(want[i], got[i], max / 127f * 0.5f * 1.01f);  // half a quantization step
                }
            }
        }
    }
}
