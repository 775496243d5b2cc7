package org.acre.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assume.assumeTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.junit.Test;

/**
 * The byte-level BPE tokenizer against Hugging Face tokenizers on SmolLM2's tokenizer.json
 * (ids and decoded text recorded in src/test/resources/smollm2_tokenizer_cases.json). The
 * tokenizer file is not in the repository: the test runs when build/smollm2-android (what
 * `make demo` exports) or $ACRE_TEST_BUNDLE holds it, and is skipped otherwise.
 */
public class TokenizerTest {
    private static JsonObject cases() {
        return JsonParser.parseReader(new InputStreamReader(
                TokenizerTest.class.getResourceAsStream("/smollm2_tokenizer_cases.json"), StandardCharsets.UTF_8))
                .getAsJsonObject();
    }

    static Path bundleDir() {
        String env = System.getenv("ACRE_TEST_BUNDLE");
        Path repo = Vectors.dir().toAbsolutePath().getParent().getParent();
        return env != null ? repo.resolve(Paths.get(env)) : repo.resolve("build/smollm2-android");
    }

    private static ByteLevelBpe tokenizer(JsonObject cases) {
        Path file = bundleDir().resolve("tokenizer/tokenizer.json");
        assumeTrue("no " + file + " (run `make demo` to export the bundle)", Files.isRegularFile(file));
        assumeTrue("another tokenizer.json than the recorded one",
                Bundle.sha256(file).equals(cases.get("tokenizer_sha256").getAsString()));
        return ByteLevelBpe.load(file);
    }

    @Test
    public void encodesAndDecodesLikeHuggingFace() {
        JsonObject cases = cases();
        ByteLevelBpe tokenizer = tokenizer(cases);
        for (JsonElement e : cases.getAsJsonArray("cases")) {
            JsonObject c = e.getAsJsonObject();
            String text = c.get("text").getAsString();
            int[] ids = Vectors.ints(c.get("ids"));
            assertArrayEquals(text, ids, tokenizer.encode(text));
            assertEquals(text, c.get("decoded").getAsString(), tokenizer.decode(ids));
        }
        assertEquals(1, tokenizer.tokenId("<|im_start|>"));
    }
}
