package org.acre.core;

/** Text <-> token ids, as the bundle's tokenizer defines them. */
public interface Tokenizer {
    /** Token ids of text; special tokens written in the text (e.g. "<|im_start|>") become their ids. */
    int[] encode(String text);

    /** Text of ids; special tokens are left out. Bytes of an unfinished UTF-8 character become U+FFFD. */
    String decode(int[] ids);

    /** The id of a token's text, or -1. */
    int tokenId(String token);
}
