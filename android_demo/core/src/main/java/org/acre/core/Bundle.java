package org.acre.core;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * A bundle directory (docs/bundle.md): manifest.json, program files, tokenizer.
 *
 * <p>Validated on open in the order of acre/bundle.py, stopping at the first problem: directory and
 * manifest exist; JSON; format; version; required fields (program and tokenizer paths are checked
 * while the fields are read, as in Python); positivity; every file name relative; then every listed
 * file's presence, size and sha256; every program has a checksum entry.
 */
public final class Bundle {
    public static final String FORMAT = "acre-bundle";
    public static final int VERSION = 2;
    public static final String MANIFEST = "manifest.json";
    public static final String TOKENIZER_DIR = "tokenizer";

    public final Path root;
    public final JsonObject manifest;
    public final Geometry geometry;
    public final int chunk;
    public final int pot;
    public final String kvDtype;
    public final List<Integer> eosTokenIds;

    private Bundle(Path root, JsonObject manifest, Geometry geometry, int chunk, int pot,
                   List<Integer> eos) {
        this.root = root;
        this.manifest = manifest;
        this.geometry = geometry;
        this.chunk = chunk;
        this.pot = pot;
        this.kvDtype = step().has("kv_dtype") ? step().get("kv_dtype").getAsString() : "float32";
        this.eosTokenIds = eos;
    }

    public static Bundle open(Path root) {
        return open(root, true);
    }

    /** @param verifyChecksums false skips the sha256 pass (sizes are still checked): hashing a
     *     600 MB program takes seconds on a phone, so an app may verify once and remember it. */
    public static Bundle open(Path root, boolean verifyChecksums) {
        Path manifestPath = root.resolve(MANIFEST);
        if (!Files.isDirectory(root)) {
            throw new BundleException(BundleException.Kind.NOT_FOUND, root + ": bundle directory not found");
        }
        if (!Files.isRegularFile(manifestPath)) {
            throw new BundleException(BundleException.Kind.NOT_FOUND,
                    manifestPath + ": missing; not an acre bundle");
        }
        JsonElement parsed;
        try {
            parsed = Json.parse(manifestPath);
        } catch (IOException | IllegalArgumentException e) {
            throw new BundleException(BundleException.Kind.JSON,
                    manifestPath + ": not valid JSON (" + e.getMessage() + ")");
        }
        Bundle bundle = validateManifest(root, parsed);
        bundle.verifyFiles(verifyChecksums);
        return bundle;
    }

    private static Bundle validateManifest(Path root, JsonElement parsed) {
        Path where = root.resolve(MANIFEST);
        JsonElement format = parsed.isJsonObject() ? parsed.getAsJsonObject().get("format") : null;
        if (format == null || !format.isJsonPrimitive() || !FORMAT.equals(format.getAsString())) {
            throw new BundleException(BundleException.Kind.FORMAT,
                    where + ": not an acre bundle manifest (format is not '" + FORMAT + "')");
        }
        JsonObject m = parsed.getAsJsonObject();
        JsonElement version = m.get("version");
        if (!Json.isNumber(version) || version.getAsDouble() != VERSION) {
            throw new BundleException(BundleException.Kind.VERSION,
                    where + ": bundle format version " + version + ", this acre reads version " + VERSION
                            + "; re-export the bundle with this acre");
        }
        Geometry geometry;
        int chunk;
        int pot;
        JsonElement files;
        List<Integer> eos = new ArrayList<>();
        try {
            geometry = Geometry.fromJson(Json.object(Json.object(m, "model"), "geometry"));
            chunk = Json.integer(Json.object(m, "step"), "chunk");
            pot = Json.integer(Json.object(m, "step"), "pot");
            files = m.get("files");
            if (files == null) throw new IllegalArgumentException("missing 'files'");
            for (Map.Entry<String, JsonElement> program : Json.object(m, "programs").entrySet()) {
                checkRelative(Json.string(program.getValue().getAsJsonObject(), "file"), where);
            }
            checkRelative(Json.string(Json.object(m, "tokenizer"), "dir"), where);
            JsonElement ids = Json.object(m, "tokenizer").get("eos_token_ids");
            if (ids == null || !ids.isJsonArray()) throw new IllegalArgumentException("missing 'eos_token_ids'");
            for (JsonElement id : ids.getAsJsonArray()) eos.add(id.getAsInt());
        } catch (IllegalArgumentException | IllegalStateException | UnsupportedOperationException e) {
            throw new BundleException(BundleException.Kind.FIELD,
                    where + ": missing or malformed field (" + e.getMessage() + ")");
        }
        if (Math.min(Math.min(chunk, pot), Math.min(geometry.layers(), geometry.vocab())) < 1
                || !files.isJsonObject()) {
            throw new BundleException(BundleException.Kind.FIELD,
                    where + ": malformed field: chunk, pot, layers and vocab must be positive");
        }
        for (String name : files.getAsJsonObject().keySet()) checkRelative(name, where);
        return new Bundle(root, m, geometry, chunk, pot, Collections.unmodifiableList(eos));
    }

