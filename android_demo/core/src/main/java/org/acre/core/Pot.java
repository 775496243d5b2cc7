package org.acre.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.Arrays;

/**
 * The pot: the bounded RAM key/value buffer the step program attends to, allocated once at the
 * bundle's capacity and never grown. Policies only write slots, clear them and read the slot table.
 * Keys are stored un-rotated; {@code positions} is what the model sees.
 *
 * <p>K, V, positions and the mask live in direct native-order buffers, so an engine hands them to
 * the program without a copy (ExecuTorch's Tensor.fromBlob on a direct buffer wraps it); a per-step
 * copy would double the pot's RAM.
 */
public final class Pot {
    public final int capacity;
    public final int layers;
    public final int kvHeads;
    public final int headDim;
    public final FloatBuffer k;  // [L, Hkv, P, D] float32
    public final FloatBuffer v;
    public final LongBuffer positions;  // [P]
    public final ByteBuffer mask;  // [P], 1 = slot holds a valid entry
    private final byte[] kind;  // slot table: what each slot holds
    private final long[] token;  // and which document token it came from, -1 if none

    public Pot(Geometry g, int capacity) {
        this.capacity = capacity;
        this.layers = g.layers();
        this.kvHeads = g.kvHeads();
        this.headDim = g.headDim();
        int elements = layers * kvHeads * capacity * headDim;
        this.k = direct(elements * 4L).asFloatBuffer();
        this.v = direct(elements * 4L).asFloatBuffer();
        this.positions = direct(capacity * 8L).asLongBuffer();
        this.mask = direct(capacity);
        this.kind = new byte[capacity];
        this.token = new long[capacity];
        Arrays.fill(token, -1);
    }

    private static ByteBuffer direct(long bytes) {
        if (bytes > Integer.MAX_VALUE) throw new InputException("a pot array of " + bytes + " bytes is too large");
        return ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.nativeOrder());
    }

    /** Bytes held: K, V, positions, mask, kind, token (acre/budget.py slot_bytes per slot). */
    public long nbytes() {
        return 2L * k.capacity() * 4 + capacity * (8L + 1 + 1 + 8);
    }

    /** Flat index of (layer, kv head, slot, 0) in k and v. */
    public int offset(int layer, int head, int slot) {
        return ((layer * kvHeads + head) * capacity + slot) * headDim;
    }

    public SlotKind kind(int slot) {
        return SlotKind.values()[kind[slot]];
    }

    public long token(int slot) {
        return token[slot];
    }

    public boolean valid(int slot) {
        return mask.get(slot) != 0;
    }

    public void setValid(int slot, boolean valid) {
        mask.put(slot, (byte) (valid ? 1 : 0));
    }

    public long position(int slot) {
        return positions.get(slot);
    }

    public void setPosition(int slot, long position) {
        positions.put(slot, position);
    }

    public int used() {
        int n = 0;
        for (int i = 0; i < capacity; i++) n += valid(i) ? 1 : 0;
        return n;
    }

    /**
     * Writes entries into slots: kv arrays are [L, Hkv, rows, D] and entry i comes from row
     * rowsFrom[i]; tokens may be null (no document token).
     */
    public void write(int[] slots, float[] kSrc, float[] vSrc, int rows, int[] rowsFrom, long[] positionsOf,
                      SlotKind what, long[] tokens) {
        for (int i = 0; i < slots.length; i++) {
            int slot = slots[i];
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    int src = ((l * kvHeads + h) * rows + rowsFrom[i]) * headDim;
                    int dst = offset(l, h, slot);
                    for (int d = 0; d < headDim; d++) {
                        k.put(dst + d, kSrc[src + d]);
                        v.put(dst + d, vSrc[src + d]);
                    }
                }
            }
            positions.put(slot, positionsOf == null ? 0 : positionsOf[i]);
            mask.put(slot, (byte) 1);
            kind[slot] = what.code();
            token[slot] = tokens == null ? -1 : tokens[i];
        }
    }

    /** Moves an entry inside the pot (L1 distillation keeps entries that leave the recent window). */
    public void move(int from, int to, SlotKind what) {
        for (int l = 0; l < layers; l++) {
            for (int h = 0; h < kvHeads; h++) {
                int src = offset(l, h, from);
                int dst = offset(l, h, to);
                for (int d = 0; d < headDim; d++) {
                    k.put(dst + d, k.get(src + d));
                    v.put(dst + d, v.get(src + d));
                }
            }
        }
        positions.put(to, 0);
        mask.put(to, (byte) 1);
        kind[to] = what.code();
        token[to] = token[from];
    }

    public void clear(int slot) {
        mask.put(slot, (byte) 0);
        kind[slot] = SlotKind.FREE.code();
        token[slot] = -1;
    }

    public void clearAll() {
        for (int i = 0; i < capacity; i++) clear(i);
    }

    /** Copies of the slot table, for saving the pot after ingest. */
    public byte[] kinds() {
        return kind.clone();
    }

    public long[] tokens() {
        return token.clone();
    }

    /** Restores a saved slot table (the K/V/positions/mask buffers are restored in place by the caller). */
    public void restoreTable(byte[] kinds, long[] tokens) {
        System.arraycopy(kinds, 0, kind, 0, capacity);
        System.arraycopy(tokens, 0, token, 0, capacity);
    }
}
