package org.acre.core;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.gson.JsonSyntaxException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Small strict accessors over Gson's tree: a missing or mistyped field is an
 * {@link IllegalArgumentException} naming the field, which callers turn into their own error. */
final class Json {
    private Json() {}

    static JsonElement parse(Path file) throws IOException {
        String text = new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
        try {
            return JsonParser.parseString(text);
        } catch (JsonSyntaxException | IllegalStateException e) {
            throw new IllegalArgumentException("not valid JSON (" + e.getMessage() + ")", e);
        }
    }

    static JsonObject object(JsonObject o, String key) {
        JsonElement e = require(o, key);
        if (!e.isJsonObject()) throw new IllegalArgumentException("'" + key + "' is not an object");
        return e.getAsJsonObject();
    }

    static String string(JsonObject o, String key) {
        JsonElement e = require(o, key);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw new IllegalArgumentException("'" + key + "' is not a string");
        }
        return e.getAsString();
    }

    static double number(JsonObject o, String key) {
        JsonElement e = require(o, key);
        if (!isNumber(e)) throw new IllegalArgumentException("'" + key + "' is not a number");
        return e.getAsDouble();
    }

    /** A JSON number with an integral value (1 and 1.0 both count, as in Python's int()). */
    static int integer(JsonObject o, String key) {
        JsonElement e = require(o, key);
        if (!isNumber(e)) throw new IllegalArgumentException("'" + key + "' is not a number");
        double d = e.getAsDouble();
        if (d != Math.rint(d) || Math.abs(d) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("'" + key + "' is not an integer");
        }
        return (int) d;
    }

    static boolean isNumber(JsonElement e) {
        return e != null && e.isJsonPrimitive() && ((JsonPrimitive) e).isNumber();
    }

    private static JsonElement require(JsonObject o, String key) {
        JsonElement e = o.get(key);
        if (e == null || e.isJsonNull()) throw new IllegalArgumentException("missing '" + key + "'");
        return e;
    }
}
