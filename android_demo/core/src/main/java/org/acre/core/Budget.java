package org.acre.core;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** How many pot slots a RAM budget buys (acre/budget.py). */
public final class Budget {
    public static final int SLOT_ALIGN = 64;  // pots are whole multiples of this many slots
    public static final int MIN_SLOTS = 256;  // below this the acre layout has no room for its regions
    private static final Pattern SIZE = Pattern.compile("\\s*([0-9]*\\.?[0-9]+)\\s*([A-Za-z]*)\\s*");

    private Budget() {}

    /** RAM one pot slot costs: K and V of every layer, plus its position, mask, kind and token. */
    public static long slotBytes(Geometry g, String kvDtype) {
        int item;
        switch (kvDtype) {
            case "float32": item = 4; break;
            case "float16": case "bfloat16": item = 2; break;
            default: throw new InputException("unknown kv dtype '" + kvDtype + "'");
        }
        return (long) g.layers() * g.kvHeads() * g.headDim() * 2 * item + 8 + 1 + 1 + 8;
    }

    public static int slotsForBudget(Geometry g, long budgetBytes, String kvDtype) {
        long perSlot = slotBytes(g, kvDtype);
        long slots = budgetBytes / perSlot / SLOT_ALIGN * SLOT_ALIGN;
        if (slots < MIN_SLOTS) {
            throw new InputException(String.format(Locale.ROOT,
                    "a budget of %.1f MiB holds %d pot slots (%d bytes each); at least %d are needed, i.e. %.1f MiB",
                    budgetBytes / 1048576.0, budgetBytes / perSlot, perSlot, MIN_SLOTS, MIN_SLOTS * perSlot / 1048576.0));
        }
        long cap = g.window() - 128 - (g.window() - 128) % SLOT_ALIGN;
        return (int) Math.min(slots, cap);
    }

    /** "48MB", "1.5GB", "512KiB" or a plain number of MiB -> bytes. */
    public static long parseBytes(String text) {
        Matcher m = SIZE.matcher(text);
        if (!m.matches()) throw new InputException("cannot read the budget '" + text + "'; write it like 48MB or 1.5GB");
        long unit;
        switch (m.group(2).toUpperCase(Locale.ROOT)) {
            case "": case "MB": case "MIB": unit = 1L << 20; break;
            case "B": unit = 1; break;
            case "KB": case "KIB": unit = 1L << 10; break;
            case "GB": case "GIB": unit = 1L << 30; break;
            default: throw new InputException("cannot read the budget '" + text + "'; write it like 48MB or 1.5GB");
        }
        return (long) (Double.parseDouble(m.group(1)) * unit);
    }
}
