package org.acre.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.fail;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;
import org.junit.runner.RunWith;
import org.junit.runners.Parameterized;

/** l2.json: both vector stores read back bit for bit; damage gives the stated span counts and refusals;
 * the Java writer reproduces the committed spans.bin. */
@RunWith(Parameterized.class)
public class L2VectorsTest {
    @Rule public TemporaryFolder tmp = new TemporaryFolder();

    @Parameterized.Parameters(name = "{0}")
    public static Collection<Object[]> stores() {
        List<Object[]> out = new ArrayList<>();
        JsonObject l2 = Vectors.object("l2.json");
        assertEquals("<4sIIQII", l2.get("header_format").getAsString());
        for (JsonElement s : l2.getAsJsonArray("stores")) {
            out.add(new Object[] {s.getAsJsonObject().get("dir").getAsString(), s.getAsJsonObject()});
        }
        return out;
    }

    private final String dir;
    private final JsonObject store;

    public L2VectorsTest(String dir, JsonObject store) {
        this.dir = dir;
        this.store = store;
    }

    @Test
    public void readsBackBitForBit() throws Exception {
        try (SpanStore opened = SpanStore.open(Vectors.copy(dir, tmp.getRoot().toPath()))) {
            assertEquals(store.get("record_bytes").getAsInt(), opened.meta.recordBytes());
            assertEquals(store.get("span_count").getAsInt(), opened.spanCount());
            JsonArray spans = store.getAsJsonArray("spans");
            for (int i = 0; i < spans.size(); i++) {
                JsonObject want = spans.get(i).getAsJsonObject();
                Span span = opened.read(i);
                assertEquals(want.get("start").getAsLong(), span.start());
                assertEquals(want.get("start").getAsLong(), opened.start(i));
                assertArrayEquals(Vectors.ints(want.get("tokens")), span.tokens());
                assertBits("span " + i + " k", Vectors.floats(want.get("k")), span.k());
                assertBits("span " + i + " v", Vectors.floats(want.get("v")), span.v());
                assertEquals(want.get("k_sha256").getAsString(), sha256(span.k()));
                assertEquals(want.get("v_sha256").getAsString(), sha256(span.v()));
                assertBits("span " + i + " reps", Vectors.floats(want.get("reps")), opened.reps(i));
                assertArrayEquals(Vectors.ints(want.get("tokens")), opened.readTokens(i).tokens());
            }
        }
    }

    @Test
    public void truncationsAndBitFlips() throws Exception {
        int rb = store.get("record_bytes").getAsInt();
        int cases = 0;
        for (String kind : new String[] {"truncations", "bit_flips"}) {
            for (JsonElement e : store.getAsJsonArray(kind)) {
                JsonObject c = e.getAsJsonObject();
                Path copy = Vectors.copy(dir, tmp.newFolder().toPath());
                try (RandomAccessFile f = new RandomAccessFile(copy.resolve("spans.bin").toFile(), "rw")) {
                    if (c.has("truncate_to")) {
                        f.setLength(c.get("truncate_to").getAsLong());
                    } else {
                        long at = c.get("flip_byte").getAsLong();
                        f.seek(at);
                        int b = f.read();
                        f.seek(at);
                        f.write(b ^ c.get("xor").getAsInt());
                    }
                }
                try (SpanStore opened = SpanStore.open(copy)) {
                    assertEquals(c.toString(), c.get("span_count").getAsInt(), opened.spanCount());
                    assertEquals(c.toString(), ints(c.get("read_refused")), refused(opened, false));
                    assertEquals(c.toString(), ints(c.get("read_tokens_refused")), refused(opened, true));
                }
                if (c.has("truncate_to")) {  // a writer cuts the torn tail away
                    try (SpanStore writer = SpanStore.open(copy, null, true)) {
                        assertEquals((long) writer.spanCount() * rb, Files.size(copy.resolve("spans.bin")));
                    }
                }
                cases++;
            }
        }
        assertEquals(8, cases);
    }

    /** The Java writer, given the decoded spans, writes the committed bytes (float16 re-encodes exactly;
     * int8 re-quantizes its own decoded values to the same codes and scales). */
    @Test
    public void writerReproducesCommittedBytes() throws Exception {
        StoreMeta meta;
        try (SpanStore committed = SpanStore.open(Vectors.dir().resolve(dir))) {
            meta = committed.meta;
        }
        Path out = tmp.getRoot().toPath().resolve("written");
        try (SpanStore written = SpanStore.create(out, meta)) {
            for (JsonElement e : store.getAsJsonArray("spans")) {
                JsonObject s = e.getAsJsonObject();
                written.append(s.get("start").getAsLong(), Vectors.ints(s.get("tokens")), Vectors.floats(s.get("k")),
                        Vectors.floats(s.get("v")), Vectors.floats(s.get("reps")));
            }
        }
        assertArrayEquals(Files.readAllBytes(Vectors.dir().resolve(dir).resolve("spans.bin")),
                Files.readAllBytes(out.resolve("spans.bin")));
        try (SpanStore reopened = SpanStore.open(out)) {
            assertEquals(store.get("span_count").getAsInt(), reopened.spanCount());
        }
    }

    private static List<Integer> refused(SpanStore store, boolean tokensOnly) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < store.spanCount(); i++) {
            try {
                if (tokensOnly) store.readTokens(i);
                else store.read(i);
            } catch (StoreException e) {
                out.add(i);
            }
        }
        return out;
    }

    private static List<Integer> ints(JsonElement array) {
        List<Integer> out = new ArrayList<>();
        for (int x : Vectors.ints(array)) out.add(x);
        return out;
    }

    static void assertBits(String what, float[] want, float[] got) {
        assertEquals(what + " length", want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToIntBits(want[i]) != Float.floatToIntBits(got[i])) {
                fail(what + "[" + i + "]: " + got[i] + ", expected " + want[i]);
            }
        }
    }

    static String sha256(float[] x) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(x.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : x) b.putFloat(f);
        return Bytes.hex(MessageDigest.getInstance("SHA-256").digest(b.array()));
    }
}
