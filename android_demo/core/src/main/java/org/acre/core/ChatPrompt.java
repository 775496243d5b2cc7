package org.acre.core;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The text before and after the user's message in the first user turn of the chat template
 * (split_chat_template in acre/runtime/session.py). Python renders the Jinja template; the JVM has
 * no Jinja, so: the manifest's tokenizer.prompt_prefix / prompt_suffix when an exporter writes them,
 * else ChatML templates (SmolLM2, Qwen2) with their default system message read from the template,
 * else no template ("" and "\n", and the document starts with BOS, as in Python).
 */
public record ChatPrompt(String prefix, String suffix) {
    private static final Pattern CHATML_SYSTEM = Pattern.compile("<\\|im_start\\|>system\n(.*?)<\\|im_end\\|>", Pattern.DOTALL);

    public static ChatPrompt of(Bundle bundle) {
        JsonObject t = bundle.manifest.getAsJsonObject("tokenizer");
        if (t.has("prompt_prefix") && t.has("prompt_suffix")) {
            return new ChatPrompt(t.get("prompt_prefix").getAsString(), t.get("prompt_suffix").getAsString());
        }
        JsonElement template = t.get("chat_template");
        if (template == null || template.isJsonNull() || template.getAsString().isEmpty()) return new ChatPrompt("", "\n");
        return fromTemplate(template.getAsString());
    }

    static ChatPrompt fromTemplate(String template) {
        if (!template.contains("<|im_start|>")) {
            throw new AcreException("this chat template is not ChatML; export the bundle with tokenizer.prompt_prefix"
                    + " and prompt_suffix in its manifest for the JVM runtime");
        }
        Matcher system = CHATML_SYSTEM.matcher(template);
        String prefix = system.find() ? "<|im_start|>system\n" + system.group(1) + "<|im_end|>\n" : "";
        return new ChatPrompt(prefix + "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n");
    }
}
