package org.acre.core;

import com.google.gson.JsonObject;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Consumer;

/**
 * One document ingested, then questions answered from it in bounded RAM: the flow of
 * acre/runtime/session.py on the JVM (policy acre and its baselines, refill mode "reencode").
 *
 * <p>The prompt is the chat template with the document and the question in one user turn: the
 * document part (template prefix + document) is ingested once; each question (+ template suffix)
 * is prefilled after it and the answer decoded. Every question starts again from the ingested
 * document. Not ported: resuming an interrupted ingest (it starts again) and refill mode "reuse".
 */
public final class Session implements Closeable {
    public static final String QUESTION_SEPARATOR = "\n\n";
    private static final SlotKind[] DOCUMENT_KINDS = {SlotKind.SINK, SlotKind.L1, SlotKind.RECENT, SlotKind.REFILL};
    private static final SlotKind[] STORED_KINDS = {SlotKind.SINK, SlotKind.L1, SlotKind.RECENT};

    /** (tokens done, tokens total) while a document is ingested. */
    public interface Progress {
        void update(long done, long total);
    }

    /** What the last question cost and chose. */
    public static final class Stats {
        public List<Integer> spans = Collections.emptyList();
        public double[] spanScores;
        public long bytesRead;
    }

    public final Bundle bundle;
    public final Policy policy;
    public final Pot pot;
    public final Layout layout;
    public final int spanTokens;
    public Stats last = new Stats();
    private final StepEngine engine;
    private final Tokenizer tokenizer;
    private final ChatPrompt prompt;
    private final int reps;
    private final String codec;
    private final int chunk;
    private final Geometry geometry;
    private final int[] probeLayers;
    private final int[][] retrievalHeads;
    private final int[] catalystIds;
    private final Set<Integer> stopIds;
    private final Set<Integer> templateIds = new HashSet<>();  // the chat template's ids: not in the BM25 query
    private final Map<SlotKind, int[]> regions = new EnumMap<>(SlotKind.class);
    private SpanStore store;
    private SpanIndex index;
    private LexicalIndex lexical;  // built from the document's ids on first use
    private int[] documentIds = new int[0];

    public Session(Bundle bundle, StepEngine engine, Tokenizer tokenizer, Policy policy) {
        this(bundle, engine, tokenizer, policy, 64, 8, StoreMeta.FLOAT16);
    }

    public Session(Bundle bundle, StepEngine engine, Tokenizer tokenizer, Policy policy, int spanTokens, int reps,
                   String codec) {
        if (!"float32".equals(bundle.kvDtype)) {
            throw new InputException("this runtime keeps a float32 pot; the bundle's kv_dtype is " + bundle.kvDtype);
        }
        this.bundle = bundle;
        this.engine = engine;
        this.tokenizer = tokenizer;
        this.policy = policy;
        this.spanTokens = spanTokens;
        this.reps = reps;
        this.codec = codec;
        this.geometry = bundle.geometry;
        this.chunk = bundle.chunk;
        this.prompt = ChatPrompt.of(bundle);
        this.pot = new Pot(geometry, bundle.pot);
        this.layout = Layout.plan(policy, pot.capacity, chunk, spanTokens);
        this.probeLayers = bundle.probeLayers();
        this.retrievalHeads = bundle.retrievalHeads();
        this.stopIds = new HashSet<>(bundle.eosTokenIds);
        for (int t : tokenizer.encode(prompt.prefix() + prompt.suffix())) templateIds.add(t);
        templateIds.addAll(tokenizer.specialIds());
        int[] catalyst = policy.l1() ? tokenizer.encode(Policy.CATALYST) : new int[0];
        int keep = Math.min(catalyst.length, chunk / 4);
        this.catalystIds = Arrays.copyOfRange(catalyst, catalyst.length - keep, catalyst.length);
        planRegions();
    }

