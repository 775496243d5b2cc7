package org.acre.core;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.Arrays;
import java.util.List;

/**
 * The geometry of an L2 store (store.json "meta"), and from it the fixed record layout:
 * header, tokens int32 [S], k and v [L, Hkv, S, D] (float16, or int8 followed by float16 scales
 * [L, Hkv, S] for k then v), reps float16 [Lp, Hkv, R, D]. All little-endian.
 */
public record StoreMeta(
        String fingerprint,
        int spanTokens,
        int layers,
        int kvHeads,
        int headDim,
        int probeLayers,
        int reps,
        String codec) {

    public static final String FLOAT16 = "float16";
    public static final String INT8 = "int8";
    private static final List<String> KEYS = Arrays.asList(
            "fingerprint", "span_tokens", "layers", "kv_heads", "head_dim", "probe_layers", "reps", "codec");

    public StoreMeta {
        if (!FLOAT16.equals(codec) && !INT8.equals(codec)) {
            throw new StoreException("unknown L2 codec '" + codec + "'; choose float16 or int8");
        }
    }

    public boolean int8() {
        return INT8.equals(codec);
    }

    /** Elements of one span's K (or V): L * Hkv * S * D. */
    public int kvElements() {
        return layers * kvHeads * spanTokens * headDim;
    }

    /** One scale per row of D: L * Hkv * S. */
    public int scaleElements() {
        return layers * kvHeads * spanTokens;
    }

    /** Elements of one span's representative keys: Lp * Hkv * R * D. */
    public int repsElements() {
        return probeLayers * kvHeads * reps * headDim;
    }

    public int tokensOffset() {
        return SpanHeader.BYTES;
    }

    public int kOffset() {
        return tokensOffset() + 4 * spanTokens;
    }

    public int vOffset() {
        return kOffset() + kvElements() * (int8() ? 1 : 2);
    }

    /** int8 only: k scales, then v scales. */
    public int scalesOffset() {
        return vOffset() + kvElements() * (int8() ? 1 : 2);
    }

    public int repsOffset() {
        return scalesOffset() + (int8() ? 2 * scaleElements() * 2 : 0);
    }

    public int recordBytes() {
        return repsOffset() + repsElements() * 2;
    }

    public JsonObject toJson() {
        JsonObject o = new JsonObject();
        o.addProperty("fingerprint", fingerprint);
        o.addProperty("span_tokens", spanTokens);
        o.addProperty("layers", layers);
        o.addProperty("kv_heads", kvHeads);
        o.addProperty("head_dim", headDim);
        o.addProperty("probe_layers", probeLayers);
        o.addProperty("reps", reps);
        o.addProperty("codec", codec);
        return o;
    }

    /** As Python's StoreMeta(**meta): every field required but codec, no unknown field. */
    public static StoreMeta fromJson(JsonObject o) {
        for (String key : o.keySet()) {
            if (!KEYS.contains(key)) throw new IllegalArgumentException("unknown field '" + key + "'");
        }
        JsonElement codec = o.get("codec");
        return new StoreMeta(
                Json.string(o, "fingerprint"),
                Json.integer(o, "span_tokens"),
                Json.integer(o, "layers"),
                Json.integer(o, "kv_heads"),
                Json.integer(o, "head_dim"),
                Json.integer(o, "probe_layers"),
                Json.integer(o, "reps"),
                codec == null ? FLOAT16 : codec.getAsString());
    }
}
