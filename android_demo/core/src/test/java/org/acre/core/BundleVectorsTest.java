package org.acre.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;
import org.junit.runner.RunWith;
import org.junit.runners.Parameterized;

/** Every manifest of tests/vectors/bad_manifests.json is refused for its stated reason. */
@RunWith(Parameterized.class)
public class BundleVectorsTest {
    @Rule public TemporaryFolder tmp = new TemporaryFolder();

    @Parameterized.Parameters(name = "{0}")
    public static Collection<Object[]> cases() {
        List<Object[]> out = new ArrayList<>();
        for (JsonElement c : Vectors.array("bad_manifests.json")) {
            JsonObject o = c.getAsJsonObject();
            out.add(new Object[] {o.get("name").getAsString(), o.get("error").getAsString(), o.get("manifest")});
        }
        return out;
    }

    private final String name;
    private final String error;
    private final JsonElement manifest;

    public BundleVectorsTest(String name, String error, JsonElement manifest) {
        this.name = name;
        this.error = error;
        this.manifest = manifest;
    }

    @Test
    public void badManifestIsRefusedForItsReason() throws Exception {
        Path copy = Vectors.copy("bundle", tmp.getRoot().toPath());
        Files.write(copy.resolve(Bundle.MANIFEST), manifest.toString().getBytes(StandardCharsets.UTF_8));
        try {
            Bundle.open(copy);
            fail(name + ": the bundle opened");
        } catch (BundleException e) {
            assertEquals(name + ": " + e.getMessage(), BundleException.Kind.valueOf(error.toUpperCase()), e.kind);
        }
    }
}