    private void planRegions() {
        if (!policy.bounded()) {  // full: one shared pool, the question takes what the document left
            int[] every = range(0, pot.capacity);
            regions.put(SlotKind.RECENT, every);
            regions.put(SlotKind.QUESTION, every);
            return;
        }
        int start = 0;
        int[] sizes = {layout.sink(), layout.l1(), layout.recent(), layout.refill(), layout.question()};
        SlotKind[] kinds = {SlotKind.SINK, SlotKind.L1, SlotKind.RECENT, SlotKind.REFILL, SlotKind.QUESTION};
        for (int i = 0; i < kinds.length; i++) {
            regions.put(kinds[i], range(start, start + sizes[i]));
            start += sizes[i];
        }
    }

    /** Free slots of a region, in slot order. */
    int[] freeIn(SlotKind kind) {
        int[] slots = regions.getOrDefault(kind, new int[0]);
        return Arrays.stream(slots).filter(s -> pot.kind(s) == SlotKind.FREE).toArray();
    }

    /** Slots holding any of kinds, in slot order. */
    int[] slotsOf(SlotKind... kinds) {
        List<SlotKind> wanted = Arrays.asList(kinds);
        int[] out = new int[pot.capacity];
        int n = 0;
        for (int s = 0; s < pot.capacity; s++) if (wanted.contains(pot.kind(s))) out[n++] = s;
        return Arrays.copyOf(out, n);
    }

    // ---- tokens -------------------------------------------------------------------------------

    public int[] documentPromptIds(String text) {
        requireText(text, "document");
        int[] ids = tokenizer.encode(text);
        int[] prefix = prompt.prefix().isEmpty() ? new int[0] : tokenizer.encode(prompt.prefix());
        JsonObject t = bundle.manifest.getAsJsonObject("tokenizer");
        boolean bos = prompt.prefix().isEmpty() && t.has("bos_token_id") && !t.get("bos_token_id").isJsonNull();
        int[] out = new int[prefix.length + (bos ? 1 : 0) + ids.length];
        System.arraycopy(prefix, 0, out, 0, prefix.length);
        if (bos) out[prefix.length] = t.get("bos_token_id").getAsInt();
        System.arraycopy(ids, 0, out, out.length - ids.length, ids.length);
        return out;
    }

    public int[] questionPromptIds(String question) {
        requireText(question, "question");
        return tokenizer.encode(QUESTION_SEPARATOR + question + prompt.suffix());
    }

    private static void requireText(String text, String what) {
        if (text == null || text.trim().isEmpty()) throw new InputException("the " + what + " is empty");
    }

    private void checkIds(int[] ids, String what) {
        if (ids.length == 0) throw new InputException("the " + what + " has no tokens");
        for (int t : ids) {
            if (t < 0 || t >= geometry.vocab()) {
                throw new InputException("the " + what + " has token id " + t + " outside the model's vocabulary [0, "
                        + geometry.vocab() + ")");
            }
        }
    }

    // ---- ingest -------------------------------------------------------------------------------

    /** Ingests a document (replacing any earlier one); its L2 goes to storeDir. Returns its tokens. */
    public int ingest(String text, Path storeDir, Progress progress) {
        return ingestIds(documentPromptIds(text), storeDir, progress);
    }

    public int ingestIds(int[] ids, Path storeDir, Progress progress) {
        checkIds(ids, "document");
        if (!policy.bounded() && ids.length > pot.capacity - 1) {
            throw new InputException("the document has " + ids.length + " tokens; the 'full' policy keeps all of them in "
                    + "the pot, which holds " + pot.capacity + " slots. Use a bounded policy (acre).");
        }
        String digest = documentDigest(ids);
        if (policy.refill() && reopenFinished(storeDir, digest)) return ids.length;
        pot.clearAll();
        documentIds = new int[0];
        index = null;
        lexical = null;
        SpanBuffer buffer = null;
        if (policy.refill()) {
            if (store != null) store.close();
            store = SpanStore.create(storeDir, storeMeta());
            buffer = new SpanBuffer(store, probeLayers);
        }
        int perStep = chunk - catalystIds.length;
        for (int start = 0; start < ids.length; start += perStep) {
            int n = Math.min(perStep, ids.length - start);
            int[] piece = Arrays.copyOfRange(ids, start, start + n);
            int[] withCatalyst = new int[n + catalystIds.length];
            System.arraycopy(piece, 0, withCatalyst, 0, n);
            System.arraycopy(catalystIds, 0, withCatalyst, n, catalystIds.length);
            StepEngine.Outputs out = step(withCatalyst, compact());
            if (buffer != null) buffer.add(piece, out.kNew(), out.vNew(), out.rows(), n);
            place(start, n, out, n, n + catalystIds.length);
            if (progress != null) progress.update(start + n, ids.length);
        }
        documentIds = ids.clone();
        if (buffer != null) {
            buffer.flush();
            savePot(digest);
            index = new SpanIndex(store.allReps(), probeLayers.length, geometry.kvHeads(), reps, geometry.headDim(), 8);
        }
        return ids.length;
    }

