package org.acre.core;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A byte-level BPE tokenizer read from a Hugging Face tokenizer.json: the GPT-2 scheme that
 * SmolLM2, Llama 3 style and Qwen2 models use. Supported: no normalizer, a ByteLevel pre-tokenizer
 * (GPT-2 split pattern; Qwen2's/Llama 3's own Split pattern is read from the file), a BPE model
 * without dropout, added (special) tokens matched before anything else, a ByteLevel decoder.
 * Anything else in the file is refused rather than tokenized differently from Python.
 */
public final class ByteLevelBpe implements Tokenizer {
    /** GPT-2's pre-tokenizer split (what ByteLevel with use_regex applies). */
    static final String GPT2_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    private final Map<String, Integer> vocab = new HashMap<>();
    private final Map<Integer, String> byId = new HashMap<>();
    private final Map<String, Integer> ranks = new HashMap<>();  // "left\0right" -> merge rank
    private final Map<String, Integer> added = new LinkedHashMap<>();
    private final Set<Integer> special = new HashSet<>();
    private final Pattern split;
    private final Pattern addedPattern;  // null when there are no added tokens
    private final Map<String, int[]> cache = new HashMap<>();
    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final Map<Character, Integer> CHAR_TO_BYTE = new HashMap<>();

    static {
        // GPT-2's byte -> printable character map: printable latin-1 bytes stand for themselves, the
        // other 68 bytes take the characters from U+0100 on, in byte order
        int next = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_TO_CHAR[b] = printable ? (char) b : (char) (256 + next++);
            CHAR_TO_BYTE.put(BYTE_TO_CHAR[b], b);
        }
    }

    public ByteLevelBpe(JsonObject json) {
        require(json.get("normalizer") == null || json.get("normalizer").isJsonNull(), "a normalizer");
        JsonObject model = json.getAsJsonObject("model");
        require("BPE".equals(model.get("type").getAsString()), "model type " + model.get("type"));
        require(model.get("dropout") == null || model.get("dropout").isJsonNull(), "BPE dropout");
        this.split = unicodePattern(splitPattern(json.get("pre_tokenizer")));
        for (Map.Entry<String, JsonElement> e : model.getAsJsonObject("vocab").entrySet()) {
            vocab.put(e.getKey(), e.getValue().getAsInt());
            byId.put(e.getValue().getAsInt(), e.getKey());
        }
        int rank = 0;
        for (JsonElement merge : model.getAsJsonArray("merges")) {
            String[] pair = merge.isJsonArray()
                    ? new String[] {merge.getAsJsonArray().get(0).getAsString(), merge.getAsJsonArray().get(1).getAsString()}
                    : merge.getAsString().split(" ", 2);
            ranks.putIfAbsent(pair[0] + '\0' + pair[1], rank++);
        }
        List<String> contents = new ArrayList<>();
        if (json.has("added_tokens")) {
            for (JsonElement e : json.getAsJsonArray("added_tokens")) {
                JsonObject t = e.getAsJsonObject();
                String content = t.get("content").getAsString();
                int id = t.get("id").getAsInt();
                added.put(content, id);
                byId.put(id, content);
                if (t.has("special") && t.get("special").getAsBoolean()) special.add(id);
                contents.add(content);
            }
        }
        contents.sort((a, b) -> b.length() - a.length());  // the longest match wins
        StringBuilder alternatives = new StringBuilder();
        for (String c : contents) alternatives.append(alternatives.length() > 0 ? "|" : "").append(Pattern.quote(c));
        this.addedPattern = contents.isEmpty() ? null : Pattern.compile(alternatives.toString());
    }

    public static ByteLevelBpe load(Path tokenizerJson) {
        try {
            return new ByteLevelBpe(Json.parse(tokenizerJson).getAsJsonObject());
        } catch (IOException | IllegalArgumentException | IllegalStateException e) {
            throw new AcreException(tokenizerJson + ": cannot read the tokenizer (" + e.getMessage() + ")", e);
        }
    }

    /** \s must match Unicode white space as in the Rust tokenizers; Android always works so and refuses the flag. */
    private static Pattern unicodePattern(String regex) {
        try {
            return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
        } catch (IllegalArgumentException e) {
            return Pattern.compile(regex);
        }
    }

    private static String splitPattern(JsonElement pre) {
        if (pre == null || pre.isJsonNull()) throw unsupported("no pre-tokenizer");
        JsonObject p = pre.getAsJsonObject();
        String type = p.get("type").getAsString();
        if (type.equals("ByteLevel")) {
            require(!p.has("add_prefix_space") || !p.get("add_prefix_space").getAsBoolean(), "add_prefix_space");
            return GPT2_SPLIT;
        }
        if (type.equals("Sequence")) {  // Split(pattern, isolated) then ByteLevel(use_regex=false)
            var steps = p.getAsJsonArray("pretokenizers");
            require(steps.size() == 2, "a pre-tokenizer sequence of " + steps.size());
            JsonObject first = steps.get(0).getAsJsonObject();
            JsonObject second = steps.get(1).getAsJsonObject();
            require(first.get("type").getAsString().equals("Split")
                    && first.get("behavior").getAsString().equals("Isolated")
                    && first.getAsJsonObject("pattern").has("Regex")
                    && second.get("type").getAsString().equals("ByteLevel")
                    && !second.get("use_regex").getAsBoolean(), "this pre-tokenizer sequence");
            return first.getAsJsonObject("pattern").get("Regex").getAsString();
        }
        throw unsupported("pre-tokenizer " + type);
    }

    private static void require(boolean ok, String what) {
        if (!ok) throw unsupported(what);
    }

    private static AcreException unsupported(String what) {
        return new AcreException("tokenizer.json: " + what + " is not supported by this byte-level BPE tokenizer");
    }

    @Override
    public int[] encode(String text) {
        List<Integer> ids = new ArrayList<>();
        int at = 0;
        if (addedPattern != null) {
            Matcher m = addedPattern.matcher(text);
            while (m.find()) {
                encodeOrdinary(text.substring(at, m.start()), ids);
                ids.add(added.get(m.group()));
                at = m.end();
            }
        }
        encodeOrdinary(text.substring(at), ids);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private void encodeOrdinary(String text, List<Integer> out) {
        Matcher m = split.matcher(text);
        while (m.find()) {
            String word = m.group();
            int[] ids = cache.get(word);
            if (ids == null) {
                ids = bpe(word);
                if (cache.size() < 100_000) cache.put(word, ids);
            }
            for (int id : ids) out.add(id);
        }
    }

    /** Merges the word's byte symbols, lowest merge rank first (leftmost among equals), then looks them up. */
    private int[] bpe(String word) {
        byte[] bytes = word.getBytes(StandardCharsets.UTF_8);
        List<String> symbols = new ArrayList<>(bytes.length);
        for (byte b : bytes) symbols.add(String.valueOf(BYTE_TO_CHAR[b & 0xff]));
        while (symbols.size() > 1) {
            int best = -1;
            int bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < symbols.size(); i++) {
                Integer rank = ranks.get(symbols.get(i) + '\0' + symbols.get(i + 1));
                if (rank != null && rank < bestRank) {
                    bestRank = rank;
                    best = i;
                }
            }
            if (best < 0) break;
            symbols.set(best, symbols.get(best) + symbols.get(best + 1));
            symbols.remove(best + 1);
        }
        int[] ids = new int[symbols.size()];
        for (int i = 0; i < ids.length; i++) {
            Integer id = vocab.get(symbols.get(i));
            if (id == null) throw new AcreException("tokenizer.json: no id for the symbol '" + symbols.get(i) + "'");
            ids[i] = id;
        }
        return ids;
    }

    @Override
    public String decode(int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int id : ids) {
            if (special.contains(id)) continue;
            String token = byId.get(id);
            if (token == null) continue;
            for (char c : token.toCharArray()) {
                Integer b = CHAR_TO_BYTE.get(c);
                if (b != null) bytes.write(b);
                else {
                    byte[] raw = String.valueOf(c).getBytes(StandardCharsets.UTF_8);
                    bytes.write(raw, 0, raw.length);
                }
            }
        }
        return new String(bytes.toByteArray(), StandardCharsets.UTF_8);
    }

    @Override
    public int tokenId(String token) {
        Integer id = added.containsKey(token) ? added.get(token) : vocab.get(token);
        return id == null ? -1 : id;
    }

    @Override
    public Set<Integer> specialIds() {
        return Collections.unmodifiableSet(special);
    }
}
