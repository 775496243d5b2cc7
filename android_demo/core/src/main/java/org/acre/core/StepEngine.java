package org.acre.core;

/**
 * Runs the bundle's step program (docs/bundle.md): the {@code prefill} entry point for C rows,
 * {@code decode} for 1. The pot's buffers are the program's pot_k, pot_v, pot_positions and
 * pot_mask inputs, passed as they are (no copy). On Android this is ExecuTorch; tests use a fake.
 */
public interface StepEngine extends AutoCloseable {
    /**
     * @param tokens [W] chunk tokens, W = chunk or 1; padding rows may follow the real ones
     * @param positions [W] RoPE position of each row
     * @param pot the pot (its k, v, positions and mask buffers are inputs)
     * @param lastIndex the row whose logits are returned
     */
    Outputs step(long[] tokens, long[] positions, Pot pot, long lastIndex);

    /** Outputs for W rows: logits [vocab], kNew and vNew [L, Hkv, W, D], potAttention [W, P],
     * qProbe [Lp, H, W, D]. */
    record Outputs(int rows, float[] logits, float[] kNew, float[] vNew, float[] potAttention, float[] qProbe) {}

    @Override
    default void close() {}
}
