package org.acre.core;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.zip.CRC32;

/**
 * One document's L2 (the format of acre/runtime/l2.py): store.json + spans.bin, an append-only file
 * of fixed-size records, one per span of S tokens. Only chosen spans are read, by positional reads,
 * each verified against its crc32 before it is served.
 *
 * <p>Opening indexes the complete records: size / record_bytes of them; if the last one fails its
 * crc it is dropped (a torn write); a header whose magic, span number or n is wrong ends the store
 * there. A writer also cuts the file back to the last good record.
 */
public final class SpanStore implements Closeable {
    public static final String FORMAT = "acre-l2";
    public static final int VERSION = 1;

    public final Path path;
    public final StoreMeta meta;
    public final JsonObject info;
    private final List<Long> starts = new ArrayList<>();
    private final List<Integer> lengths = new ArrayList<>();
    private final List<float[]> reps = new ArrayList<>();  // [Lp, Hkv, R, D] per span, half values
    private final FileChannel channel;
    private final boolean writable;
    private final WriterLock lock;  // null when read-only
    private long bytesRead;

    private SpanStore(Path path, StoreMeta meta, JsonObject info, WriterLock lock) throws IOException {
        this.path = path;
        this.meta = meta;
        this.info = info;
        this.lock = lock;
        this.writable = lock != null;
        this.channel = writable
                ? FileChannel.open(path.resolve("spans.bin"), StandardOpenOption.READ, StandardOpenOption.WRITE)
                : FileChannel.open(path.resolve("spans.bin"), StandardOpenOption.READ);
    }

    // ---- create / open ------------------------------------------------------------------------

    public static SpanStore create(Path path, StoreMeta meta) {
        WriterLock lock = null;
        try {
            Files.createDirectories(path);
            lock = WriterLock.acquire(path);  // before touching anything another writer may own
            JsonObject info = new JsonObject();
            info.addProperty("format", FORMAT);
            info.addProperty("version", VERSION);
            info.add("meta", meta.toJson());
            info.addProperty("complete", false);
            Files.deleteIfExists(path.resolve("pot.npz"));
            Files.write(path.resolve("spans.bin"), new byte[0]);
            writeJson(path.resolve("store.json"), info);
            return new SpanStore(path, meta, info, lock);
        } catch (IOException e) {
            if (lock != null) lock.release();
            throw new StoreException(path + ": cannot create the L2 store (" + e.getMessage() + ")", e);
        }
    }

    public static SpanStore open(Path path) {
        return open(path, null, false);
    }

    /** @param fingerprint if not null, the store must have been written for this model and bundle */
    public static SpanStore open(Path path, String fingerprint, boolean writable) {
        Path header = path.resolve("store.json");
        if (!Files.isRegularFile(header) || !Files.isRegularFile(path.resolve("spans.bin"))) {
            throw new StoreException(path + ": not an L2 store (store.json or spans.bin missing)");
        }
        JsonObject info;
        StoreMeta meta;
        try {
            JsonElement parsed = Json.parse(header);
            if (!parsed.isJsonObject()) throw new IllegalArgumentException("not an object");
            info = parsed.getAsJsonObject();
            JsonElement format = info.get("format");
            if (format == null || !format.isJsonPrimitive() || !FORMAT.equals(format.getAsString())) {
                throw new StoreException(header + ": not an acre L2 store");
            }
            JsonElement version = info.get("version");
            if (!Json.isNumber(version) || version.getAsDouble() != VERSION) {
                throw new StoreException(header + ": L2 format version " + version + ", expected " + VERSION);
            }
            meta = StoreMeta.fromJson(Json.object(info, "meta"));
        } catch (IOException | IllegalArgumentException | IllegalStateException e) {
            throw new StoreException(header + ": unreadable store header (" + e.getMessage() + ")", e);
        }
        if (fingerprint != null && !fingerprint.equals(meta.fingerprint())) {
            throw new StoreException(path + ": this document was ingested with another model or bundle; ingest it again");
        }
        WriterLock lock = null;
        try {
            lock = writable ? WriterLock.acquire(path) : null;
            SpanStore store = new SpanStore(path, meta, info, lock);
            store.scan();
            return store;
        } catch (IOException e) {
            if (lock != null) lock.release();
            throw new StoreException(path + ": cannot read the L2 store (" + e.getMessage() + ")", e);
        }
    }

