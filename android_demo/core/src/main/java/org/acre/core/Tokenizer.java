package org.acre.core;

import java.util.Collections;
import java.util.Set;

/** Text <-> token ids, as the bundle's tokenizer defines them. */
public interface Tokenizer {
    /** Token ids of text; special tokens written in the text (e.g. "<|im_start|>") become their ids. */
    int[] encode(String text);

    /** Text of ids; special tokens are left out. Bytes of an unfinished UTF-8 character become U+FFFD. */
    String decode(int[] ids);

    /** The id of a token's text, or -1. */
    int tokenId(String token);

    /** Ids of the special tokens (tokenizer.json's added tokens marked special); none by default. */
    default Set<Integer> specialIds() {
        return Collections.emptySet();
    }
}
