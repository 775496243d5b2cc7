package org.acre.core;

/** What a pot slot holds; the codes are those of acre/runtime/pot.py (saved pot states use them). */
public enum SlotKind {
    FREE, SINK, L1, REFILL, RECENT, QUESTION;  // QUESTION: the question and the answer being decoded

    public byte code() {
        return (byte) ordinal();
    }
}