    private void scan() throws IOException {
        long size = channel.size();
        int rb = meta.recordBytes();
        long count = size / rb;
        if (count > 0 && !verify((int) (count - 1))) count--;  // a torn last write: its checksum fails
        for (int i = 0; i < count; i++) {
            byte[] head = new byte[SpanHeader.BYTES];
            readFully(head, (long) i * rb);
            SpanHeader h = SpanHeader.read(head);
            if (!h.magicOk() || h.span() != i || h.n() <= 0 || h.n() > meta.spanTokens()) {
                count = i;  // records after a damaged header cannot be trusted to be in order
                break;
            }
            starts.add(h.start());
            lengths.add((int) h.n());
            byte[] raw = new byte[rb - meta.repsOffset()];
            readFully(raw, (long) i * rb + meta.repsOffset());
            reps.add(KvCodec.getHalf(le(raw), raw.length / 2, 1));
        }
        if (size != count * rb && writable) channel.truncate(count * rb);  // past the last good record
    }

    // ---- write --------------------------------------------------------------------------------

    public int spanCount() {
        return starts.size();
    }

    /** Document tokens covered by the stored spans. */
    public long tokens() {
        return starts.isEmpty() ? 0 : starts.get(starts.size() - 1) + lengths.get(lengths.size() - 1);
    }

    /**
     * Appends one span: n <= S tokens, k and v float32 [L, Hkv, n, D], reps [Lp, Hkv, R, D]
     * (stored as float16). The record is written in one call; if that fails, nothing of it stays.
     */
    public void append(long start, int[] tokens, float[] k, float[] v, float[] reps) {
        int n = tokens.length;
        int s = meta.spanTokens();
        int d = meta.headDim();
        if (!writable) throw new StoreException(path + ": opened read-only");
        if (n <= 0 || n > s) throw new StoreException("span of " + n + " tokens; spans hold 1.." + s);
        if (!lengths.isEmpty() && lengths.get(lengths.size() - 1) != s) {
            throw new StoreException("only the last span of a document may be partial");
        }
        int rows = meta.layers() * meta.kvHeads();
        if (k.length != rows * n * d || v.length != k.length || reps.length != meta.repsElements()) {
            throw new StoreException("span arrays do not match the store geometry");
        }
        ByteBuffer record = ByteBuffer.allocate(meta.recordBytes()).order(ByteOrder.LITTLE_ENDIAN);
        Bytes.at(record, meta.tokensOffset());
        for (int i = 0; i < s; i++) record.putInt(i < n ? tokens[i] : 0);
        float[] kPadded = pad(k, rows, n, s, d);
        float[] vPadded = pad(v, rows, n, s, d);
        if (meta.int8()) {
            ByteBuffer scales = Bytes.at(record.duplicate().order(ByteOrder.LITTLE_ENDIAN), meta.scalesOffset());
            KvCodec.putInt8(record, scales, kPadded, d);
            KvCodec.putInt8(record, scales, vPadded, d);
        } else {
            KvCodec.putHalf(record, kPadded);
            KvCodec.putHalf(record, vPadded);
        }
        Bytes.at(record, meta.repsOffset());
        KvCodec.putHalf(record, reps);
        byte[] bytes = record.array();
        int span = spanCount();
        long tokenCrc = crc(bytes, meta.tokensOffset(), 4 * s);
        SpanHeader header = new SpanHeader(SpanHeader.MAGIC, span, n, start, 0, tokenCrc);
        System.arraycopy(header.pack(0), 0, bytes, 0, SpanHeader.BYTES);
        long recordCrc = crc(bytes, 0, bytes.length);
        System.arraycopy(header.pack(recordCrc), 0, bytes, 0, SpanHeader.BYTES);
        long at = (long) span * meta.recordBytes();
        try {
            ByteBuffer out = ByteBuffer.wrap(bytes);
            while (out.hasRemaining()) channel.write(out, at + out.position());
        } catch (IOException e) {
            try {
                channel.truncate(at);  // no partial record stays behind
            } catch (IOException ignored) {
                // the torn tail is dropped on the next open anyway
            }
            throw new StoreException(path.resolve("spans.bin") + ": cannot write span " + span + " ("
                    + e.getMessage() + "); the " + span + " spans before it are intact", e);
        }
        starts.add(start);
        lengths.add(n);
        float[] stored = new float[reps.length];  // what a reader will see: the half values
        for (int i = 0; i < reps.length; i++) stored[i] = Half.toFloat(Half.fromFloat(reps[i]));
        this.reps.add(stored);
    }