    static String documentDigest(int[] ids) {
        ByteBuffer b = ByteBuffer.allocate(ids.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int id : ids) b.putInt(id);
        try {
            return Bytes.hex(MessageDigest.getInstance("SHA-256").digest(b.array()));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private StoreMeta storeMeta() {
        return new StoreMeta(Fingerprint.of(bundle), spanTokens, geometry.layers(), geometry.kvHeads(),
                geometry.headDim(), probeLayers.length, reps, codec);
    }

    /** If storeDir already holds this very document, finished, with this bundle and policy: reopen it. */
    private boolean reopenFinished(Path storeDir, String digest) {
        if (!Files.isRegularFile(storeDir.resolve("store.json"))) return false;
        JsonObject info;
        try (SpanStore probe = SpanStore.open(storeDir, Fingerprint.of(bundle), false)) {
            info = probe.info;
        } catch (StoreException e) {
            return false;
        }
        boolean same = info.has("complete") && info.get("complete").getAsBoolean()
                && info.has("document_sha256") && info.get("document_sha256").getAsString().equals(digest)
                && info.has("policy") && info.get("policy").getAsString().equals(policy.name());
        return same && openDocument(storeDir) > 0;
    }

    /** Saves the pot as ingest left it (pot.npz, numpy format) and marks the store complete. */
    private void savePot(String digest) {
        Map<String, Npz.Array> arrays = new LinkedHashMap<>();
        long[] kvShape = {pot.layers, pot.kvHeads, pot.capacity, pot.headDim};
        arrays.put("k", Npz.floats(pot.k, kvShape));
        arrays.put("v", Npz.floats(pot.v, kvShape));
        arrays.put("positions", Npz.longs(pot.positions, pot.capacity));
        byte[] mask = new byte[pot.capacity];
        for (int s = 0; s < mask.length; s++) mask[s] = (byte) (pot.valid(s) ? 1 : 0);
        arrays.put("mask", Npz.bytes("|b1", mask));
        arrays.put("kind", Npz.bytes("|i1", pot.kinds()));
        arrays.put("token", Npz.longs(pot.tokens()));
        arrays.put("document_ids", Npz.ints(documentIds));
        Path file = store.path.resolve("pot.npz");
        Path tmp = store.path.resolve("pot.tmp.npz");
        try {
            Npz.write(tmp, arrays);
            Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            JsonObject extra = new JsonObject();
            extra.addProperty("policy", policy.name());
            extra.addProperty("document_sha256", digest);
            extra.addProperty("pot_crc32", Npz.crc32(file));
            store.finish(extra);
        } catch (IOException e) {
            throw new StoreException(file + ": cannot write (" + e.getMessage() + "); the store is unchanged", e);
        }
    }

    /** Reopens a document ingested earlier (by this runtime or the Python one) with this bundle. */
    public int openDocument(Path storeDir) {
        if (!policy.refill()) {
            throw new InputException("policy '" + policy.name() + "' keeps no L2 store; open documents with policy acre");
        }
        SpanStore opened = SpanStore.open(storeDir, Fingerprint.of(bundle), false);
        try {
            JsonObject info = opened.info;
            if (!info.has("complete") || !info.get("complete").getAsBoolean()) {
                throw new StoreException(storeDir + ": ingest did not finish; ingest the document again");
            }
            Path file = storeDir.resolve("pot.npz");
            if (!Files.isRegularFile(file) || !info.has("pot_crc32") || Npz.crc32(file) != info.get("pot_crc32").getAsLong()) {
                throw new StoreException(file + ": missing or corrupt (checksum mismatch)");
            }
            Map<String, Npz.Array> state = Npz.read(file);
            Npz.Array k = state.get("k");
            long[] shape = {pot.layers, pot.kvHeads, pot.capacity, pot.headDim};
            if (k == null || !Arrays.equals(k.shape(), shape) || !"<f4".equals(k.descr())
                    || !info.has("policy") || !info.get("policy").getAsString().equals(policy.name())) {
                throw new InputException(storeDir + ": ingested with another pot layout or policy; ingest it again");
            }
            restorePot(state);
            if (store != null) store.close();
            store = opened;
            lexical = null;
            index = new SpanIndex(store.allReps(), probeLayers.length, geometry.kvHeads(), store.meta.reps(),
                    geometry.headDim(), 8);
            return documentIds.length;
        } catch (IOException | RuntimeException e) {
            opened.close();
            if (e instanceof AcreException) throw (AcreException) e;
            throw new StoreException(storeDir + ": cannot read the saved pot (" + e.getMessage() + ")", e);
        }
    }

    /** Puts a saved pot back in place: the pot is never reallocated. */
    private void restorePot(Map<String, Npz.Array> state) {
        ByteBuffer k = state.get("k").buffer();
        ByteBuffer v = state.get("v").buffer();
        for (int i = 0; i < pot.k.capacity(); i++) {
            pot.k.put(i, k.getFloat());
            pot.v.put(i, v.getFloat());
        }
        ByteBuffer positions = state.get("positions").buffer();
        byte[] mask = state.get("mask").data();
        for (int s = 0; s < pot.capacity; s++) {
            pot.setPosition(s, positions.getLong());
            pot.setValid(s, mask[s] != 0);
        }
        ByteBuffer tokens = state.get("token").buffer();
        long[] token = new long[pot.capacity];
        for (int s = 0; s < token.length; s++) token[s] = tokens.getLong();
        pot.restoreTable(state.get("kind").data(), token);
        ByteBuffer ids = state.get("document_ids").buffer();
        documentIds = new int[(int) state.get("document_ids").size()];
        for (int i = 0; i < documentIds.length; i++) documentIds[i] = ids.getInt();
    }

    /**
     * Puts a chunk's K/V into the pot: sinks first, then the recent window; what leaves the recent
     * window is distilled into L1 (or dropped, for streaming). Catalyst rows [catFrom, catTo) rate it.
     */
    private void place(int start, int n, StepEngine.Outputs out, int catFrom, int catTo) {
        List<Integer> sinkRows = new ArrayList<>();
        List<Integer> restRows = new ArrayList<>();
        for (int i = 0; i < n; i++) (start + i < layout.sink() ? sinkRows : restRows).add(i);
        if (!sinkRows.isEmpty()) {
            int[] slots = Arrays.copyOf(freeIn(SlotKind.SINK), sinkRows.size());
            writeRows(slots, out, sinkRows, start, SlotKind.SINK);
        }
        int need = restRows.size();
        int[] free = freeIn(SlotKind.RECENT);
        if (need > free.length) {
            int[] recent = slotsOf(SlotKind.RECENT);
            int[] leaving = Arrays.stream(sortByToken(recent)).limit(need - free.length).toArray();
            if (policy.l1()) {
                double[] importance = new double[pot.capacity];
                for (int r = catFrom; r < catTo; r++) {
                    for (int s = 0; s < pot.capacity; s++) importance[s] += out.potAttention()[r * pot.capacity + s];
                }
                distil(leaving, importance);
            }
            for (int s : leaving) pot.clear(s);
            free = freeIn(SlotKind.RECENT);
        }
        writeRows(Arrays.copyOf(free, need), out, restRows, start, SlotKind.RECENT);
    }

    private void writeRows(int[] slots, StepEngine.Outputs out, List<Integer> rows, long start, SlotKind kind) {
        int[] from = rows.stream().mapToInt(Integer::intValue).toArray();
        long[] tokens = Arrays.stream(from).mapToLong(r -> start + r).toArray();
        pot.write(slots, out.kNew(), out.vNew(), out.rows(), from, null, kind, tokens);
    }

    /**
     * CCD: of the current L1 and the candidates, keep the most important in L1. Importance mixes the
     * catalyst's attention with novelty (1 - the highest cosine similarity to the others' keys).
     */
    private void distil(int[] candidates, double[] attention) {
        int[] l1Now = slotsOf(SlotKind.L1);
        int[] pool = new int[l1Now.length + candidates.length];
        System.arraycopy(l1Now, 0, pool, 0, l1Now.length);
        System.arraycopy(candidates, 0, pool, l1Now.length, candidates.length);
        if (pool.length == 0) return;
        double top = 1e-12;
        for (int s : pool) top = Math.max(top, attention[s]);
        int width = probeLayers.length * pot.kvHeads * pot.headDim;
        float[][] vecs = new float[pool.length][width];
        for (int i = 0; i < pool.length; i++) {
            double norm = 0;
            int w = 0;
            for (int layer : probeLayers) {
                for (int h = 0; h < pot.kvHeads; h++) {
                    int at = pot.offset(layer, h, pool[i]);
                    for (int d = 0; d < pot.headDim; d++) {
                        float x = pot.k.get(at + d);
                        vecs[i][w++] = x;
                        norm += x * x;
                    }
                }
            }
            float scale = (float) (1 / (Math.sqrt(norm) + 1e-12));
            for (int j = 0; j < width; j++) vecs[i][j] *= scale;
        }
        double[] best = new double[pool.length];  // highest cosine similarity to any other entry
        Arrays.fill(best, -1);
        for (int i = 0; i < pool.length; i++) {
            for (int j = i + 1; j < pool.length; j++) {  // each pair once: the matrix is symmetric
                float dot = 0;
                for (int x = 0; x < width; x++) dot += vecs[i][x] * vecs[j][x];
                best[i] = Math.max(best[i], dot);
                best[j] = Math.max(best[j], dot);
            }
        }
        double w = policy.noveltyWeight();
        double[] importance = new double[pool.length];
        for (int i = 0; i < pool.length; i++) {
            double novelty = pool.length > 1 ? Math.min(1, Math.max(0, 1 - best[i])) : 1;
            importance[i] = (1 - w) * attention[pool[i]] / top + w * novelty;
        }
        Integer[] order = new Integer[pool.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Double.compare(importance[b], importance[a]));  // stable
        Set<Integer> keep = new HashSet<>();
        for (int i = 0; i < Math.min(layout.l1(), order.length); i++) keep.add(pool[order[i]]);
        for (int s : l1Now) if (!keep.contains(s)) pot.clear(s);
        int[] moving = Arrays.stream(candidates).filter(keep::contains).toArray();
        int[] slots = freeIn(SlotKind.L1);
        for (int i = 0; i < moving.length; i++) pot.move(moving[i], slots[i], SlotKind.L1);
    }

    // ---- ask ----------------------------------------------------------------------------------

    /** Streams the answer to a question as text pieces; returns the answer's token count. */
    public int ask(String question, int maxNewTokens, double temperature, double topP, long seed,
                   Consumer<String> pieces) {
        List<Integer> produced = new ArrayList<>();
        String[] shown = {""};
        return generate(questionPromptIds(question), maxNewTokens, temperature, topP, seed, token -> {
            produced.add(token);
            String text = tokenizer.decode(produced.stream().mapToInt(Integer::intValue).toArray());
            if (!text.endsWith("\ufffd")) {  // wait for the rest of a multi-byte character
                pieces.accept(text.substring(Math.min(shown[0].length(), text.length())));
                shown[0] = text;
            }
        });
    }

    /** Streams answer token ids (stop tokens excluded) for tokenized question ids. */
    public int generate(int[] questionIds, int maxNewTokens, double temperature, double topP, long seed,
                        Consumer<Integer> tokens) {
        if (documentIds.length == 0) throw new InputException("no document ingested; ingest or open one first");
        checkIds(questionIds, "question");
        resetQuestion();
        int room = freeIn(SlotKind.QUESTION).length;
        if (questionIds.length >= room) {
            throw new InputException("the question has " + questionIds.length + " tokens; only " + room
                    + " pot slots are left for it");
        }
        last = new Stats();
        Prefill first = prefill(questionIds);
        float[] logits = first.logits;
        if (policy.refill() && store != null && store.spanCount() > 0) {
            long before = store.bytesRead();
            List<Integer> spans = selectSpans(first.attention, first.queries, questionIds);
            for (int s : slotsOf(SlotKind.QUESTION)) pot.clear(s);  // refilled spans must not see the question
            refill(spans);
            last.bytesRead = store.bytesRead() - before;
            compact();
            logits = prefill(questionIds).logits;
        }
        Random random = new Random(seed);
        int n = 0;
        for (; n < maxNewTokens; n++) {
            int token = Sampler.sample(logits, temperature, topP, random);
            if (stopIds.contains(token)) break;
            tokens.accept(token);
            if (freeIn(SlotKind.QUESTION).length == 0) {
                n++;
                break;  // the question region is full: the answer is cut here
            }
            logits = prefill(new int[] {token}).logits;
        }
        return n;
    }

    /** Back to the pot as ingest left it: no question, no refill, every stored entry visible. */
    private void resetQuestion() {
        for (int s : slotsOf(SlotKind.QUESTION, SlotKind.REFILL)) pot.clear(s);
        for (int s : slotsOf(STORED_KINDS)) pot.setValid(s, true);
        compact();
    }

    /**
     * Scores spans by (a) the question's attention on their L1 entries, (b) probe queries against
     * the span index and (c) BM25 of the question's token ids; keeps the best by a dynamic cut-off,
     * in document order.
     */
    List<Integer> selectSpans(double[] attention, float[] queries, int[] questionIds) {
        int spans = store.spanCount();
        int tokens = questionIds.length;
        double[] mass = null;
        double[] z = null;
        if (policy.useAttention()) {
            mass = new double[spans];
            for (int s : slotsOf(SlotKind.L1)) mass[(int) (pot.token(s) / spanTokens)] += attention[s];
        }
        if (policy.useIndex()) {
            int heads = geometry.heads();
            int[] picks = policy.useProbes() ? probeQueries(queries, heads, tokens) : new int[] {tokens - 1};
            float[] probes = pickTokens(queries, heads, tokens, picks);
            // mean, not sum, of the heads' standardised scores (a softmax over sums is one-hot): the
            // index sums them head by head, the session then divides the sums, as session.py does
            z = index.scores(probes, heads, picks.length, retrievalHeads, 8, policy.useTree());
            for (int i = 0; i < z.length; i++) z[i] /= retrievalHeads.length;
        }
        double[] lexicalScores = null;
        if (policy.useLexical()) {
            if (lexical == null) lexical = new LexicalIndex(documentIds, spanTokens);
            int[] words = Arrays.stream(questionIds).filter(t -> !templateIds.contains(t)).toArray();
            lexicalScores = lexical.scores(words);
        }
        double[] scores = Selection.combineScores(mass, z, lexicalScores);
        Set<Long> resident = new HashSet<>();
        for (int s : slotsOf(SlotKind.SINK, SlotKind.RECENT)) resident.add(pot.token(s));
        Set<Long> residentSpans = new HashSet<>();
        for (long t : resident) residentSpans.add(t / spanTokens);
        for (long span : residentSpans) {  // spans wholly in the pot need no refill
            boolean all = true;
            for (long t = span * spanTokens; t < span * spanTokens + store.length((int) span); t++) all &= resident.contains(t);
            if (all) scores[(int) span] = 0.0;
        }
        last.spanScores = scores;
        last.spans = Selection.chooseSpans(scores, layout.refill() / spanTokens, policy.mass(), policy.minSpans(),
                policy.neighbors());
        return last.spans;
    }

    /**
     * ActQKV: the question tokens whose queries deviate most from the question's mean query
     * (activation bias) probe the index, plus the last token. queries [Lp, H, T, D].
     */
    int[] probeQueries(float[] queries, int heads, int t) {
        int d = geometry.headDim();
        double[] bias = new double[t];
        for (int g = 0; g < probeLayers.length * heads; g++) {
            double[] mean = new double[d];
            for (int i = 0; i < t; i++) for (int x = 0; x < d; x++) mean[x] += queries[(g * t + i) * d + x] / t;
            for (int i = 0; i < t; i++) {
                double sq = 0;
                for (int x = 0; x < d; x++) {
                    double diff = queries[(g * t + i) * d + x] - mean[x];
                    sq += diff * diff;
                }
                bias[i] += Math.sqrt(sq);
            }
        }
        int k = Math.max(1, (int) Math.ceil(t * 0.25));
        Integer[] order = new Integer[t];
        for (int i = 0; i < t; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Double.compare(bias[b], bias[a]));
        Set<Integer> picks = new HashSet<>(Arrays.asList(order).subList(0, k));
        picks.add(t - 1);
        return picks.stream().mapToInt(Integer::intValue).sorted().toArray();
    }

    private float[] pickTokens(float[] queries, int heads, int t, int[] picks) {
        int d = geometry.headDim();
        float[] out = new float[probeLayers.length * heads * picks.length * d];
        for (int g = 0; g < probeLayers.length * heads; g++) {
            for (int i = 0; i < picks.length; i++) {
                System.arraycopy(queries, (g * t + picks[i]) * d, out, (g * picks.length + i) * d, d);
            }
        }
        return out;
    }

    /**
     * Brings the chosen spans into the refill slots in document order (tokens already in the pot as
     * sinks or recent are not duplicated), hides L1, and computes their K/V in context.
     */
    private void refill(List<Integer> spans) {
        Set<Long> resident = new HashSet<>();
        for (int s : slotsOf(SlotKind.SINK, SlotKind.RECENT)) resident.add(pot.token(s));
        for (int span : spans) store.readTokens(span);  // verifies the span's ids against their checksum
        long[] free = Arrays.stream(freeIn(SlotKind.REFILL)).asLongStream().toArray();
        Selection.Placement placement = Selection.refillPlacement(spans, store.starts(), store.lengths(), resident, free);
        int n = placement.slots().length;
        int[] slots = Arrays.stream(placement.slots()).mapToInt(x -> (int) x).toArray();
        int rows = Math.max(1, n);
        float[] zeros = new float[pot.layers * pot.kvHeads * rows * pot.headDim];
        pot.write(slots, zeros, zeros, rows, range(0, n), null, SlotKind.REFILL, placement.tokens());
        for (int s : slotsOf(SlotKind.L1)) pot.setValid(s, false);
        reencode();
    }

    /**
     * Computes the K/V of the refilled tokens in the context they are now shown in: the sinks and
     * the refilled tokens before them, in document order (recent window and L1 hidden).
     */
    private void reencode() {
        int[] slots = sortByToken(slotsOf(SlotKind.REFILL));
        int[] later = slotsOf(SlotKind.RECENT, SlotKind.REFILL);
        for (int s : later) pot.setValid(s, false);
        int position = compact();  // the sinks
        for (int done = 0; done < slots.length; done += chunk) {
            int[] part = Arrays.copyOfRange(slots, done, Math.min(slots.length, done + chunk));
            int[] ids = Arrays.stream(part).map(s -> documentIds[(int) pot.token(s)]).toArray();
            StepEngine.Outputs out = step(ids, position);
            for (int i = 0; i < part.length; i++) {
                for (int l = 0; l < pot.layers; l++) {
                    for (int h = 0; h < pot.kvHeads; h++) {
                        int src = ((l * pot.kvHeads + h) * out.rows() + i) * pot.headDim;
                        int dst = pot.offset(l, h, part[i]);
                        for (int d = 0; d < pot.headDim; d++) {
                            pot.k.put(dst + d, out.kNew()[src + d]);
                            pot.v.put(dst + d, out.vNew()[src + d]);
                        }
                    }
                }
                pot.positions.put(part[i], position + i);  // later parts see these entries at their place
                pot.setValid(part[i], true);
            }
            position += part.length;
        }
        for (int s : later) pot.setValid(s, true);
        compact();
    }

    // ---- the step loop ------------------------------------------------------------------------

    /**
     * Gives the visible document entries consecutive positions in document order (so the model never
     * sees a position outside its window) and returns the next free position.
     */
    private int compact() {
        int[] visible = Arrays.stream(slotsOf(DOCUMENT_KINDS)).filter(pot::valid).toArray();
        int[] ordered = sortByToken(visible);
        for (int i = 0; i < ordered.length; i++) pot.setPosition(ordered[i], i);
        return ordered.length;
    }

    private int[] sortByToken(int[] slots) {
        return Arrays.stream(slots).boxed().sorted((a, b) -> Long.compare(pot.token(a), pot.token(b)))
                .mapToInt(Integer::intValue).toArray();
    }

    /** One call of the step program (decode entry point for a single token). */
    private StepEngine.Outputs step(int[] ids, long start) {
        int width = ids.length == 1 ? 1 : chunk;
        if (start + ids.length > geometry.window()) {
            throw new InputException((start + ids.length) + " positions exceed the model's window of " + geometry.window());
        }
        long[] tokens = new long[width];
        long[] positions = new long[width];
        for (int i = 0; i < width; i++) {
            tokens[i] = i < ids.length ? ids[i] : 0;
            positions[i] = start + i;
        }
        return engine.step(tokens, positions, pot, ids.length - 1);
    }

    private record Prefill(float[] logits, double[] attention, float[] queries) {}

    /**
     * Runs question (or answer) tokens through the step program in chunks, writing their K/V into the
     * question region: the logits after the last token, the attention the tokens put on each slot,
     * and their probe-layer queries [Lp, H, n, D].
     */
    private Prefill prefill(int[] ids) {
        double[] attention = new double[pot.capacity];
        int heads = geometry.heads();
        int d = geometry.headDim();
        int groups = probeLayers.length * heads;
        float[] queries = new float[groups * ids.length * d];
        float[] logits = new float[0];
        for (int done = 0; done < ids.length; done += chunk) {
            int[] piece = Arrays.copyOfRange(ids, done, Math.min(ids.length, done + chunk));
            long start = 0;
            boolean any = false;
            for (int s = 0; s < pot.capacity; s++) {
                if (pot.valid(s)) {
                    start = any ? Math.max(start, pot.position(s) + 1) : pot.position(s) + 1;
                    any = true;
                }
            }
            StepEngine.Outputs out = step(piece, start);
            int n = piece.length;
            for (int r = 0; r < n; r++) {
                for (int s = 0; s < pot.capacity; s++) attention[s] += out.potAttention()[r * pot.capacity + s];
            }
            for (int g = 0; g < groups; g++) {
                System.arraycopy(out.qProbe(), g * out.rows() * d, queries, (g * ids.length + done) * d, n * d);
            }
            int[] slots = Arrays.copyOf(freeIn(SlotKind.QUESTION), n);
            long[] positions = new long[n];
            for (int i = 0; i < n; i++) positions[i] = start + i;
            pot.write(slots, out.kNew(), out.vNew(), out.rows(), range(0, n), positions, SlotKind.QUESTION, null);
            logits = out.logits();
        }
        return new Prefill(logits, attention, queries);
    }

    // ---- the memory profile -------------------------------------------------------------------

    /** What the session holds in RAM, keeps on flash and read for the last question. */
    public record Profile(int potSlots, long potBytes, long slotBytes, long indexBytes, int documentTokens,
                          long l2DiskBytes, long l2BytesReadLastQuestion, int spansRefilledLastQuestion) {}

    public Profile profile() {
        return new Profile(pot.capacity, pot.nbytes(), Budget.slotBytes(geometry, bundle.kvDtype),
                index == null ? 0 : index.nbytes(), documentIds.length, store == null ? 0 : store.diskBytes(),
                last.bytesRead, last.spans.size());
    }

    public int documentTokens() {
        return documentIds.length;
    }

    @Override
    public void close() {
        if (store != null) store.close();
        store = null;
    }

    private static int[] range(int from, int to) {
        int[] out = new int[Math.max(0, to - from)];
        for (int i = 0; i < out.length; i++) out[i] = from + i;
        return out;
    }
}
