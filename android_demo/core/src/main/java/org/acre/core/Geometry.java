package org.acre.core;

import com.google.gson.JsonObject;

/** Model geometry: the numbers that fix every tensor shape in the step program and the caches. */
public record Geometry(
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        int hidden,
        int intermediate,
        int vocab,
        double ropeTheta,
        double rmsEps,
        int window,
        boolean qkvBias) {

    /** SmolLM2-135M, the built-in model (the budget vectors use it). */
    public static final Geometry SMOLLM2_135M =
            new Geometry(30, 9, 3, 64, 576, 1536, 49152, 100000.0, 1e-5, 8192, false);

    /** From manifest {@code model.geometry}; every field but {@code qkv_bias} is required. */
    public static Geometry fromJson(JsonObject g) {
        return new Geometry(
                Json.integer(g, "layers"),
                Json.integer(g, "heads"),
                Json.integer(g, "kv_heads"),
                Json.integer(g, "head_dim"),
                Json.integer(g, "hidden"),
                Json.integer(g, "intermediate"),
                Json.integer(g, "vocab"),
                Json.number(g, "rope_theta"),
                Json.number(g, "rms_eps"),
                Json.integer(g, "window"),
                g.has("qkv_bias") && g.get("qkv_bias").getAsBoolean());
    }

    /** Bytes of K and V for one token across all layers, per element size. */
    public long kvElementsPerToken() {
        return (long) layers * kvHeads * headDim * 2;
    }
}