    private static float[] pad(float[] x, int rows, int n, int s, int d) {
        float[] out = new float[rows * s * d];
        for (int r = 0; r < rows; r++) System.arraycopy(x, r * n * d, out, r * s * d, n * d);
        return out;
    }

    /** Makes the spans durable and marks the document complete in store.json (with `extra` fields). */
    public void finish(JsonObject extra) {
        try {
            channel.force(true);
            info.addProperty("complete", true);
            info.addProperty("document_tokens", tokens());
            info.addProperty("spans", spanCount());
            for (String key : extra.keySet()) info.add(key, extra.get(key));
            writeJson(path.resolve("store.json"), info);
        } catch (IOException e) {
            throw new StoreException(path + ": cannot write (" + e.getMessage() + "); the store is unchanged", e);
        }
    }

    // ---- read ---------------------------------------------------------------------------------

    public long start(int span) {
        return starts.get(span);
    }

    public int length(int span) {
        return lengths.get(span);
    }

    public List<Long> starts() {
        return Collections.unmodifiableList(starts);
    }

    public List<Integer> lengths() {
        return Collections.unmodifiableList(lengths);
    }

    /** Representative keys of one span, [Lp, Hkv, R, D] (float16 values as float32; kept in RAM). */
    public float[] reps(int span) {
        return reps.get(span);
    }

    /** Every span's representative keys, [spans, Lp, Hkv, R, D]. */
    public float[] allReps() {
        int each = meta.repsElements();
        float[] out = new float[reps.size() * each];
        for (int i = 0; i < reps.size(); i++) System.arraycopy(reps.get(i), 0, out, i * each, each);
        return out;
    }

    public Span read(int span) {
        checkExists(span);
        byte[] raw = record(span);
        SpanHeader h = SpanHeader.read(raw);
        if (!h.magicOk() || h.span() != span || recordCrc(raw) != h.crc()) {
            throw new StoreException(path.resolve("spans.bin") + ": span " + span + " fails its checksum; not served");
        }
        int n = (int) h.n();
        int s = meta.spanTokens();
        int d = meta.headDim();
        int rows = meta.layers() * meta.kvHeads();
        ByteBuffer b = le(raw);
        int[] tokens = new int[n];
        Bytes.at(b, meta.tokensOffset());
        for (int i = 0; i < n; i++) tokens[i] = b.getInt();
        float[] k;
        float[] v;
        if (meta.int8()) {
            ByteBuffer scales = Bytes.at(le(raw), meta.scalesOffset());
            k = KvCodec.getInt8(Bytes.at(b, meta.kOffset()), scales, rows * s, d);
            v = KvCodec.getInt8(Bytes.at(b, meta.vOffset()), scales, rows * s, d);
        } else {
            k = KvCodec.getHalf(Bytes.at(b, meta.kOffset()), rows * s, d);
            v = KvCodec.getHalf(Bytes.at(b, meta.vOffset()), rows * s, d);
        }
        return new Span(span, h.start(), tokens, firstRows(k, rows, s, n, d), firstRows(v, rows, s, n, d));
    }

    private static float[] firstRows(float[] x, int rows, int s, int n, int d) {
        float[] out = new float[rows * n * d];
        for (int r = 0; r < rows; r++) System.arraycopy(x, r * s * d, out, r * n * d, n * d);
        return out;
    }

