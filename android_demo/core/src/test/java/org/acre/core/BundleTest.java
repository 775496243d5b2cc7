package org.acre.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.file.Files;
import java.util.List;
import org.junit.Test;

/** tests/vectors/bundle opens and reads as its manifest says. */
public class BundleTest {
    @Test
    public void goodBundleOpens() throws Exception {
        Bundle bundle = Bundle.open(Vectors.dir().resolve("bundle"));
        assertEquals(256, bundle.pot);
        assertEquals(16, bundle.chunk);
        assertEquals(2, bundle.geometry.layers());
        assertEquals(List.of(2), bundle.eosTokenIds);
        assertEquals(2, bundle.retrievalHeads().length);
        assertEquals(1, bundle.retrievalHeads()[0][0]);  // layer 1 is probe_layers[1]
        assertEquals(2, bundle.retrievalHeads()[0][1]);
        assertTrue(Files.isRegularFile(bundle.programPath("executorch")));
    }
}