    private void verifyFiles(boolean verifyChecksums) {
        JsonObject files = manifest.getAsJsonObject("files");
        for (Map.Entry<String, JsonElement> entry : files.entrySet()) {
            Path path = root.resolve(entry.getKey());
            JsonObject info = entry.getValue().isJsonObject() ? entry.getValue().getAsJsonObject() : new JsonObject();
            if (!Files.isRegularFile(path)) {
                throw new BundleException(BundleException.Kind.MISSING, path + ": missing from the bundle");
            }
            long size;
            try {
                size = Files.size(path);
            } catch (IOException e) {
                throw new BundleException(BundleException.Kind.MISSING, path + ": cannot read (" + e.getMessage() + ")");
            }
            JsonElement bytes = info.get("bytes");
            if (!Json.isNumber(bytes) || bytes.getAsDouble() != size) {
                throw new BundleException(BundleException.Kind.SIZE,
                        path + ": " + size + " bytes, manifest says " + bytes + " (truncated or replaced)");
            }
            JsonElement sha = info.get("sha256");
            if (verifyChecksums && (sha == null || !sha256(path).equals(sha.getAsString()))) {
                throw new BundleException(BundleException.Kind.CHECKSUM,
                        path + ": sha256 checksum mismatch (file modified or corrupt)");
            }
        }
        for (Map.Entry<String, JsonElement> program : manifest.getAsJsonObject("programs").entrySet()) {
            String file = program.getValue().getAsJsonObject().get("file").getAsString();
            boolean listed = files.keySet().stream().anyMatch(n -> n.equals(file) || n.startsWith(file + "/"));
            if (!listed) {
                throw new BundleException(BundleException.Kind.PROGRAM,
                        root.resolve(MANIFEST) + ": " + program.getKey() + " program " + file + " has no checksum entry");
            }
        }
    }

    /** A manifest may only name files inside its bundle: relative POSIX paths without "..". */
    static void checkRelative(String name, Path where) {
        boolean bad = name.isEmpty() || name.startsWith("/") || name.contains("\\")
                || Arrays.asList(name.split("/")).contains("..");
        if (bad) {
            throw new BundleException(BundleException.Kind.PATH,
                    where + ": file name '" + name + "' points outside the bundle");
        }
    }

    public static String sha256(Path path) {
        try (InputStream in = Files.newInputStream(path)) {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            byte[] block = new byte[1 << 20];
            for (int n; (n = in.read(block)) > 0; ) digest.update(block, 0, n);
            return Bytes.hex(digest.digest());
        } catch (IOException e) {
            throw new BundleException(BundleException.Kind.MISSING, path + ": cannot read (" + e.getMessage() + ")");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);  // every JVM has SHA-256
        }
    }

    public JsonObject step() {
        return manifest.getAsJsonObject("step");
    }

    /** Path of the program file of an engine ("executorch", "onnx"). */
    public Path programPath(String engine) {
        JsonObject programs = manifest.getAsJsonObject("programs");
        if (!programs.has(engine)) {
            throw new BundleException(BundleException.Kind.PROGRAM,
                    root + ": no " + engine + " program in this bundle (it has: " + programs.keySet() + ")");
        }
        return root.resolve(programs.getAsJsonObject(engine).get("file").getAsString());
    }

    public Path tokenizerDir() {
        return root.resolve(manifest.getAsJsonObject("tokenizer").get("dir").getAsString());
    }

    /** Layers whose queries are returned as q_probe. */
    public int[] probeLayers() {
        return ints(step().getAsJsonArray("probe_layers"));
    }

    /** Retrieval heads as (index into probe_layers, query head), the way q_probe is laid out. */
    public int[][] retrievalHeads() {
        int[] probe = probeLayers();
        JsonArray heads = step().getAsJsonArray("signal_heads");
        int[][] out = new int[heads.size()][];
        for (int i = 0; i < out.length; i++) {
            int[] pair = ints(heads.get(i).getAsJsonArray());
            int index = -1;
            for (int j = 0; j < probe.length; j++) if (probe[j] == pair[0]) index = j;
            if (index < 0) throw new BundleException(BundleException.Kind.FIELD,
                    root + ": signal head layer " + pair[0] + " is not a probe layer");
            out[i] = new int[] {index, pair[1]};
        }
        return out;
    }

    static int[] ints(JsonArray array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).getAsInt();
        return out;
    }
}
