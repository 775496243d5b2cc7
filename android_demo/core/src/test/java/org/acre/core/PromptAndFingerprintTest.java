package org.acre.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assume.assumeTrue;

import com.google.gson.JsonParser;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.Test;

/** The bundle fingerprint equals Python's bundle_fingerprint; ChatML prompts split as Python splits them. */
public class PromptAndFingerprintTest {
    @Test
    public void fingerprintOfTheVectorBundle() {
        // python -c "from acre.bundle import Bundle; from acre.runtime.session import bundle_fingerprint;
        //            print(bundle_fingerprint(Bundle.open('tests/vectors/bundle')))"
        assertEquals("2eb6bcae2fa19549ae86f226b4390c36bb8d9a5a9a3d8e5467711d310e9140d9",
                Fingerprint.of(Bundle.open(Vectors.dir().resolve("bundle"))));
    }

    /** A store Python ingested with the exported bundle carries Python's fingerprint (when both exist). */
    @Test
    public void fingerprintOfTheDemoBundleMatchesItsStore() throws Exception {
        Path bundle = TokenizerTest.bundleDir();
        Path store = bundle.getParent().resolve("document.l2/store.json");
        assumeTrue("no exported bundle and document store (make demo)",
                Files.isRegularFile(bundle.resolve("manifest.json")) && Files.isRegularFile(store));
        String want = JsonParser.parseString(new String(Files.readAllBytes(store), StandardCharsets.UTF_8))
                .getAsJsonObject().getAsJsonObject("meta").get("fingerprint").getAsString();
        assertEquals(want, Fingerprint.of(Bundle.open(bundle, false)));
    }

    @Test
    public void smolLm2TemplateSplitsLikePython() {
        String template = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                + "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                + "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                + "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        // split_chat_template(AutoTokenizer.from_pretrained("build/smollm2-android/tokenizer"))
        ChatPrompt p = ChatPrompt.fromTemplate(template);
        assertEquals("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                + "<|im_end|>\n<|im_start|>user\n", p.prefix());
        assertEquals("<|im_end|>\n<|im_start|>assistant\n", p.suffix());
    }
}
