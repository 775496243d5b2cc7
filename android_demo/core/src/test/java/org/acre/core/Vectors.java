package org.acre.core;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.stream.Stream;

/**
 * The shared test vectors of tests/vectors/, written by the Python runtime (tests/make_vectors.py)
 * and kept equal to what it writes by tests/test_vectors.py. Found through the system property
 * acre.vectors (test.sh and Gradle set it), else by walking up from the working directory.
 */
final class Vectors {
    private Vectors() {}

    static Path dir() {
        String property = System.getProperty("acre.vectors");
        if (property != null) return Paths.get(property);
        for (Path p = Paths.get("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isDirectory(p.resolve("tests/vectors"))) return p.resolve("tests/vectors");
        }
        throw new IllegalStateException("tests/vectors not found; set -Dacre.vectors=/path/to/tests/vectors");
    }

    static JsonObject object(String name) {
        return parse(dir().resolve(name)).getAsJsonObject();
    }

    static JsonArray array(String name) {
        return parse(dir().resolve(name)).getAsJsonArray();
    }

    private static JsonElement parse(Path file) {
        try {
            return JsonParser.parseString(new String(Files.readAllBytes(file), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A copy of a vector directory in `into` (damage is applied to copies only). */
    static Path copy(String name, Path into) throws IOException {
        Path source = dir().resolve(name);
        Path target = into.resolve(name);
        try (Stream<Path> walk = Files.walk(source)) {
            for (Path p : (Iterable<Path>) walk::iterator) {
                Path dest = target.resolve(source.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(dest);
                else Files.copy(p, dest);
            }
        }
        return target;
    }

    static double[] doubles(JsonElement array) {
        JsonArray a = array.getAsJsonArray();
        double[] out = new double[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).getAsDouble();
        return out;
    }

    /** null entries (Python's -inf for "not reached") become NEGATIVE_INFINITY. */
    static double[] doublesOrNegInf(JsonElement array) {
        JsonArray a = array.getAsJsonArray();
        double[] out = new double[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).isJsonNull() ? Double.NEGATIVE_INFINITY : a.get(i).getAsDouble();
        }
        return out;
    }

    static float[] floats(JsonElement array) {
        double[] d = doubles(array);
        float[] out = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            out[i] = (float) d[i];
            if (out[i] != d[i]) throw new IllegalStateException("vector value " + d[i] + " is not a float32");
        }
        return out;
    }

    static int[] ints(JsonElement array) {
        JsonArray a = array.getAsJsonArray();
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).getAsInt();
        return out;
    }

    static long[] longs(JsonElement array) {
        JsonArray a = array.getAsJsonArray();
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).getAsLong();
        return out;
    }
}
