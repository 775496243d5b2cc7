package org.acre.core;

/** How many pot slots each region gets (Layout.plan of acre/runtime/policies.py); regions partition the pot. */
public record Layout(int sink, int l1, int recent, int refill, int question) {

    public int total() {
        return sink + l1 + recent + refill + question;
    }

    public static Layout plan(Policy policy, int capacity, int chunk, int span) {
        if (!policy.bounded()) return new Layout(0, 0, capacity, 0, 0);  // one shared pool
        int question = Math.max(96, capacity * 3 / 16);
        int sink = Math.min(32, capacity / 16);
        int recent = chunk;
        int rest = capacity - question - sink - recent;
        if (rest < (policy.refill() ? span : 0) + (policy.l1() ? 16 : 0) || rest < 0) {
            throw new InputException("a pot of " + capacity + " slots is too small for the '" + policy.name()
                    + "' policy with chunk " + chunk + ": it needs room for the question (" + question
                    + "), sinks (" + sink + "), the recent window (" + recent + ")"
                    + (policy.refill() ? " and at least one span (" + span + ")" : ""));
        }
        int refill = policy.refill() ? Math.max((rest * 4 / 7) / span * span, span) : 0;
        int l1 = policy.l1() ? rest - refill : 0;
        recent += policy.l1() ? 0 : rest;  // streaming spends the rest on a longer recent window
        return new Layout(sink, l1, recent, refill, question);
    }
}
