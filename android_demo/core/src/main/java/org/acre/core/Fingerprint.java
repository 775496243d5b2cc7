package org.acre.core;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The fingerprint of the model and programs behind an L2 store (bundle_fingerprint in
 * acre/runtime/session.py): sha256 of json.dumps({"geometry", "step", "programs": sha256 of every
 * non-tokenizer file}, sort_keys=True). Reproduced byte for byte, so a store ingested by Python
 * opens here and the other way round. Numbers keep the text they had in the manifest (Python wrote
 * it, so that is Python's repr).
 */
public final class Fingerprint {
    private Fingerprint() {}

    public static String of(Bundle bundle) {
        JsonObject m = bundle.manifest;
        JsonObject programs = new JsonObject();
        for (Map.Entry<String, JsonElement> file : m.getAsJsonObject("files").entrySet()) {
            if (!file.getKey().startsWith(Bundle.TOKENIZER_DIR + "/")) {
                programs.add(file.getKey(), file.getValue().getAsJsonObject().get("sha256"));
            }
        }
        JsonObject blob = new JsonObject();
        blob.add("geometry", m.getAsJsonObject("model").get("geometry"));
        blob.add("step", m.get("step"));
        blob.add("programs", programs);
        StringBuilder out = new StringBuilder();
        dumps(blob, out);
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            return Bytes.hex(digest.digest(out.toString().getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Python's json.dumps(value, sort_keys=True) with its default separators and ensure_ascii. */
    static void dumps(JsonElement e, StringBuilder out) {
        if (e == null || e.isJsonNull()) {
            out.append("null");
        } else if (e.isJsonObject()) {
            List<String> keys = new ArrayList<>(e.getAsJsonObject().keySet());
            Collections.sort(keys);
            out.append('{');
            for (int i = 0; i < keys.size(); i++) {
                if (i > 0) out.append(", ");
                string(keys.get(i), out);
                out.append(": ");
                dumps(e.getAsJsonObject().get(keys.get(i)), out);
            }
            out.append('}');
        } else if (e.isJsonArray()) {
            JsonArray a = e.getAsJsonArray();
            out.append('[');
            for (int i = 0; i < a.size(); i++) {
                if (i > 0) out.append(", ");
                dumps(a.get(i), out);
            }
            out.append(']');
        } else {
            JsonPrimitive p = e.getAsJsonPrimitive();
            if (p.isBoolean()) out.append(p.getAsBoolean() ? "true" : "false");
            else if (p.isNumber()) out.append(p.getAsNumber().toString());  // the manifest's own text
            else string(p.getAsString(), out);
        }
    }

    private static void string(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7e) out.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    else out.append(c);
            }
        }
        out.append('"');
    }
}