    /** The token ids of a span, reading only the header and the ids, checked by their own crc. */
    public Span readTokens(int span) {
        checkExists(span);
        byte[] raw = new byte[SpanHeader.BYTES + 4 * meta.spanTokens()];
        int got = readAtMost(raw, (long) span * meta.recordBytes());
        bytesRead += got;
        SpanHeader h = SpanHeader.read(raw);
        if (got != raw.length || !h.magicOk() || h.span() != span || h.n() > meta.spanTokens()
                || crc(raw, SpanHeader.BYTES, 4 * meta.spanTokens()) != h.tokenCrc()) {
            throw new StoreException(path.resolve("spans.bin") + ": span " + span + " fails its checksum; not served");
        }
        ByteBuffer b = Bytes.at(le(raw), SpanHeader.BYTES);
        int[] tokens = new int[(int) h.n()];
        for (int i = 0; i < tokens.length; i++) tokens[i] = b.getInt();
        return new Span(span, h.start(), tokens, new float[0], new float[0]);
    }

    private void checkExists(int span) {
        if (span < 0 || span >= spanCount()) {
            throw new StoreException(path + ": span " + span + " does not exist (" + spanCount() + " spans)");
        }
    }

    private boolean verify(int span) {
        byte[] raw = new byte[meta.recordBytes()];
        int got = readAtMost(raw, (long) span * meta.recordBytes());
        bytesRead += got;
        if (got != raw.length) return false;
        SpanHeader h = SpanHeader.read(raw);
        return h.magicOk() && recordCrc(raw) == h.crc();
    }

    private byte[] record(int span) {
        byte[] raw = new byte[meta.recordBytes()];
        bytesRead += readAtMost(raw, (long) span * meta.recordBytes());
        return raw;
    }

    /** crc32 of the header with its crc field 0, then the payload. */
    private static long recordCrc(byte[] raw) {
        SpanHeader h = SpanHeader.read(raw);
        CRC32 crc = new CRC32();
        crc.update(h.pack(0));
        crc.update(raw, SpanHeader.BYTES, raw.length - SpanHeader.BYTES);
        return crc.getValue();
    }

    private static long crc(byte[] b, int offset, int length) {
        CRC32 crc = new CRC32();
        crc.update(b, offset, length);
        return crc.getValue();
    }

    private int readAtMost(byte[] into, long position) {
        try {
            ByteBuffer buffer = ByteBuffer.wrap(into);
            while (buffer.hasRemaining()) {
                int n = channel.read(buffer, position + buffer.position());
                if (n < 0) break;
            }
            return buffer.position();
        } catch (IOException e) {
            throw new StoreException(path.resolve("spans.bin") + ": read failed (" + e.getMessage() + ")", e);
        }
    }

    private void readFully(byte[] into, long position) {
        if (readAtMost(into, position) != into.length) {
            throw new StoreException(path.resolve("spans.bin") + ": shorter than its records");
        }
    }

    private static ByteBuffer le(byte[] raw) {
        return ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Bytes read from spans.bin since the store was opened (reads of chosen spans, verification). */
    public long bytesRead() {
        return bytesRead;
    }

    public long diskBytes() {
        try {
            return channel.size();
        } catch (IOException e) {
            return -1;
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // spans were forced to disk by finish(); an unfinished store is resumed or re-ingested
        }
        if (lock != null) lock.release();
    }

    /** One writer per store: a second one fails at once, clearly. (Java file locks are fcntl locks:
     * they exclude other JVM writers, not a Python writer's flock; on a phone there is only the app.) */
    private static final class WriterLock {
        private final FileChannel channel;
        private final FileLock lock;

        private WriterLock(FileChannel channel, FileLock lock) {
            this.channel = channel;
            this.lock = lock;
        }

        static WriterLock acquire(Path dir) throws IOException {
            FileChannel channel = FileChannel.open(dir.resolve("lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null;
            }
            if (lock == null) {
                channel.close();
                throw new StoreException(dir + ": another writer has this document open; try again when it is done");
            }
            return new WriterLock(channel, lock);
        }

        void release() {
            try {
                lock.release();
                channel.close();
            } catch (IOException ignored) {
                // the lock goes with the file handle anyway
            }
        }
    }

    static void writeJson(Path file, JsonObject data) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        String text = new GsonBuilder().setPrettyPrinting().create().toJson(data) + "\n";
        try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            out.write(ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8)));
            out.force(true);
        }
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
