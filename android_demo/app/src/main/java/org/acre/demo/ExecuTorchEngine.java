package org.acre.demo;

import java.nio.file.Path;
import org.acre.core.AcreException;
import org.acre.core.Bundle;
import org.acre.core.Geometry;
import org.acre.core.Pot;
import org.acre.core.StepEngine;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/**
 * The bundle's step program on ExecuTorch (docs/bundle.md): methods "prefill" (C rows) and "decode"
 * (1 row), inputs tokens, positions, pot_k, pot_v, pot_positions, pot_mask, last_index; outputs
 * logits, k_new, v_new, pot_attention, q_probe.
 *
 * <p>The pot inputs are Tensors over the pot's own direct buffers, made once: ExecuTorch reads
 * whatever the buffers hold when a method runs, so the pot is never copied per step.
 *
 * <p>pot_mask: the ExecuTorch Java API has no bool tensors, so the step program takes the mask as
 * uint8 (1 = valid) and casts it in the graph (see docs/bundle.md).
 */
final class ExecuTorchEngine implements StepEngine {
    private final Module module;
    private final Geometry geometry;
    private final int chunk;
    private Pot pot;  // the pot the tensors below wrap
    private Tensor potK;
    private Tensor potV;
    private Tensor potPositions;
    private Tensor potMask;

    ExecuTorchEngine(Bundle bundle) {
        Path program = bundle.programPath("executorch");
        try {
            // mmap: the program's weights stay in the file's pages instead of a heap copy
            this.module = Module.load(program.toString(), Module.LOAD_MODE_MMAP);
        } catch (RuntimeException e) {
            throw new AcreException(program + ": ExecuTorch cannot load the program (" + e.getMessage() + ")", e);
        }
        this.geometry = bundle.geometry;
        this.chunk = bundle.chunk;
        for (String method : new String[] {"prefill", "decode"}) {
            // loaded now rather than on the first question; newer AARs throw on error, older ones return
            // a code (then execute() reports the problem)
            try {
                module.loadMethod(method);
            } catch (RuntimeException e) {
                throw new AcreException(program + ": cannot load method " + method + " (" + e.getMessage() + ")", e);
            }
        }
    }

    @Override
    public Outputs step(long[] tokens, long[] positions, Pot pot, long lastIndex) {
        wrap(pot);
        int rows = tokens.length;
        if (rows != 1 && rows != chunk) throw new AcreException("a step of " + rows + " rows; the program takes " + chunk + " or 1");
        EValue[] out;
        try {
            out = module.execute(rows == 1 ? "decode" : "prefill",
                    EValue.from(Tensor.fromBlob(tokens, new long[] {rows})),
                    EValue.from(Tensor.fromBlob(positions, new long[] {rows})),
                    EValue.from(potK),
                    EValue.from(potV),
                    EValue.from(potPositions),
                    EValue.from(potMask),
                    EValue.from(Tensor.fromBlob(new long[] {lastIndex}, new long[] {1})));
        } catch (RuntimeException e) {
            throw new AcreException("the step program failed (" + e.getMessage() + ")", e);
        }
        if (out.length != 5) throw new AcreException("the step program returned " + out.length + " outputs, expected 5");
        return new Outputs(rows,
                out[0].toTensor().getDataAsFloatArray(),
                out[1].toTensor().getDataAsFloatArray(),
                out[2].toTensor().getDataAsFloatArray(),
                out[3].toTensor().getDataAsFloatArray(),
                out[4].toTensor().getDataAsFloatArray());
    }

    private void wrap(Pot p) {
        if (p == pot) return;
        long[] kv = {geometry.layers(), geometry.kvHeads(), p.capacity, geometry.headDim()};
        potK = Tensor.fromBlob(p.k, kv);
        potV = Tensor.fromBlob(p.v, kv);
        potPositions = Tensor.fromBlob(p.positions, new long[] {p.capacity});
        potMask = Tensor.fromBlobUnsigned(p.mask, new long[] {p.capacity});
        pot = p;
    }

    @Override
    public void close() {
        module.destroy();
    }
}
