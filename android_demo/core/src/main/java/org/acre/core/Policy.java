package org.acre.core;

/**
 * What the pot keeps while a document streams in and what it refills per question
 * (acre/runtime/policies.py). The defaults are the Python ones.
 */
public record Policy(
        String name,
        boolean bounded,  // false: the pot must hold the whole document
        boolean l1,  // keep a CCD-distilled L1
        boolean refill,  // refill spans from L2 per question
        boolean useAttention,
        boolean useIndex,
        boolean useProbes,
        boolean useTree,
        boolean useLexical,  // (c) BM25 of the question's token ids against each span's
        double noveltyWeight,
        double mass,
        int minSpans,
        int neighbors) {

    /** A CCD catalyst: a fixed prompt whose attention over the pot rates what is worth keeping. */
    public static final String CATALYST = "\nList the names, numbers, facts and key sentences of the text above.";

    public static Policy named(String name) {
        switch (name) {
            case "full": return base(name, false, false, false);
            case "streaming": return base(name, true, false, false);
            case "infinipot": return base(name, true, true, false);
            case "acre": return base(name, true, true, true);
            default: throw new InputException("unknown policy '" + name + "'; choose one of full, streaming, infinipot, acre");
        }
    }

    private static Policy base(String name, boolean bounded, boolean l1, boolean refill) {
        return new Policy(name, bounded, l1, refill, true, true, true, true, true, 0.2, 0.9, 2, 1);
    }
}
